//! ThinServer as a background service (`thinsvr service`): the agent, run with
//! the config folder's settings and restarted whenever they change, and the
//! local admin port (`127.0.0.1:<RPC port>`) through which the window reads the
//! live state and changes the settings. Until the computer has an ID and a
//! password the service only serves the admin port.
//!
//! On Windows the service control manager starts it (see `winsvc`); on Linux
//! systemd does, with the unit the builder ships; either way the body is
//! [`run`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use thin_protocol::auth::PasswordFile;
use thin_protocol::secret::Secret;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::admin_rpc::{self, AdminHandler, AdminReply, AdminRequest, AdminSecret, AdminStatus, LinkState};
use crate::control::{classify_agent, ControlError};
use crate::link::Link;
use crate::password_policy;
use crate::policy::PolicyCell;
use crate::server_agent::{self, ServeOptions, ServerState, ServerStats};
use crate::settings::ConfigDir;

/// How often a service that the company's policy stopped tries again.
const POLICY_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Name of the admin secret in the config folder.
pub const ADMIN_SECRET_FILE: &str = "admin.secret";

/// What stops the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The admin port is taken.
    #[error("cannot listen on the admin port 127.0.0.1:{port}: {source} (is another ThinServer of this brand running? Stop it, or give another port with --rpc-port)")]
    AdminPort {
        /// The port.
        port: u16,
        /// The socket error.
        source: std::io::Error,
    },
    /// The admin secret cannot be made or read.
    #[error(transparent)]
    Admin(#[from] admin_rpc::AdminError),
    /// The config folder cannot be read.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// The config folder cannot be made the service's own.
    #[error(transparent)]
    Private(#[from] crate::platform::acl::AclError),
}

/// How to run the service.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    /// Admin port on 127.0.0.1 (the brand's RPC port; 0 picks a free one).
    pub admin_port: u16,
    /// How to serve tunnels.
    pub serve: ServeOptions,
}

/// A running service's admin address, reported once it listens.
pub type Ready = tokio::sync::oneshot::Sender<SocketAddr>;

