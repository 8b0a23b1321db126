//! Many TCP connections over one authenticated pipe, with yamux. The client
//! opens streams; the server accepts them. The first byte of a stream says what
//! it is for.

use std::future::poll_fn;
use std::task::Poll;

use futures::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// A multiplexed stream, usable with tokio's I/O traits.
pub type MuxStream = Compat<yamux::Stream>;

/// Stream kind: forward to the server's target service.
pub const KIND_TCP: u8 = 1;
/// Stream kind: keepalive echo.
pub const KIND_KEEPALIVE: u8 = 2;

/// Streams per tunnel (the original allows 256 tunnels per server session).
pub const MAX_STREAMS: usize = 256;

/// Receive window of a whole tunnel (yamux wants at least its default 256
/// KiB per stream): below `decouple::MAX_QUEUED`, so a well-behaved peer never
/// makes the send queue wait.
pub const MAX_WINDOW: usize = MAX_STREAMS * 256 * 1024;

/// yamux settings: at most [`MAX_STREAMS`] streams and [`MAX_WINDOW`] of
/// receive window per tunnel, which also bounds what a peer can make us queue.
fn config() -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_max_num_streams(MAX_STREAMS);
    c.set_max_connection_receive_window(Some(MAX_WINDOW));
    c.set_split_send_size(64 * 1024);
    c
}

type OpenReq = oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>;

/// Opens outbound streams on a client-side connection.
#[derive(Clone, Debug)]
pub struct Opener {
    tx: mpsc::Sender<OpenReq>,
}

impl Opener {
    /// Opens a new stream.
    pub async fn open(&self) -> std::io::Result<MuxStream> {
        let (tx, rx) = oneshot::channel();
        let gone = || std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "tunnel closed");
        self.tx.send(tx).await.map_err(|_| gone())?;
        let s = rx.await.map_err(|_| gone())?.map_err(std::io::Error::other)?;
        Ok(s.compat())
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
                        let _ = req.send(r);
                    }
                    Poll::Pending => {
                        waiting = Some(req);
                        break;
                    }
                }
            }
            loop {
                match conn.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(_unexpected))) => continue,
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            if !requests_open {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
    });
    (Opener { tx }, task)
}

/// Starts the server side; inbound streams arrive on the receiver, which
/// closes when the connection ends. Abort the task to drop the connection.
pub fn server<T>(io: T) -> (mpsc::Receiver<MuxStream>, tokio::task::JoinHandle<()>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = yamux::Connection::new(io, config(), yamux::Mode::Server);
    let (tx, rx) = mpsc::channel::<MuxStream>(512);
    let task = tokio::spawn(async move {
        poll_fn(|cx| loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    if tx.try_send(s.compat()).is_err() {
                        // Receiver gone or flooded: drop the stream (the peer sees a reset).
                        if tx.is_closed() {
                            return Poll::Ready(());
                        }
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
