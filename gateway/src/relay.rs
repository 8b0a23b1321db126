//! Byte relay between a paired client connection and server data connection.
//! Half-close is passed through; a relay with no traffic in either direction for
//! the tunnel timeout is closed (the apps ping well inside it).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Traffic counters shared by all relays of a gateway.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes from clients to servers.
    pub client_to_server: AtomicU64,
    /// Bytes from servers to clients.
    pub server_to_client: AtomicU64,
}

/// A stream that records when it last read anything and counts bytes read.
struct Watched<S> {
    inner: S,
    last: Arc<AtomicU64>,
    epoch: Instant,
    counter: Arc<Traffic>,
    /// This tunnel's own counter (the admin console's bytes per tunnel).
    tunnel: Arc<Traffic>,
    client_side: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            let now = self.epoch.elapsed().as_millis() as u64;
            self.last.store(now, Ordering::Relaxed);
            for t in [&self.counter, &self.tunnel] {
                let c = if self.client_side { &t.client_to_server } else { &t.server_to_client };
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How a relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions finished; bytes client->server and server->client.
    Done(u64, u64),
    /// No traffic for the idle timeout.
    Idle,
    /// An I/O error on either side.
    Error(std::io::Error),
    /// The gateway is shutting down.
    Shutdown,
}

/// Copies bytes both ways until both sides have closed, either side fails,
/// the relay is idle for `idle`, or `shutdown` fires. Bytes count in the
/// gateway's `traffic` and in this tunnel's own `tunnel` counter.
pub async fn relay<C, S>(
    client: C,
    server: S,
    idle: Duration,
    (traffic, tunnel): (Arc<Traffic>, Arc<Traffic>),
    shutdown: tokio_util::sync::CancellationToken,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut c = Watched {
        inner: client,
        last: last.clone(),
        epoch,
        counter: traffic.clone(),
        tunnel: tunnel.clone(),
        client_side: true,
    };
    let mut s = Watched { inner: server, last: last.clone(), epoch, counter: traffic, tunnel, client_side: false };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut s, 64 * 1024, 64 * 1024);
    tokio::pin!(copy);
    let tick = (idle / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            r = &mut copy => return match r { Ok((a, b)) => RelayEnd::Done(a, b), Err(e) => RelayEnd::Error(e) },
            _ = tokio::time::sleep(tick) => {
                let quiet = epoch.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
                if quiet >= idle.as_millis() as u64 {
                    return RelayEnd::Idle;
                }
            }
            _ = shutdown.cancelled() => return RelayEnd::Shutdown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_and_half_closes() {
        let (mut c_app, c_gw) = tokio::io::duplex(1 << 16);
        let (s_gw, mut s_app) = tokio::io::duplex(1 << 16);
        let t = Arc::new(Traffic::default());
        let one = Arc::new(Traffic::default());
        let h = tokio::spawn(relay(c_gw, s_gw, Duration::from_secs(5), (t.clone(), one.clone()), Default::default()));
        c_app.write_all(b"hello").await.unwrap();
        c_app.shutdown().await.unwrap();
        let mut got = Vec::new();
        s_app.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        // The other direction still works after the client's half-close.
        s_app.write_all(b"world").await.unwrap();
        s_app.shutdown().await.unwrap();
        let mut back = Vec::new();
        c_app.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"world");
        assert!(matches!(h.await.unwrap(), RelayEnd::Done(5, 5)));
        assert_eq!(t.client_to_server.load(Ordering::Relaxed), 5);
        assert_eq!(one.server_to_client.load(Ordering::Relaxed), 5, "the tunnel's own counter too");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_relay_is_closed() {
        let (_c_app, c_gw) = tokio::io::duplex(1024);
        let (s_gw, _s_app) = tokio::io::duplex(1024);
        let r = relay(c_gw, s_gw, Duration::from_secs(30), Default::default(), Default::default()).await;
        assert!(matches!(r, RelayEnd::Idle));
    }
}
