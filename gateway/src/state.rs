//! The gateway's shared state, in narrow parts: each handler gets the parts
//! it uses ([`Gateway::routes`]), never the whole.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::admin::Admin;
use crate::certs::Certs;
use crate::config::GateConfig;
use crate::conn::Routes;
use crate::control::{Announcer, Control, Registration};
use crate::host_names::HostNames;
use crate::limits::Limits;
use crate::live::{History, LiveTunnels};
use crate::metrics::{Figures, Metrics};
use crate::otp_mail::{MailGate, OtpMailer};
use crate::policy::PolicyHolder;
use crate::registry::cluster_view::ClusterInfo;
use crate::registry::{
    EtcdDirectory, EtcdError, EtcdLink, EtcdRegistry, FileRegistry, LocalDirectory, MachineRegistry, SessionDirectory,
};
use crate::relay::Traffic;
use crate::sessions::Sessions;
use crate::tunnel::{PendingTunnels, Tunnels};
use crate::wake::WakeLimits;

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
    /// `ThinGatePolicy.ini` is wrong.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The `Smtp*` settings cannot be used.
    #[error(transparent)]
    Mail(#[from] crate::otp_mail::MailSetupError),
    /// The cluster's etcd cannot be used (`StandaloneMode 0`).
    #[error("cluster edition (StandaloneMode 0): {0}")]
    Cluster(#[from] EtcdError),
    /// [`Gateway::from_config`] was given a cluster member's settings.
    #[error("a cluster member (StandaloneMode 0) connects to etcd as it starts; open it with Gateway::open")]
    ClusterNeedsOpen,
    /// The port cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// The state of a gateway: settings and the shared parts.
#[derive(Debug)]
pub struct Gateway {
    /// Settings from `ThinGate.ini`.
    pub cfg: Arc<GateConfig>,
    /// Certificate and key in force.
    pub certs: Arc<Certs>,
    /// Registered machines.
    pub registry: Arc<dyn MachineRegistry>,
    /// Which gateway each office PC is online at (the cluster's directory).
    pub directory: Arc<dyn SessionDirectory>,
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Client connections waiting for their data connection.
    pub pending: Arc<PendingTunnels>,
    /// Connection admission.
    pub limits: Arc<Limits>,
    /// Relayed bytes.
    pub traffic: Arc<Traffic>,
    /// Tunnels relaying now (the admin console's list).
    pub live: Arc<LiveTunnels>,
    /// The admin console (`/thinadmin/`) and its last day of samples.
    pub admin: Arc<Admin>,
    /// Event counters.
    pub metrics: Arc<Metrics>,
    /// Mails one-time passwords; `None` without `SmtpServerHostname`.
    pub mailer: Option<OtpMailer>,
    /// Whether an OTP mail may go out (client logging in, budgets, domains).
    pub mail_gate: Arc<MailGate>,
    /// Registration limits and token.
    pub registration: Arc<Registration>,
    /// Names of connecting addresses (`NoLookupDnsHostname`).
    pub host_names: Arc<HostNames>,
    /// The company's rules (`ThinGatePolicy.ini`) and wake groups.
    pub policy: Arc<PolicyHolder>,
    /// Wake-on-LAN requests per office PC and per target.
    pub wake_limits: Arc<WakeLimits>,
    /// When the gateway started.
    pub started: Instant,
    /// The cluster it is a member of, for showing it (`/thinstat/`).
    pub cluster: Option<Arc<ClusterInfo>>,
}

impl Gateway {
    /// Loads everything the configuration of a standalone gateway names,
    /// without a policy; nothing is written. A cluster member is opened with
    /// [`Gateway::open`].
    pub fn from_config(cfg: GateConfig) -> Result<Arc<Self>, StartError> {
        Self::standalone(cfg, PolicyHolder::none())
    }

    /// [`Gateway::from_config`] with `ThinGatePolicy.ini` beside `ini`.
    pub fn from_config_at(cfg: GateConfig, ini: &Path) -> Result<Arc<Self>, StartError> {
        let policy = PolicyHolder::load_beside(ini)?;
        Self::standalone(cfg, policy)
    }

    fn standalone(cfg: GateConfig, policy: Arc<PolicyHolder>) -> Result<Arc<Self>, StartError> {
        if cfg.cluster.is_some() {
            return Err(StartError::ClusterNeedsOpen);
        }
        let registry = FileRegistry::open(&cfg.database_file)?;
        Self::assemble(cfg, Arc::new(registry), Arc::new(LocalDirectory::default()), policy, None)
    }

    /// Loads what the configuration names; a cluster member (`StandaloneMode
    /// 0`) also connects to etcd, loads the registry from it and joins the
    /// cluster's session directory.
    pub async fn open(cfg: GateConfig) -> Result<Arc<Self>, StartError> {
        Self::open_with(cfg, PolicyHolder::none()).await
    }

    /// [`Gateway::open`] with `ThinGatePolicy.ini` beside `ini`.
    pub async fn open_at(cfg: GateConfig, ini: &Path) -> Result<Arc<Self>, StartError> {
        let policy = PolicyHolder::load_beside(ini)?;
        Self::open_with(cfg, policy).await
    }

    async fn open_with(cfg: GateConfig, policy: Arc<PolicyHolder>) -> Result<Arc<Self>, StartError> {
        let Some(cluster) = cfg.cluster.clone() else {
            return Self::standalone(cfg, policy);
        };
        let link = EtcdLink::connect(&cluster).await?;
        let registry = EtcdRegistry::open(link.clone()).await?;
        let directory = EtcdDirectory::join(link.clone(), &cluster.public_url, cluster.lease_ttl).await?;
        tracing::info!(cluster = %cluster.name, url = %cluster.public_url, machines = registry.registered_count(), "joined the cluster");
        let info = ClusterInfo { link, name: cluster.name.clone(), url: cluster.public_url.clone() };
        Self::assemble(cfg, Arc::new(registry), Arc::new(directory), policy, Some(Arc::new(info)))
    }

    fn assemble(
        cfg: GateConfig,
        registry: Arc<dyn MachineRegistry>,
        directory: Arc<dyn SessionDirectory>,
        policy: Arc<PolicyHolder>,
        cluster: Option<Arc<ClusterInfo>>,
    ) -> Result<Arc<Self>, StartError> {
        let certs = Certs::load(cfg.server_cert.clone(), cfg.server_key.clone())?;
        let limits = Limits::new(cfg.max_unestablished, cfg.max_connections_per_ip, !cfg.disable_dos_protection);
        let mailer = OtpMailer::new(&cfg.smtp)?;
        let sessions: Arc<Sessions> = Arc::default();
        let (traffic, live): (Arc<Traffic>, Arc<LiveTunnels>) = Default::default();
        let history = Arc::new(History::default());
        let password = cfg.admin_password.clone();
        let admin = Admin::new(registry.clone(), sessions.clone(), live.clone(), history, traffic.clone(), password);
        Ok(Arc::new(Self {
            mailer,
            mail_gate: MailGate::new(&cfg.smtp),
            registration: Registration::new(&cfg),
            host_names: HostNames::from_config(cfg.no_lookup_dns_hostname),
            certs: Arc::new(certs),
            registry,
            directory,
            sessions,
            pending: Arc::default(),
            limits,
            traffic,
            live,
            admin: Arc::new(admin),
            metrics: Arc::default(),
            started: Instant::now(),
            policy,
            wake_limits: Arc::default(),
            cluster,
            cfg: Arc::new(cfg),
        }))
    }

    /// Loads `ThinGate.ini` and everything it names.
    pub fn load(ini: &Path) -> Result<Arc<Self>, StartError> {
        let cfg = GateConfig::load(ini)?;
        for w in &cfg.warnings {
            warn!("{w}");
        }
        Self::from_config_at(cfg, ini)
    }

    /// Re-reads certificate and key; on error the old ones stay in force.
    pub fn reload_tls(&self) -> Result<(), thin_protocol::tls::TlsError> {
        self.certs.reload()
    }

    /// What the figures are read from.
    pub fn figures(&self) -> Figures {
        Figures {
            metrics: self.metrics.clone(),
            traffic: self.traffic.clone(),
            sessions: self.sessions.clone(),
            registry: self.registry.clone(),
            started: self.started,
            cluster: self.cluster.clone(),
        }
    }

    /// The handlers' parts; they end their work when `shutdown` fires.
    pub fn routes(&self, shutdown: &CancellationToken) -> Routes {
        let cfg = &self.cfg;
        let control = Control {
            registry: self.registry.clone(),
            sessions: self.sessions.clone(),
            announcer: Announcer {
                directory: self.directory.clone(),
                url: cfg.cluster.as_ref().map_or("", |c| c.public_url.as_str()).into(),
            },
            metrics: self.metrics.clone(),
            mailer: self.mailer.clone(),
            mail_gate: self.mail_gate.clone(),
            registration: self.registration.clone(),
            host_names: self.host_names.clone(),
            timing: cfg.timing(),
            disable_register: cfg.disable_register,
            max_sessions: cfg.max_sessions,
            policy: self.policy.clone(),
            wake_limits: self.wake_limits.clone(),
            shutdown: shutdown.clone(),
        };
        let tunnels = Tunnels {
            sessions: self.sessions.clone(),
            registry: self.registry.clone(),
            directory: self.directory.clone(),
            public_url: cfg.cluster.as_ref().map_or("", |c| c.public_url.as_str()).into(),
            pending: self.pending.clone(),
            metrics: self.metrics.clone(),
            traffic: self.traffic.clone(),
            secrets: self.certs.secrets(),
            live: self.live.clone(),
            mail_gate: self.mail_gate.clone(),
            max_per_session: cfg.max_tunnels_per_session,
            policy: self.policy.clone(),
            timing: cfg.timing(),
            shutdown: shutdown.clone(),
        };
        Routes {
            certs: self.certs.clone(),
            control: Arc::new(control),
            tunnels,
            figures: self.figures(),
            admin: self.admin.clone(),
        }
    }
}
