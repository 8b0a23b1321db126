//! What every fuzz target shares: an allocator that bounds what one input may
//! allocate, a way to run the async readers on a byte slice without a runtime,
//! and a reader that hands out bytes in fuzzer-chosen pieces.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};

/// The system allocator, counting the bytes live now and the most live since
/// [`Budget::start`]. One fuzz input must stay under its budget: a length
/// prefix or a count from the input must not make a parser allocate more than
/// the input justifies. (libFuzzer's `-malloc_limit_mb` catches one huge
/// allocation under ASan; this also catches many smaller ones, and works
/// without a sanitizer.)
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Largest single allocation allowed (as libFuzzer's `-malloc_limit_mb`,
/// which only works under a sanitizer).
pub const MALLOC_LIMIT: usize = 256 << 20;

fn grew(n: usize) {
    if n > MALLOC_LIMIT {
        // No allocation may happen here (the allocator is this one), and a
        // panic might allocate: say it with a static message and abort.
        let msg = b"thin_fuzz: one allocation above MALLOC_LIMIT (256 MiB)\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), msg);
        std::process::abort();
    }
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The allocation budget of one input: bytes allocated beyond what was live
/// when it started.
pub struct Budget {
    base: usize,
    limit: usize,
}

impl Budget {
    /// Starts counting; `limit` is what this input may hold at most at once.
    pub fn start(limit: usize) -> Budget {
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        Budget { base, limit }
    }

    /// Fails the input if it ever held more than its budget.
    pub fn check(self, what: &str) {
        let used = PEAK.load(Relaxed).saturating_sub(self.base);
        assert!(
            used <= self.limit,
            "{what}: one input held {used} bytes at once, more than its budget of {}",
            self.limit
        );
    }
}

/// The usual budget: a fixed allowance plus a multiple of the input's size.
pub fn budget_for(input_len: usize) -> usize {
    (4 << 20) + 64 * input_len
}

/// Runs a future that never waits (its reader is a byte slice) to completion.
/// Panics if it does wait: nothing could wake it.
pub fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a reader over a byte slice waited"),
    }
}

/// A reader that hands out `data` in pieces whose sizes come from `plan`, and
/// now and then answers "not yet" (`Pending`), as a socket does. With `plan`
/// empty it hands out everything at once.
pub struct Chunked<'a> {
    data: &'a [u8],
    plan: &'a [u8],
    step: usize,
    waited: bool,
    /// Bytes handed out so far.
    pub consumed: usize,
}

impl<'a> Chunked<'a> {
    /// A reader over `data`, cut as `plan` says.
    pub fn new(data: &'a [u8], plan: &'a [u8]) -> Self {
        Chunked { data, plan, step: 0, waited: false, consumed: 0 }
    }

    /// The next step of the plan: `None` = not yet, `Some(n)` = at most n
    /// bytes. Never two "not yet" in a row, so that a reader always progresses.
    fn next(&mut self) -> Option<usize> {
        if self.plan.is_empty() {
            return Some(usize::MAX);
        }
        let b = self.plan[self.step % self.plan.len()];
        self.step += 1;
        let wait = b < 32 && !self.waited;
        self.waited = wait;
        match b {
            _ if wait => None,
            0..=223 => Some(usize::from(b % 192) + 1),
            _ => Some(usize::MAX),
        }
    }
}

impl tokio::io::AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Some(max) = self.next() else { return Poll::Pending };
        let n = max.min(buf.remaining()).min(self.data.len());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        self.consumed += n;
        Poll::Ready(Ok(()))
    }
}

/// Polls `f` once with a waker that does nothing: `Some` when it finished,
/// `None` when it waits (the caller then drops it, as a `select!` or a timeout
/// would cancel it).
pub fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Cuts the front of a fuzz input into a selector byte and a plan for
/// [`Chunked`] (its length is the second byte, at most 32): `(selector, plan, rest)`.
pub fn take_plan(data: &[u8]) -> (u8, &[u8], &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return (0, &[], &[]) };
    let Some((&n, rest)) = rest.split_first() else { return (sel, &[], &[]) };
    let n = usize::from(n % 33).min(rest.len());
    let (plan, rest) = rest.split_at(n);
    (sel, plan, rest)
}

/// The message enums of `thin_protocol::messages`, one per direction.
pub trait Wire: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug {
    /// Name in failure messages.
    const NAME: &'static str;
    /// Whether this is the catch-all variant for other directions' tags, which
    /// is decoded but never encoded.
    fn unexpected(&self) -> bool {
        false
    }
}

use thin_protocol::messages::{E2e, GateToServer, GateToTunnel, Hello, ServerToGate};

impl Wire for Hello {
    const NAME: &'static str = "Hello";
    fn unexpected(&self) -> bool {
        matches!(self, Hello::Unexpected)
    }
}
impl Wire for ServerToGate {
    const NAME: &'static str = "ServerToGate";
    fn unexpected(&self) -> bool {
        matches!(self, ServerToGate::Unexpected)
    }
}
impl Wire for GateToServer {
    const NAME: &'static str = "GateToServer";
}
impl Wire for GateToTunnel {
    const NAME: &'static str = "GateToTunnel";
}
impl Wire for E2e {
    const NAME: &'static str = "E2e";
}

/// Re-encodes a decoded message and checks that it decodes to the same bytes
/// again; `None` for the catch-all variant (which must not encode).
pub fn round_trip<T: Wire>(m: &T) -> Option<Vec<u8>> {
    match serde_json::to_vec(m) {
        Err(e) => {
            assert!(m.unexpected(), "{}: {m:?} decoded but does not encode: {e}", T::NAME);
            None
        }
        Ok(bytes) => {
            assert!(!m.unexpected(), "{}: the catch-all variant encoded", T::NAME);
            let back: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{}: {m:?} encodes to {:?}, which does not decode: {e}",
                    T::NAME,
                    String::from_utf8_lossy(&bytes)
                )
            });
            let again = serde_json::to_vec(&back).expect("encodes");
            assert_eq!(bytes, again, "{}: encode(decode(encode(m))) differs", T::NAME);
            Some(bytes)
        }
    }
}
