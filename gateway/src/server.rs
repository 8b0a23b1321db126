//! The gateway as a whole: configuration, TLS, registry, the accept loop and
//! graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::config::GateConfig;
use crate::limits::Limits;
use crate::machine_db::MachineDb;
use crate::registry::Registry;
use crate::relay::Traffic;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `ThinGate.ini` is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Certificate or key is wrong.
    #[error(transparent)]
    Tls(#[from] thin_protocol::tls::TlsError),
    /// `MachineDatabase.config` is wrong.
    #[error(transparent)]
    Db(#[from] crate::machine_db::DbError),
    /// The `Smtp*` settings cannot be used.
    #[error(transparent)]
    Mail(#[from] crate::otp_mail::MailSetupError),
    /// The port cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Shared state of a running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Settings from `ThinGate.ini`.
    pub cfg: GateConfig,
    tls: RwLock<Arc<ServerConfig>>,
    /// Machines and sessions.
    pub registry: Registry,
    /// Connection admission.
    pub limits: Arc<Limits>,
    /// Relayed bytes.
    pub traffic: Arc<Traffic>,
    /// Fires on shutdown.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// When the gateway started.
    pub started: Instant,
    /// Event counters.
    pub metrics: crate::metrics::Metrics,
    /// Mails one-time passwords; `None` without `SmtpServerHostname`.
    pub mailer: Option<crate::otp_mail::OtpMailer>,
}

impl Gateway {
    /// Loads everything the configuration names; nothing is written.
    pub fn from_config(cfg: GateConfig) -> Result<Arc<Self>, StartError> {
        let tls = thin_protocol::tls::server_config(&cfg.server_cert, &cfg.server_key)?;
        let db = MachineDb::open(&cfg.database_file)?;
        let limits = Limits::new(cfg.max_unestablished, cfg.max_connections_per_ip, !cfg.disable_dos_protection);
        let mailer = crate::otp_mail::OtpMailer::new(&cfg.smtp)?;
        Ok(Arc::new(Self {
            mailer,
            tls: RwLock::new(tls),
            registry: Registry::new(db),
            limits,
            traffic: Arc::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            started: Instant::now(),
            metrics: Default::default(),
            cfg,
        }))
    }

    /// Loads `ThinGate.ini` and everything it names.
    pub fn load(ini: &Path) -> Result<Arc<Self>, StartError> {
        let cfg = GateConfig::load(ini)?;
        for w in &cfg.warnings {
            warn!("{w}");
        }
        Self::from_config(cfg)
    }

    /// The TLS configuration in force.
    pub fn tls(&self) -> Arc<ServerConfig> {
        self.tls.read().expect("tls lock").clone()
    }

    /// Re-reads certificate and key; on error the old ones stay in force.
    pub fn reload_tls(&self) -> Result<(), thin_protocol::tls::TlsError> {
        let new = thin_protocol::tls::server_config(&self.cfg.server_cert, &self.cfg.server_key)?;
        *self.tls.write().expect("tls lock") = new;
        Ok(())
    }

    /// Binds the configured address and starts serving.
    pub async fn start(self: &Arc<Self>) -> Result<RunningGateway, StartError> {
        let addr = SocketAddr::new(self.cfg.listen_address, self.cfg.listen_port);
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let gw = self.clone();
        let accept = tokio::spawn(async move { gw.accept_loop(listener).await });
        let gw = self.clone();
        let saver = tokio::spawn(async move { gw.save_loop().await });
        info!(%local, "listening");
        let mut tasks = vec![accept, saver];
        if let Some(url) = self.cfg.stat_post_url.clone() {
            tasks.push(tokio::spawn(crate::stats_post::run(self.clone(), url)));
        }
        Ok(RunningGateway { addr: local, gateway: self.clone(), tasks })
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
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
                _ = self.shutdown.cancelled() => return,
            };
            crate::metrics::inc(&self.metrics.connections);
            let _ = tcp.set_nodelay(true);
            let gw = self.clone();
            if self.cfg.accept_proxy_protocol {
                // The real peer is in the PROXY header; admit by that address.
                self.tracker.spawn(async move {
                    let mut tcp = tcp;
                    let hs = gw.cfg.handshake_timeout;
                    let real = match tokio::time::timeout(hs, crate::proxy_protocol::read_header(&mut tcp)).await {
                        Ok(Ok(addr)) => addr.unwrap_or(peer),
                        Ok(Err(e)) => return tracing::debug!(%peer, "closed: {e}"),
                        Err(_) => return tracing::debug!(%peer, "closed: no PROXY header"),
                    };
                    gw.admit_and_handle(tcp, real).await;
                });
            } else {
                self.tracker.spawn(async move { gw.admit_and_handle(tcp, peer).await });
            }
        }
    }

    async fn admit_and_handle(self: Arc<Self>, tcp: tokio::net::TcpStream, peer: SocketAddr) {
        let Some(admission) = self.limits.admit(peer.ip()) else {
            crate::metrics::inc(&self.metrics.connections_refused);
            return tracing::debug!(%peer, "connection refused by DoS protection");
        };
        let span = tracing::info_span!("conn", %peer);
        crate::conn::handle(self, tcp, peer, admission).instrument(span).await;
    }

    async fn save_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let gw = self.clone();
            let r = tokio::task::spawn_blocking(move || gw.registry.save()).await;
            if let Ok(Err(e)) = r {
                warn!(error = %e, "periodic save of the machine database failed");
            }
        }
    }
}

/// A gateway that is listening.
#[derive(Debug)]
pub struct RunningGateway {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its state.
    pub gateway: Arc<Gateway>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    /// Stops accepting, closes every connection, saves the database.
    pub async fn shutdown(self) {
        self.gateway.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.gateway.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gateway.tracker.wait()).await;
        let gw = self.gateway.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || gw.registry.save()).await {
            warn!(error = %e, "final save of the machine database failed");
        }
        info!("stopped");
    }
}
