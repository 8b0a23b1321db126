//! Many TCP connections over one authenticated pipe, with yamux. The client
//! opens streams; the server accepts them. The first byte of a stream says what
//! it is for.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use futures::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// Stream kind: forward to the server's target service.
pub const KIND_TCP: u8 = 1;
/// Stream kind: keepalive echo.
pub const KIND_KEEPALIVE: u8 = 2;

/// Forwarded connections one tunnel carries at once. A local connection past
/// it is refused on its own (thinclient closes it; an office PC resets a
/// stream past it); the tunnel and its other connections stay up.
pub const MAX_CONNECTIONS: usize = 1024;

/// Streams the opening side (thinclient) has open at most: the connections
/// and the keepalive stream. [`Opener::open`] refuses the next one itself:
/// yamux 0.13 would end the whole connection if asked for a stream past its
/// limit.
const CLIENT_STREAMS: usize = MAX_CONNECTIONS + 1;

/// Streams the office PC serves at once: what the client may have open plus
/// room for the lag between the two sides' tables (a stream leaves a side's
/// table when that side has dropped it and yamux has noticed, so one side
/// can count a stream the other has already let go). Past it the office PC
/// resets new streams one by one.
pub const SERVER_ACTIVE: usize = CLIENT_STREAMS + 128;

/// Streams yamux tracks on either side. yamux ends the whole connection when
/// a peer opens one past it, or when asked to open one past it, so it sits
/// above both sides' own limits, with room for the lag.
pub const MAX_STREAMS: usize = SERVER_ACTIVE + 128;

/// What a tunnel's busy streams may grow their receive windows by, together,
/// beyond the 256 KiB each starts with. yamux doubles a stream's window when
/// its sender used half of it within two round trips, but only out of this
/// room: without it a stream stays at 256 KiB in flight, which capped one
/// stream through the gateway at 0.8x of rathole's (BENCHMARKS.md, run 8).
pub const WINDOW_GROWTH: usize = 32 * 1024 * 1024;

/// Receive window of a whole tunnel: yamux wants at least its default 256 KiB
/// per stream it may track, plus [`WINDOW_GROWTH`]. Flow control keeps a
/// peer's unread data below it; it is also below `decouple::MAX_QUEUED_DATA`,
/// so a well-behaved peer never makes the send queue wait.
pub const MAX_WINDOW: usize = MAX_STREAMS * 256 * 1024 + WINDOW_GROWTH;

/// yamux settings: at most [`MAX_STREAMS`] streams and [`MAX_WINDOW`] of
/// receive window per tunnel, which also bounds what a peer can make us
/// queue.
fn config() -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_max_connection_receive_window(Some(MAX_WINDOW));
    c.set_max_num_streams(MAX_STREAMS);
    c.set_split_send_size(64 * 1024);
    c
}

/// A multiplexed stream, usable with tokio's I/O traits. A stream the client
/// opened holds one of its places until it is dropped.
///
/// Its reading and writing halves may be polled by different tasks
/// (`tokio::io::split`): yamux parks both directions on the same channel to
/// the connection, which keeps one waker only, so the direction that parked
/// first would never be woken (a reader whose window update waits there
/// then starves its peer, and the stream stalls for good). Every poll hands
/// yamux one waker that wakes the last reader and the last writer.
pub struct MuxStream {
    inner: Compat<yamux::Stream>,
    wakers: Arc<BothWays>,
    waker: Waker,
    _place: Option<OwnedSemaphorePermit>,
}

/// The tasks last seen reading and writing a [`MuxStream`].
#[derive(Default)]
struct BothWays {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl Wake for BothWays {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}

impl MuxStream {
    fn new(s: yamux::Stream, place: Option<OwnedSemaphorePermit>) -> Self {
        let wakers = Arc::new(BothWays::default());
        Self { inner: s.compat(), waker: Waker::from(wakers.clone()), wakers, _place: place }
    }

