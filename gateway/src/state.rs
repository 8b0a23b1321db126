//! The gateway's shared state, in narrow parts: each handler gets the parts
//! it uses ([`Gateway::routes`]), never the whole.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::certs::Certs;
use crate::config::GateConfig;
use crate::conn::Routes;
use crate::control::{Control, Registration};
use crate::host_names::HostNames;
use crate::limits::Limits;
use crate::metrics::{Figures, Metrics};
use crate::otp_mail::{MailGate, OtpMailer};
use crate::policy::PolicyHolder;
use crate::registry::{FileRegistry, MachineRegistry};
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
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Client connections waiting for their data connection.
    pub pending: Arc<PendingTunnels>,
    /// Connection admission.
    pub limits: Arc<Limits>,
    /// Relayed bytes.
    pub traffic: Arc<Traffic>,
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
}

impl Gateway {
    /// Loads everything the configuration names, and `ThinGatePolicy.ini`
    /// beside `ini`; nothing is written.
    pub fn from_config_at(cfg: GateConfig, ini: &Path) -> Result<Arc<Self>, StartError> {
        let policy = PolicyHolder::load_beside(ini)?;
        Self::with_policy(cfg, policy)
    }

    /// Loads everything the configuration names, without a policy; nothing is written.
    pub fn from_config(cfg: GateConfig) -> Result<Arc<Self>, StartError> {
        Self::with_policy(cfg, PolicyHolder::none())
    }

    fn with_policy(cfg: GateConfig, policy: Arc<PolicyHolder>) -> Result<Arc<Self>, StartError> {
        let certs = Certs::load(cfg.server_cert.clone(), cfg.server_key.clone())?;
        let registry = FileRegistry::open(&cfg.database_file)?;
        let limits = Limits::new(cfg.max_unestablished, cfg.max_connections_per_ip, !cfg.disable_dos_protection);
        let mailer = OtpMailer::new(&cfg.smtp)?;
        Ok(Arc::new(Self {
            mailer,
            mail_gate: MailGate::new(&cfg.smtp),
            registration: Registration::new(&cfg),
            host_names: HostNames::from_config(cfg.no_lookup_dns_hostname),
            certs: Arc::new(certs),
            registry: Arc::new(registry),
            sessions: Arc::default(),
            pending: Arc::default(),
            limits,
            traffic: Arc::default(),
            metrics: Arc::default(),
            started: Instant::now(),
            policy,
            wake_limits: Arc::default(),
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
        }
    }

    /// The handlers' parts; they end their work when `shutdown` fires.
    pub fn routes(&self, shutdown: &CancellationToken) -> Routes {
        let cfg = &self.cfg;
        let control = Control {
            registry: self.registry.clone(),
            sessions: self.sessions.clone(),
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
            pending: self.pending.clone(),
            metrics: self.metrics.clone(),
            traffic: self.traffic.clone(),
            mail_gate: self.mail_gate.clone(),
            max_per_session: cfg.max_tunnels_per_session,
            policy: self.policy.clone(),
            timing: cfg.timing(),
            shutdown: shutdown.clone(),
        };
        Routes { certs: self.certs.clone(), control: Arc::new(control), tunnels, figures: self.figures() }
    }
}