/// Serves until `shutdown`: the admin port, and the agent while the computer
/// is registered. `ready` gets the admin address once it listens.
pub async fn run(
    link: Option<Link>,
    dir: ConfigDir,
    opts: ServiceOptions,
    shutdown: CancellationToken,
    ready: Option<Ready>,
) -> Result<(), ServiceError> {
    // Before anything in the folder is read; held while serving (see platform::acl).
    let private = crate::platform::acl::secure_config_dir(&dir.0)?;
    private.report();
    let secret = Arc::new(AdminSecret::load_or_create(&dir.0.join(ADMIN_SECRET_FILE))?);
    let _ = dir.identity()?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.admin_port))
        .await
        .map_err(|source| ServiceError::AdminPort { port: opts.admin_port, source })?;
    let addr = listener.local_addr().map_err(|source| ServiceError::AdminPort { port: opts.admin_port, source })?;
    info!(%addr, "admin port open");
    // One built-in desktop (and one certificate) for every restart of the agent.
    let mut opts = opts;
    let desktop = opts.serve.desktop.get_or_insert_with(crate::desktop::Desktop::for_platform).clone();
    let (state_tx, state_rx) = watch::channel(ServerState::Connecting);
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        link: link.clone(),
        state: state_rx,
        stats: opts.serve.stats.clone(),
        policy: opts.serve.policy.clone(),
        restart: Notify::new(),
        changing: Mutex::new(()),
        refused: std::sync::Mutex::new(None),
        builtin_desktop: desktop.available(),
    });
    let admin = tokio::spawn(admin_rpc::serve(listener, secret, shared.clone()));
    let _admin = AbortOnDropHandle::new(admin);
    if let Some(r) = ready {
        let _ = r.send(addr);
    }
    loop {
        let registered = dir.settings()?.pcid.is_some() && dir.password().is_ok();
        let runnable = match &link {
            Some(l) if registered => Some(l.clone()),
            _ => None,
        };
        let Some(link) = runnable else {
            tokio::select! {
                _ = shared.restart.notified() => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            continue;
        };
        *shared.refused.lock().expect("lock") = None;
        let agent_stop = shutdown.child_token();
        let agent = server_agent::run_with(link, dir.clone(), opts.serve.clone(), agent_stop.clone(), state_tx.clone());
        tokio::select! {
            r = agent => match r {
                Ok(()) if shutdown.is_cancelled() => return Ok(()),
                Ok(()) => {}
                Err(e) => {
                    // Refused for good (unknown key, unreadable files): wait for a change.
                    // Refused by the company's policy: also try again now and then, since
                    // the admin may change the policy.
                    warn!("ThinServer stopped serving: {e}");
                    let by_policy = matches!(e, server_agent::AgentError::Policy(_));
                    *shared.refused.lock().expect("lock") = Some(e.to_string());
                    let again = async {
                        if by_policy {
                            tokio::time::sleep(POLICY_RETRY).await
                        } else {
                            std::future::pending().await
                        }
                    };
                    tokio::select! {
                        _ = shared.restart.notified() => {}
                        _ = again => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
            },
            _ = shared.restart.notified() => {
                info!("settings changed: reconnecting");
                agent_stop.cancel();
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// What the admin port's handler shares with the service loop.
struct Shared {
    dir: ConfigDir,
    link: Option<Link>,
    state: watch::Receiver<ServerState>,
    stats: Arc<ServerStats>,
    /// The company's rules the gateway sent last.
    policy: PolicyCell,
    /// Wakes the service loop to (re)start the agent with the new settings.
    restart: Notify,
    /// One change at a time.
    changing: Mutex<()>,
    /// Why the agent gave up, until the next change.
    refused: std::sync::Mutex<Option<String>>,
    /// Whether this PC has a built-in desktop.
    builtin_desktop: bool,
}

impl Shared {
    fn status(&self) -> Result<AdminStatus, ControlError> {
        let s = self.dir.settings().map_err(other)?;
        let password_set = self.dir.password().is_ok();
        let local_port = s.target.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(3389);
        let refused = self.refused.lock().expect("lock").clone();
        let state = if s.pcid.is_none() || !password_set {
            LinkState::NotRegistered
        } else if let Some(why) = refused {
            LinkState::Offline(why)
        } else if self.link.is_none() {
            LinkState::NoEntryPoint
        } else {
            match self.state.borrow().clone() {
                ServerState::Connecting => LinkState::Connecting,
                ServerState::Online { .. } => LinkState::Online,
                ServerState::Offline { reason } => LinkState::Offline(reason),
            }
        };
        Ok(AdminStatus {
            pcid: s.pcid,
            password_set,
            state,
            clients: self.stats.tunnels.load(Ordering::Relaxed) as u64,
            otp_email: s.otp_email,
            local_port,
            policy: self.policy.get(),
            desktop: s.desktop,
            builtin_desktop: self.builtin_desktop,
        })
    }

    async fn change(&self, req: AdminRequest) -> Result<(), ControlError> {
        let _one = self.changing.lock().await;
        match req {
            AdminRequest::Status => return Ok(()),
            AdminRequest::SetPcid { pcid, password } => {
                let link = self.link.as_ref().ok_or(ControlError::NoEntryPoint)?;
                if let Some(pw) = &password {
                    thin_protocol::pcid::normalize(&pcid).map_err(|_| ControlError::PcidInvalid)?;
                    password_policy::check(pw.expose(), &[&pcid]).map_err(ControlError::WeakPassword)?;
                }
                // Registering always stores a verifier; a rename puts the current one back.
                let keep = match &password {
                    Some(_) => None,
                    None => Some(self.dir.password().map_err(|_| ControlError::PasswordFirst)?),
                };
                let pw = password.unwrap_or_else(crate::otp::new_code);
                let stored =
                    server_agent::register(link, &self.dir, &pcid, &pw).await.map_err(|e| classify_agent(&e, &pcid))?;
                if let Some(k) = keep {
                    self.dir.save_password(&k).map_err(other)?;
                }
                info!(pcid = %stored, "computer ID set through the admin port");
            }
            AdminRequest::SetPassword { password } => {
                let pcid = self.dir.settings().map_err(other)?.pcid.unwrap_or_default();
                password_policy::check(password.expose(), &[&pcid]).map_err(ControlError::WeakPassword)?;
                let file = stretch(password).await?;
                self.dir.save_password(&file).map_err(other)?;
                info!("password changed through the admin port");
            }
            AdminRequest::SetOtpEmail { email } => {
                let email = match email {
                    Some(e) => Some(crate::otp::check_email(&e).map_err(|_| ControlError::EmailInvalid)?),
                    None if self.policy.get().enforce_otp => {
                        return Err(ControlError::FixedByPolicy(
                            "one-time passwords are required (ENFORCE_OTP); change the mail address instead".into(),
                        ))
                    }
                    None => None,
                };
                let mut s = self.dir.settings().map_err(other)?;
                s.otp_email = email;
                self.dir.save_settings(&s).map_err(other)?;
            }
            AdminRequest::SetLocalPort { port } => {
                if port == 0 {
                    return Err(ControlError::Other("port 0".into()));
                }
                let mut s = self.dir.settings().map_err(other)?;
                let host = s.target.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_else(|| "127.0.0.1".into());
                s.target = format!("{host}:{port}");
                self.dir.save_settings(&s).map_err(other)?;
            }
            AdminRequest::SetDesktop { desktop } => {
                let mut s = self.dir.settings().map_err(other)?;
                s.desktop = desktop;
                self.dir.save_settings(&s).map_err(other)?;
                info!(%desktop, "desktop set through the admin port");
            }
        }
        self.restart.notify_one();
        Ok(())
    }
}

fn other(e: impl std::fmt::Display) -> ControlError {
    ControlError::Other(e.to_string())
}

/// Stretches a password into its verifier off the async threads.
async fn stretch(password: Secret) -> Result<PasswordFile, ControlError> {
    tokio::task::spawn_blocking(move || PasswordFile::create(password.expose())).await.map_err(other)?.map_err(other)
}

impl AdminHandler for Shared {
    fn handle(&self, req: AdminRequest) -> futures::future::BoxFuture<'_, AdminReply> {
        Box::pin(async move {
            match self.change(req).await.and_then(|()| self.status()) {
                Ok(s) => AdminReply::Status(s),
                Err(error) => AdminReply::Error { error },
            }
        })
    }
}