    /// Polls yamux with the waker of both directions, `cx`'s task being the
    /// one of `read`ing or writing.
    fn both<R>(
        &mut self,
        cx: &Context<'_>,
        read: bool,
        f: impl FnOnce(Pin<&mut Compat<yamux::Stream>>, &mut Context<'_>) -> R,
    ) -> R {
        if read { &self.wakers.read } else { &self.wakers.write }.register(cx.waker());
        let mut both = Context::from_waker(&self.waker);
        f(Pin::new(&mut self.inner), &mut both)
    }
}

impl tokio::io::AsyncRead for MuxStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.both(cx, true, |s, cx| s.poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for MuxStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
        self.both(cx, false, |s, cx| s.poll_write(cx, b))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.both(cx, false, |s, cx| s.poll_flush(cx))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.both(cx, false, |s, cx| s.poll_shutdown(cx))
    }
}

type OpenReq = oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>;

/// Opens outbound streams on a client-side connection.
#[derive(Clone, Debug)]
pub struct Opener {
    tx: mpsc::Sender<OpenReq>,
    places: Arc<Semaphore>,
}

impl Opener {
    /// Opens a new stream, or refuses when the tunnel already has
    /// [`MAX_CONNECTIONS`] connections (and its keepalive) open.
    pub async fn open(&self) -> std::io::Result<MuxStream> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| {
            std::io::Error::other(format!(
                "the tunnel already carries {MAX_CONNECTIONS} connections (the most one tunnel carries at once)"
            ))
        })?;
        let (tx, rx) = oneshot::channel();
        let gone = || std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "tunnel closed");
        self.tx.send(tx).await.map_err(|_| gone())?;
        let s = rx.await.map_err(|_| gone())?.map_err(std::io::Error::other)?;
        Ok(MuxStream::new(s, Some(place)))
    }
}

