//! The tunnel's byte stream under the multiplexer: sealed end to end, with
//! writing decoupled from reading.
//!
//! yamux stops reading its socket while it has a pong queued and the socket
//! refuses writes; when both ends are write-blocked at once (bulk data both
//! ways) neither reads again. Here writes are queued and drained by a separate
//! task, which also seals them into records ([`crate::seal`]), so the socket's
//! read side is always serviced and the encryption runs beside the
//! multiplexer.
//!
//! Writes are queued already laid out as end-to-end records, with room left
//! around each record's plaintext for its header and tag and for a TLS
//! record's: when the tunnel's TLS leg was taken out of rustls
//! ([`crate::inplace`]), the writer seals both layers in those bytes and
//! hands them to the socket as they are; otherwise it hands the sealed
//! records to rustls.
//!
//! The queue is bounded twice, by what kind of yamux bytes it holds
//! ([`FrameCounter`]): stream data may fill [`MAX_QUEUED_DATA`], above the
//! largest receive window a well-behaved peer grants (`mux::MAX_WINDOW`), so
//! flow control, not this bound, paces data and the two ends can never both
//! wait on full queues; everything else (frame headers, pongs, window
//! updates) may fill [`MAX_QUEUED_CONTROL`]. Only a peer that floods frames
//! the multiplexer answers without flow control (pings) while never reading
//! reaches the second bound; then writes wait, yamux stops reading, and the
//! peer's own sends stall instead of this side's memory growing.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use std::io::IoSlice;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf};
use tokio::sync::Notify;

use crate::inplace::{RecordReader, Signals, Taken};
use crate::seal::{Keys, OpenReader, Sealer, GAP_AFTER, GAP_BEFORE, SEND_PLAIN};

/// Most bytes of stream data queued for sending before writes wait: above
/// the largest receive window a well-behaved peer grants (`mux::MAX_WINDOW`).
pub const MAX_QUEUED_DATA: usize = crate::mux::MAX_WINDOW + (1 << 20);
/// Most other bytes (frame headers, pongs, window updates) queued before
/// writes wait. Writes are appended to one buffer, so the bytes counted are
/// the memory held, even when a flood is answered in 12-byte pongs.
pub const MAX_QUEUED_CONTROL: usize = 8 << 20;

/// Follows the yamux frames in the bytes written, to tell stream data (the
/// body of a data frame) from the rest. yamux frames are a 12-byte header
/// (version, type, flags, stream, length); only a data frame (type 0) has a
/// body, of `length` bytes.
#[derive(Default)]
struct FrameCounter {
    header: [u8; 12],
    header_len: usize,
    body_left: u32,
}

impl FrameCounter {
    /// Splits `buf` into (stream data bytes, other bytes).
    fn count(&mut self, mut buf: &[u8]) -> (usize, usize) {
        let (mut data, mut other) = (0, 0);
        while !buf.is_empty() {
            if self.body_left > 0 {
                let n = buf.len().min(self.body_left as usize);
                self.body_left -= n as u32;
                data += n;
                buf = &buf[n..];
                continue;
            }
            let n = buf.len().min(12 - self.header_len);
            self.header[self.header_len..self.header_len + n].copy_from_slice(&buf[..n]);
            self.header_len += n;
            other += n;
            buf = &buf[n..];
            if self.header_len == 12 {
                self.header_len = 0;
                if self.header[1] == 0 {
                    self.body_left =
                        u32::from_be_bytes([self.header[8], self.header[9], self.header[10], self.header[11]]);
                }
            }
        }
        (data, other)
    }
}

/// A write's share of the two bounds.
#[derive(Clone, Copy, Default)]
struct Cost {
    data: usize,
    control: usize,
}

/// Bytes written and not yet taken by the writer task, laid out as records
/// to be sealed in place ([`Pending::append`]).
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Plaintext bytes in the last record, which is still open (0: none).
    open: usize,
    cost: Cost,
    closed: bool,
}

