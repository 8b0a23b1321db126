//! Byte relay between a paired client connection and server data connection.
//! Half-close is passed through; a relay with no traffic in either direction for
//! the tunnel timeout is closed (the apps ping well inside it).
//!
//! Two TLS 1.3 legs are relayed record by record ([`transcrypt`]): each record
//! is decrypted and encrypted again where it was read, with no copy. Any
//! other pair (a TLS 1.2 leg) goes through rustls's streams ([`relay`]).

#[cfg(test)]
pub(crate) mod test_tls;
mod transcrypt;

pub use thin_protocol::traffic_secrets::HandshakeSecrets;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::GateStream;

/// Traffic counters shared by all relays of a gateway.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes from clients to servers.
    pub client_to_server: AtomicU64,
    /// Bytes from servers to clients.
    pub server_to_client: AtomicU64,
}

/// When a relay last carried anything, and the counters its bytes go to.
#[derive(Clone)]
struct Meter {
    last: Arc<AtomicU64>,
    epoch: Instant,
    counter: Arc<Traffic>,
    /// This tunnel's own counter (the admin console's bytes per tunnel).
    tunnel: Arc<Traffic>,
}

impl Meter {
    fn new((counter, tunnel): (Arc<Traffic>, Arc<Traffic>)) -> Self {
        Self { last: Arc::new(AtomicU64::new(0)), epoch: Instant::now(), counter, tunnel }
    }

    /// `n` bytes went from the client to the server (`client_side`) or back.
    fn carried(&self, n: u64, client_side: bool) {
        if n == 0 {
            return;
        }
        self.last.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        for t in [&self.counter, &self.tunnel] {
            let c = if client_side { &t.client_to_server } else { &t.server_to_client };
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Milliseconds since anything was carried.
    fn quiet_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 - self.last.load(Ordering::Relaxed)
    }
}

/// A stream that records when it last read anything and counts bytes read.
struct Watched<S> {
    inner: S,
    meter: Meter,
    client_side: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.meter.carried((buf.filled().len() - before) as u64, self.client_side);
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

/// Whether a tunnel of these two legs is relayed record by record
/// ([`transcrypt`]): both are TLS 1.3 with a suite the relay knows.
pub fn in_place(client: &GateStream, server: &GateStream) -> bool {
    transcrypt::can_take(client) && transcrypt::can_take(server)
}

/// Relays a paired tunnel: record by record when both legs are TLS 1.3
/// ([`transcrypt`]), else through rustls's streams ([`relay`]). With
/// `bare_records` (both apps were told so in `Paired`, which only [`in_place`]
/// legs allow), each direction passes on what follows its sender's
/// `close_notify` as it comes.
pub async fn relay_tls(
    (client, server): (GateStream, GateStream),
    secrets: &HandshakeSecrets,
    idle: Duration,
    counters: (Arc<Traffic>, Arc<Traffic>),
    shutdown: tokio_util::sync::CancellationToken,
    bare_records: bool,
) -> RelayEnd {
    if in_place(&client, &server) {
        let legs = async {
            Ok::<_, std::io::Error>((
                transcrypt::Leg::take(client, secrets).await?,
                transcrypt::Leg::take(server, secrets).await?,
            ))
        };
        return match legs.await {
            Ok((c, s)) => {
                let meter = Meter::new(counters);
                watch(transcrypt::both_ways(c, s, meter.clone(), bare_records), &meter, idle, shutdown).await
            }
            Err(e) => RelayEnd::Error(e),
        };
    }
    relay(client, server, idle, counters, shutdown).await
}

/// Copies bytes both ways until both sides have closed, either side fails,
/// the relay is idle for `idle`, or `shutdown` fires. Bytes count in the
/// gateway's `traffic` and in this tunnel's own `tunnel` counter.
pub async fn relay<C, S>(
    client: C,
    server: S,
    idle: Duration,
    counters: (Arc<Traffic>, Arc<Traffic>),
    shutdown: tokio_util::sync::CancellationToken,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let meter = Meter::new(counters);
    let mut c = Watched { inner: client, meter: meter.clone(), client_side: true };
    let mut s = Watched { inner: server, meter: meter.clone(), client_side: false };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut s, 64 * 1024, 64 * 1024);
    watch(copy, &meter, idle, shutdown).await
}

/// Runs `copy` to its end, or until nothing moved for `idle` or `shutdown` fires.
async fn watch(
    copy: impl std::future::Future<Output = std::io::Result<(u64, u64)>>,
    meter: &Meter,
    idle: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> RelayEnd {
    tokio::pin!(copy);
    let tick = (idle / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            r = &mut copy => return match r { Ok((a, b)) => RelayEnd::Done(a, b), Err(e) => RelayEnd::Error(e) },
            _ = tokio::time::sleep(tick) => {
                if meter.quiet_ms() >= idle.as_millis() as u64 {
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
