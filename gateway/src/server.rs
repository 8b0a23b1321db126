//! The server: the accept loop over a listener, the periodic save, the
//! statistics poster, and a graceful end. [`run`] is the library entry;
//! [`Gateway::start`] binds the configured address and runs it on a task.
//!
//! With `AcceptProxyProtocol 1`, only the load balancers of
//! `ProxyProtocolFrom` (loopback when unset) may connect; a connection from
//! any other peer is closed before a byte is read or sent, so nobody can claim
//! an address (loopback for `/thinstat/`, fresh ones against the limits) in a
//! header of their own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::config::GateConfig;
use crate::conn::Routes;
use crate::limits::Limits;
use crate::metrics::{inc, Metrics};
use crate::registry::MachineRegistry;
use crate::source::Networks;
use crate::state::{Gateway, StartError};
use crate::stats_post::StatPost;

/// Longest the end waits for open connections to close.
const DRAIN: Duration = Duration::from_secs(5);
/// Interval of the periodic save of the machine registry.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Serves `listener` with `state` until `shutdown` fires; then closes every
/// connection (waiting up to 5 s) and stores the machine registry.
pub async fn run(listener: TcpListener, state: Arc<Gateway>, shutdown: CancellationToken) {
    let routes = Arc::new(state.routes(&shutdown));
    let tracker = TaskTracker::new();
    let saver = tokio::spawn(save_loop(state.registry.clone(), state.certs.secrets(), shutdown.clone()));
    let policy_watch = tokio::spawn(state.policy.clone().watch_file(shutdown.clone()));
    let sampler = tokio::spawn(state.admin.clone().sample_loop(shutdown.clone()));
    let poster = state.cfg.stat_post_url.clone().map(|url| {
        let post = StatPost { url, interval: state.cfg.stat_post_interval, cert: state.cfg.server_cert.clone() };
        tokio::spawn(crate::stats_post::run(state.figures(), post, shutdown.clone()))
    });
    let proxy_from = proxy_peers(&state.cfg);
    if let Some(from) = &proxy_from {
        if state.cfg.proxy_protocol_from.is_empty() {
            warn!(
                "AcceptProxyProtocol 1 without ProxyProtocolFrom: PROXY headers are trusted from loopback only \
                 (127.0.0.0/8, ::1) and connections from any other peer are closed; list the load balancers in \
                 ProxyProtocolFrom"
            );
        } else {
            info!(%from, "PROXY headers are trusted from ProxyProtocolFrom only; other peers are closed");
        }
    }
    let accept = Accept {
        limits: state.limits.clone(),
        metrics: state.metrics.clone(),
        proxy_from,
        handshake: state.cfg.handshake_timeout,
        routes,
    };
    accept.serve(listener, &tracker, &shutdown).await;
    let _ = saver.await;
    let _ = policy_watch.await;
    let _ = sampler.await;
    if let Some(p) = poster {
        let _ = p.await;
    }
    tracker.close();
    let _ = tokio::time::timeout(DRAIN, tracker.wait()).await;
    if let Err(e) = state.registry.flush().await {
        warn!(error = %e, "final save of the machine database failed");
    }
    info!("stopped");
}

/// The peers allowed to send a PROXY header: `None` without
/// `AcceptProxyProtocol`; else `ProxyProtocolFrom`, or loopback when unset.
pub fn proxy_peers(cfg: &GateConfig) -> Option<Networks> {
    cfg.accept_proxy_protocol.then(|| match &cfg.proxy_protocol_from {
        from if from.is_empty() => Networks::loopback(),
        from => from.clone(),
    })
}

/// What the accept loop uses.
struct Accept {
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    /// With `AcceptProxyProtocol 1`: the peers allowed to send a header.
    proxy_from: Option<Networks>,
    handshake: Duration,
    routes: Arc<Routes>,
}

impl Accept {
    async fn serve(self, listener: TcpListener, tracker: &TaskTracker, shutdown: &CancellationToken) {
        let this = Arc::new(self);
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            inc(&this.metrics.connections);
            let _ = tcp.set_nodelay(true);
            let this = this.clone();
            if let Some(from) = &this.proxy_from {
                if !from.contains(peer.ip()) {
                    inc(&this.metrics.proxy_untrusted);
                    tracing::debug!(%peer, "closed: not a load balancer of ProxyProtocolFrom");
                    drop(tcp);
                    continue;
                }
                // Waiting headers count as unestablished connections.
                let Some(permit) = this.limits.unestablished() else {
                    inc(&this.metrics.connections_refused);
                    tracing::debug!(%peer, "connection refused by DoS protection");
                    continue;
                };
                // The real peer is in the PROXY header; admit by that address.
                tracker.spawn(async move {
                    let mut tcp = tcp;
                    let real = match tokio::time::timeout(this.handshake, crate::proxy_protocol::read_header(&mut tcp))
                        .await
                    {
                        Ok(Ok(addr)) => addr.unwrap_or(peer),
                        Ok(Err(e)) => return tracing::debug!(%peer, "closed: {e}"),
                        Err(_) => return tracing::debug!(%peer, "closed: no PROXY header"),
                    };
                    let Some(slot) = this.limits.slot(real.ip()) else {
                        inc(&this.metrics.connections_refused);
                        return tracing::debug!(%peer, %real, "connection refused by DoS protection");
                    };
                    this.handle(tcp, real, (slot, permit)).await;
                });
            } else {
                tracker.spawn(async move { this.admit_and_handle(tcp, peer).await });
            }
        }
    }

    async fn admit_and_handle(&self, tcp: TcpStream, peer: SocketAddr) {
        let Some(admission) = self.limits.admit(peer.ip()) else {
            inc(&self.metrics.connections_refused);
            return tracing::debug!(%peer, "connection refused by DoS protection");
        };
        self.handle(tcp, peer, admission).await;
    }

    async fn handle(&self, tcp: TcpStream, peer: SocketAddr, admission: crate::conn::Admission) {
        let span = tracing::info_span!("conn", %peer);
        crate::conn::handle(self.routes.clone(), tcp, peer, admission).instrument(span).await;
    }
}

/// Saves the registry every [`SAVE_EVERY`]; also lets the handshake secrets
/// nobody took age out while no new connection comes.
async fn save_loop(
    registry: Arc<dyn MachineRegistry>,
    secrets: Arc<crate::relay::HandshakeSecrets>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SAVE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        secrets.prune(std::time::Instant::now());
        if let Err(e) = registry.flush().await {
            warn!(error = %e, "periodic save of the machine database failed");
        }
    }
}

impl Gateway {
    /// Binds the configured address and starts serving.
    pub async fn start(self: &Arc<Self>) -> Result<RunningGateway, StartError> {
        let addr = SocketAddr::new(self.cfg.listen_address, self.cfg.listen_port);
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(listener, self.clone(), shutdown.clone()));
        info!(%local, "listening");
        Ok(RunningGateway { addr: local, gateway: self.clone(), shutdown, task })
    }
}

/// A gateway that is listening.
#[derive(Debug)]
pub struct RunningGateway {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its state.
    pub gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// Stops accepting, closes every connection, saves the database.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