impl Pending {
    /// Appends `bytes` as the plaintext of records: [`GAP_BEFORE`] bytes of
    /// room, up to [`SEND_PLAIN`] bytes, [`GAP_AFTER`] bytes of room; the
    /// last record stays open for the next write until [`Pending::take`].
    fn append(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.open == 0 {
                self.buf.extend_from_slice(&[0; GAP_BEFORE]);
            }
            let n = bytes.len().min(SEND_PLAIN - self.open);
            self.buf.extend_from_slice(&bytes[..n]);
            self.open += n;
            bytes = &bytes[n..];
            if self.open == SEND_PLAIN {
                self.buf.extend_from_slice(&[0; GAP_AFTER]);
                self.open = 0;
            }
        }
    }

    /// Takes every record queued (the last one closed), leaving `spare`.
    fn take(&mut self, spare: Vec<u8>) -> Vec<u8> {
        if std::mem::take(&mut self.open) > 0 {
            self.buf.extend_from_slice(&[0; GAP_AFTER]);
        }
        std::mem::replace(&mut self.buf, spare)
    }
}

/// The plaintext length of each record laid out in `batch`, with its offset.
fn records_in(batch: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= batch.len() {
            return None;
        }
        let plain = (batch.len() - at - GAP_BEFORE - GAP_AFTER).min(SEND_PLAIN);
        let r = (at, plain);
        at += GAP_BEFORE + plain + GAP_AFTER;
        Some(r)
    })
}

struct Shared {
    pending: Mutex<Pending>,
    more: Notify,
    queued_data: AtomicUsize,
    queued_control: AtomicUsize,
    failed: AtomicBool,
    drained: AtomicWaker,
    /// The peer asked for a key update of the TLS send keys.
    update_asked: AtomicBool,
    /// The gateway's records switched to bare ones.
    bare_in: AtomicBool,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            more: Notify::new(),
            queued_data: AtomicUsize::new(0),
            queued_control: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            drained: AtomicWaker::new(),
            update_asked: AtomicBool::new(false),
            bare_in: AtomicBool::new(false),
        })
    }
}

/// A sealed stream whose writes never block on the socket (they are queued
/// for a writer task).
pub struct Decoupled<T> {
    rd: Reader<T>,
    shared: Arc<Shared>,
    frames: FrameCounter,
}

/// Where the records come from.
enum Reader<T> {
    /// Through rustls.
    Rustls(Box<OpenReader<ReadHalf<T>>>),
    /// The TLS leg in place.
    InPlace(Box<RecordReader>),
}

/// Where the writer task sends the records (one per tunnel, owned by its
/// writer task: not worth boxing).
#[allow(clippy::large_enum_variant)]
enum Out<W> {
    /// Through rustls (or any stream).
    Stream(W),
    /// The TLS leg in place: the socket, the TLS send keys, and whether
    /// records go bare.
    InPlace(tokio::net::tcp::OwnedWriteHalf, thin_protocol::records::Keys, Bare),
}

/// Whether the records this app sends go bare ([`crate::inplace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bare {
    /// Not agreed: TLS records to the end.
    No,
    /// Agreed: switch before the first record (thinclient).
    First,
    /// Agreed: switch once the gateway's records have (thinsvr).
    AfterPeer,
    /// Switched.
    On,
}

impl Bare {
    /// Whether bare records were agreed.
    pub fn agreed(self) -> bool {
        self != Bare::No
    }
}

impl<W: AsyncWrite + Unpin> Out<W> {
    /// Seals `batch` and sends it; first a key update when one is due.
    async fn send(&mut self, sealer: &mut Sealer, batch: &mut [u8], shared: &Shared) -> std::io::Result<()> {
        match self {
            Out::Stream(wr) => {
                let mut parts = Vec::new();
                for (at, plain) in records_in(batch).collect::<Vec<_>>() {
                    let r = sealer.seal_gapped(&mut batch[at..], plain)?;
                    parts.push(at + r.start..at + r.end);
                }
                let parts: Vec<&[u8]> = parts.into_iter().map(|r| &batch[r]).collect();
                write_all_vectored(wr, &parts).await?;
                wr.flush().await
            }
            Out::InPlace(wr, tls, bare) => {
                switch_if_due(wr, tls, bare, shared).await?;
                if *bare == Bare::On {
                    let n = crate::inplace::seal_batch_bare(sealer, batch)?;
                    return wr.write_all(&batch[..n]).await;
                }
                // A key update goes between records: the records sealed
                // under the old keys first.
                let mut at = 0;
                while at < batch.len() {
                    update_if_due(wr, tls, shared).await?;
                    let n = crate::inplace::seal_batch(sealer, tls, &mut batch[at..])?;
                    wr.write_all(&batch[at..at + n]).await?;
                    at += n;
                }
                Ok(())
            }
        }
    }