/// Starts the client side; the task ends when the connection does.
pub fn client<T>(io: T) -> (Opener, tokio::task::JoinHandle<()>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = yamux::Connection::new(io, config(), yamux::Mode::Client);
    let (tx, mut rx) = mpsc::channel::<OpenReq>(64);
    let task = tokio::spawn(async move {
        let mut waiting: Option<OpenReq> = None;
        let mut requests_open = true;
        poll_fn(|cx| {
            loop {
                // Drive the connection first: that is also where yamux takes
                // dropped streams out of its table, before it counts them.
                loop {
                    match conn.poll_next_inbound(cx) {
                        Poll::Ready(Some(Ok(_unexpected))) => continue,
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(()),
                        Poll::Pending => break,
                    }
                }
                let mut opened = false;
                loop {
                    if waiting.is_none() && requests_open {
                        match rx.poll_recv(cx) {
                            Poll::Ready(Some(r)) => waiting = Some(r),
                            Poll::Ready(None) => requests_open = false,
                            Poll::Pending => {}
                        }
                    }
                    let Some(req) = waiting.take() else { break };
                    match conn.poll_new_outbound(cx) {
                        Poll::Ready(r) => {
                            opened = true;
                            let _ = req.send(r);
                        }
                        Poll::Pending => {
                            waiting = Some(req);
                            break;
                        }
                    }
                }
                if !opened {
                    break;
                }
            }
            if !requests_open {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    });
    (Opener { tx, places: Arc::new(Semaphore::new(CLIENT_STREAMS)) }, task)
}

/// Starts the server side; inbound streams arrive on the receiver, which
/// closes when the connection ends. Abort the task to drop the connection.
///
/// The hand-over queue is unbounded because yamux bounds it: a stream waiting
/// in it is one of the at most [`MAX_STREAMS`] yamux tracks. (A bounded queue
/// would have to drop streams when full, since yamux only moves any data
/// while its inbound streams are taken.)
pub fn server<T>(io: T) -> (mpsc::UnboundedReceiver<MuxStream>, tokio::task::JoinHandle<()>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = yamux::Connection::new(io, config(), yamux::Mode::Server);
    let (tx, rx) = mpsc::unbounded_channel::<MuxStream>();
    let task = tokio::spawn(async move {
        poll_fn(|cx| loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    if tx.send(MuxStream::new(s, None)).is_err() {
                        // The tunnel's loop is gone.
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await;
    });
    (rx, task)
}

/// Wraps a stream and records, in milliseconds since `epoch`, when it last
/// delivered bytes: the tunnel's liveness is any traffic, not only pings.
pub struct Touch<S> {
    inner: S,
    epoch: std::time::Instant,
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<S> Touch<S> {
    /// Wraps `inner`; `last` is updated on every read that returns data.
    pub fn new(inner: S, epoch: std::time::Instant, last: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        Self { inner, epoch, last }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Touch<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = self.epoch.elapsed().as_millis() as u64;
            self.last.store(now, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Touch<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    /// A link whose writes can be held back, as a congested socket holds
    /// them: while closed, every write waits.
    struct Gated {
        inner: tokio::io::DuplexStream,
        gate: Arc<Gate>,
    }

    #[derive(Default)]
    struct Gate {
        closed: AtomicBool,
        waker: AtomicWaker,
    }

    impl Gate {
        fn set(&self, closed: bool) {
            self.closed.store(closed, Ordering::SeqCst);
            self.waker.wake();
        }
    }

    impl tokio::io::AsyncRead for Gated {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for Gated {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
            self.gate.waker.register(cx.waker());
            if self.gate.closed.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            Pin::new(&mut self.inner).poll_write(cx, b)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            self.gate.waker.register(cx.waker());
            if self.gate.closed.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Waits until `n` stops moving (checked every 50 ms, for at most 10 s).
    async fn settled(n: &AtomicUsize) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut last = usize::MAX;
        loop {
            let now = n.load(Ordering::SeqCst);
            if now == last && now > 0 {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "the writer never got going or never stopped");
            last = now;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A stream written by one task and read by another, while the link is
    /// congested: the writer fills yamux's queue to the connection and waits
    /// there; the reader, reading what had arrived, then waits on the same
    /// queue to send its window update. Once the link clears, both must go
    /// on. (yamux keeps one waker for that queue, the reader's, so without
    /// `MuxStream`'s two-way waker the writer was never woken.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_writer_and_a_reader_in_two_tasks_both_go_on_after_congestion() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let gate = Arc::new(Gate::default());
        let (opener, _client) = client(Gated { inner: a, gate: gate.clone() }.compat());
        let (mut inbound, _server) = server(b.compat());
        let mut st = opener.open().await.unwrap();
        st.write_all(b"1").await.unwrap();
        let mut far = inbound.recv().await.unwrap();
        let mut one = [0u8; 1];
        far.read_exact(&mut one).await.unwrap();
        far.write_all(b"2").await.unwrap();
        st.read_exact(&mut one).await.unwrap();

        // Congestion: the writer queues 1 KiB frames until yamux's queue is full.
        gate.set(true);
        let (mut r, mut w) = tokio::io::split(st);
        const TOTAL: usize = 64 * 1024;
        let written = Arc::new(AtomicUsize::new(0));
        let count = written.clone();
        let writer = tokio::spawn(async move {
            for _ in 0..TOTAL / 1024 {
                w.write_all(&[7; 1024]).await.unwrap();
                count.fetch_add(1024, Ordering::SeqCst);
            }
            w.flush().await.unwrap();
        });
        let stuck = settled(&written).await;
        assert!(stuck < TOTAL, "nothing held the writer back");

        // The far end sends 200 KiB; the reader reads it all (its window
        // update waits on the full queue).
        far.write_all(&vec![9; 200 * 1024]).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 200 * 1024];
            r.read_exact(&mut got).await.unwrap();
            r
        });
        let _r = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("the reader stalled").unwrap();

        // The link clears: the writer must finish, the far end get it all.
        gate.set(false);
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .unwrap_or_else(|_| panic!("the writer was never woken ({stuck} of {TOTAL} bytes written)"))
            .unwrap();
        let mut got = vec![0u8; TOTAL];
        tokio::time::timeout(Duration::from_secs(10), far.read_exact(&mut got)).await.unwrap().unwrap();
        assert!(got.iter().all(|&b| b == 7));
    }
}