    /// Between batches: a key update the peer asked for.
    async fn idle(&mut self, shared: &Shared) -> std::io::Result<()> {
        match self {
            Out::Stream(_) => Ok(()),
            Out::InPlace(wr, tls, bare) => {
                switch_if_due(wr, tls, bare, shared).await?;
                if *bare == Bare::On {
                    return Ok(());
                }
                update_if_due(wr, tls, shared).await
            }
        }
    }

    /// Closes the connection after what was sent.
    async fn close(&mut self) {
        let _ = match self {
            Out::Stream(wr) => wr.shutdown().await,
            Out::InPlace(wr, _, Bare::On) => wr.shutdown().await,
            Out::InPlace(wr, tls, _) => crate::inplace::close(wr, tls).await,
        };
    }
}

/// Switches to bare records when this end's turn has come.
async fn switch_if_due(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    tls: &mut thin_protocol::records::Keys,
    bare: &mut Bare,
    shared: &Shared,
) -> std::io::Result<()> {
    let due = match *bare {
        Bare::First => true,
        Bare::AfterPeer => shared.bare_in.load(Ordering::Acquire),
        Bare::No | Bare::On => false,
    };
    if due {
        crate::inplace::switch_to_bare(wr, tls).await?;
        *bare = Bare::On;
    }
    Ok(())
}

/// Sends a key update when the peer asked for one or the send keys near
/// their budget.
async fn update_if_due(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    tls: &mut thin_protocol::records::Keys,
    shared: &Shared,
) -> std::io::Result<()> {
    if shared.update_asked.swap(false, Ordering::AcqRel) || tls.update_due() {
        crate::inplace::send_key_update(wr, tls).await?;
    }
    Ok(())
}

/// A batch kept for the next one when no larger than this (a burst's larger
/// buffer is freed).
const KEEP_BATCH: usize = 1 << 20;

impl<T: AsyncRead + AsyncWrite + Send + 'static> Decoupled<T> {
    /// Splits `io`, opens what it reads with `keys.recv`, and starts the
    /// writer task that seals with `keys.send`, through `io`.
    pub fn sealed(io: T, keys: Keys) -> Self {
        let (rd, wr) = tokio::io::split(io);
        let shared = Shared::new();
        spawn_writer(shared.clone(), keys.send, Out::Stream(wr));
        Self { rd: Reader::Rustls(Box::new(OpenReader::new(rd, keys.recv))), shared, frames: FrameCounter::default() }
    }
}

impl Decoupled<crate::link::LinkStream> {
    /// [`Decoupled::sealed`] over a tunnel's TLS connection, taken out of
    /// rustls when it can be ([`crate::inplace`]): both layers of each
    /// record are then sealed and opened in the same bytes, or only the
    /// end-to-end layer once records go bare (`bare`, as the gateway's
    /// `Paired` agreed).
    pub async fn over_link(s: crate::link::LinkStream, keys: Keys, bare: Bare) -> std::io::Result<Self> {
        let Taken { rd, wr, keys: tls, plain, ahead, peer_closed } = match crate::inplace::take(s).await? {
            Ok(taken) => taken,
            Err(_) if bare.agreed() => {
                return Err(std::io::Error::other("the gateway agreed to bare records on a leg that is not TLS 1.3"))
            }
            Err(s) => return Ok(Self::sealed(s, keys)),
        };
        if bare.agreed() && peer_closed {
            // rustls read the gateway's switch to bare records, and keeps
            // what followed it: the gateway switched out of turn.
            return Err(std::io::Error::other("the gateway switched to bare records before the login had ended"));
        }
        let shared = Shared::new();
        spawn_writer::<tokio::io::Sink>(shared.clone(), keys.send, Out::InPlace(wr, tls.tx, bare));
        let signals = Self::signals(&shared, bare.agreed());
        let rd = RecordReader::new(rd, tls.rx, keys.recv, (plain, ahead, peer_closed), signals);
        Ok(Self { rd: Reader::InPlace(Box::new(rd)), shared, frames: FrameCounter::default() })
    }

    /// What the reader tells the writer task.
    fn signals(shared: &Arc<Shared>, bare: bool) -> Signals {
        let asked = {
            let sh = shared.clone();
            Box::new(move || {
                sh.update_asked.store(true, Ordering::Release);
                sh.more.notify_one();
            })
        };
        let switched = {
            let sh = shared.clone();
            Box::new(move || {
                sh.bare_in.store(true, Ordering::Release);
                sh.more.notify_one();
            })
        };
        Signals { asked, bare, switched }
    }
}

impl<T> Decoupled<T> {
    /// Whether the TLS leg is handled in place ([`crate::inplace`]).
    pub fn in_place(&self) -> bool {
        matches!(self.rd, Reader::InPlace(_))
    }
}

/// Starts the task that takes what was written, seals it and sends it.
///
/// Writes are appended to one pending buffer (the only copy on this side);
/// the task takes the whole buffer at once, encrypts it in place and hands
/// it to `out`.
fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(sh: Arc<Shared>, mut sealer: Sealer, mut out: Out<W>) {
    tokio::spawn(async move {
        let mut spare = Vec::new();
        loop {
            let (mut batch, cost, closed) = {
                let mut p = sh.pending.lock().expect("pending lock");
                let batch = p.take(std::mem::take(&mut spare));
                (batch, std::mem::take(&mut p.cost), p.closed)
            };
            if batch.is_empty() {
                spare = batch;
                if out.idle(&sh).await.is_err() {
                    sh.failed.store(true, Ordering::Release);
                    return;
                }
                if closed {
                    out.close().await;
                    return;
                }
                sh.more.notified().await;
                continue;
            }
            let ok = out.send(&mut sealer, &mut batch, &sh).await.is_ok();
            sh.queued_data.fetch_sub(cost.data, Ordering::AcqRel);
            sh.queued_control.fetch_sub(cost.control, Ordering::AcqRel);
            sh.drained.wake();
            if !ok {
                sh.failed.store(true, Ordering::Release);
                return;
            }
            if batch.capacity() <= KEEP_BATCH {
                batch.clear();
                spare = batch;
            }
        }
    });
}

impl<T> Drop for Decoupled<T> {
    /// The writer task sends what is queued, then closes the connection.
    fn drop(&mut self) {
        if let Ok(mut p) = self.shared.pending.lock() {
            p.closed = true;
        }
        self.shared.more.notify_one();
    }
}

/// Writes `parts` in order with vectored writes, continuing after partial ones.
async fn write_all_vectored<W: AsyncWrite + Unpin>(wr: &mut W, parts: &[&[u8]]) -> std::io::Result<()> {
    let (mut i, mut off) = (0, 0);
    while i < parts.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(&parts[i][off..])
            .chain(parts[i + 1..].iter().copied())
            .take(64)
            .map(IoSlice::new)
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = parts[i].len() - off;
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

impl<T: AsyncRead> AsyncRead for Decoupled<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.rd {
            Reader::Rustls(r) => Pin::new(&mut **r).poll_read(cx, buf),
            Reader::InPlace(r) => Pin::new(&mut **r).poll_read(cx, buf),
        }
    }
}

impl<T> AsyncWrite for Decoupled<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let broken = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed");
        if self.shared.failed.load(Ordering::Acquire) {
            return Poll::Ready(Err(broken()));
        }
        let full = |sh: &Shared| {
            sh.queued_data.load(Ordering::Acquire) >= MAX_QUEUED_DATA
                || sh.queued_control.load(Ordering::Acquire) >= MAX_QUEUED_CONTROL
        };
        if full(&self.shared) {
            self.shared.drained.register(cx.waker());
            // The writer may have drained between the check and the registration.
            if full(&self.shared) {
                return Poll::Pending;
            }
        }
        let this = &mut *self;
        let (data, other) = this.frames.count(buf);
        let cost = Cost { data, control: other };
        {
            let mut p = this.shared.pending.lock().expect("pending lock");
            if p.closed {
                return Poll::Ready(Err(broken()));
            }
            p.append(buf);
            p.cost.data += cost.data;
            p.cost.control += cost.control;
            // Counted before the writer can take it, so it never subtracts first.
            this.shared.queued_data.fetch_add(cost.data, Ordering::AcqRel);
            this.shared.queued_control.fetch_add(cost.control, Ordering::AcqRel);
        }
        this.shared.more.notify_one();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.shared.pending.lock().expect("pending lock").closed = true;
        self.shared.more.notify_one();
        Poll::Ready(Ok(()))
    }
}

const _: () = assert!(crate::mux::MAX_WINDOW < MAX_QUEUED_DATA);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_app_updates_its_tls_send_keys_before_their_budget_runs_out() {
        let (app, gate, seen) = crate::inplace::tests::link(&rustls::version::TLS13).await;
        let (app_keys, gate_keys) = crate::seal::tests::pair();
        let Ok(Taken { rd, wr, keys: mut tls, plain, ahead, peer_closed }) = crate::inplace::take(app).await.unwrap()
        else {
            panic!("not taken")
        };
        // Three records, then an update is due.
        tls.tx.set_budget(3);
        let shared = Shared::new();
        spawn_writer::<tokio::io::Sink>(shared.clone(), app_keys.send, Out::InPlace(wr, tls.tx, Bare::No));
        let signals = Decoupled::<crate::link::LinkStream>::signals(&shared, false);
        let rd = RecordReader::new(rd, tls.rx, app_keys.recv, (plain, ahead, peer_closed), signals);
        let mut app: Decoupled<crate::link::LinkStream> =
            Decoupled { rd: Reader::InPlace(Box::new(rd)), shared, frames: FrameCounter::default() };
        // Ten records' worth in one write: one batch, sealed in two runs.
        let up: Vec<u8> = (0..10 * SEND_PLAIN as u32).map(|i| (i * 7 + i / 1000) as u8).collect();
        app.write_all(&up).await.unwrap();
        app.shutdown().await.unwrap();
        let mut from_app = OpenReader::new(gate, gate_keys.recv);
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), from_app.read_to_end(&mut got))
            .await
            .unwrap()
            .expect("rustls opens every record and follows the update");
        assert!(got == up);
        let lengths = crate::inplace::tests::record_lengths(&seen.lock().unwrap());
        // After the takeover: an update after every three records (the
        // budget is counted from the lowered limit), the close_notify last.
        let first = lengths.iter().position(|&l| l > 16_000).unwrap();
        let after: Vec<char> = lengths[first..]
            .iter()
            .map(|&l| match l {
                22 => 'U',
                19 => 'C',
                _ => 'D',
            })
            .collect();
        assert_eq!(String::from_iter(after), "DDDUDDDUDDDUDC", "{lengths:?}");
    }

    fn header(kind: u8, len: u32) -> Vec<u8> {
        let mut h = vec![0, kind, 0, 0, 0, 0, 0, 1];
        h.extend(len.to_be_bytes());
        h
    }

    #[test]
    fn data_frame_bodies_count_as_data_and_everything_else_as_control() {
        let mut f = FrameCounter::default();
        let mut bytes = header(0, 5);
        bytes.extend(b"hello");
        bytes.extend(header(2, 0xffff_ffff)); // a ping: its length field is no body
        bytes.extend(header(1, 1 << 20)); // a window update, likewise
        bytes.extend(header(0, 3));
        bytes.extend(b"abc");
        assert_eq!(f.count(&bytes), (8, 48));
        // Split anywhere, the same.
        let mut f = FrameCounter::default();
        let (mut data, mut other) = (0, 0);
        for piece in bytes.chunks(5) {
            let (d, o) = f.count(piece);
            data += d;
            other += o;
        }
        assert_eq!((data, other), (8, 48));
    }
}
