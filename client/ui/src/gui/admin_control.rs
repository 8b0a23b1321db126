//! [`ServerControl`] over the service's local admin port: what ThinServer's
//! window uses in the apps. The window is only a front end; the service
//! (`thinsvr service`, started by Windows or systemd) owns the settings and the
//! gateway session. The live state is polled on a thread of its own, so a slow
//! action never freezes the window.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_protocol::secret::Secret;

use super::server_window::{ControlError, DesktopMode, Online, ServerConfig, ServerControl, ServerStatus};
use crate::strings::Key;
use thin_tunnel::admin_rpc::{AdminClient, AdminReply, AdminRequest, AdminSecret, AdminStatus, LinkState};

/// How often the window's poller asks for the live state.
const POLL: Duration = Duration::from_millis(500);

/// The service's admin port and the file of its secret.
pub struct AdminControl {
    addr: SocketAddr,
    secret: PathBuf,
    last: Arc<Mutex<Option<AdminStatus>>>,
}

impl AdminControl {
    /// Talks to the service on `addr`, proving knowledge of the secret in the
    /// file `secret`; starts the poller of the live state.
    pub fn new(addr: SocketAddr, secret: PathBuf) -> Self {
        let me = Self { addr, secret, last: Arc::default() };
        let (addr, secret, weak) = (me.addr, me.secret.clone(), Arc::downgrade(&me.last));
        let _ = std::thread::Builder::new().name("thin-admin-poll".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            let mut client: Option<AdminClient> = None;
            // Ends with the window (the last strong reference).
            while let Some(last) = weak.upgrade() {
                let st = rt.block_on(async {
                    if client.is_none() {
                        let s = AdminSecret::load(&secret).ok()?;
                        client = AdminClient::connect(addr, &s).await.ok();
                    }
                    let reply = match client.as_mut() {
                        Some(c) => c.call(AdminRequest::Status).await,
                        None => return None,
                    };
                    match reply {
                        Ok(AdminReply::Status(s)) => Some(s),
                        _ => {
                            client = None;
                            None
                        }
                    }
                });
                *last.lock().expect("lock") = st;
                drop(last);
                std::thread::sleep(POLL);
            }
        });
        me
    }

    /// Makes one request on a connection of its own.
    fn call(&self, req: AdminRequest) -> Result<AdminStatus, ControlError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(other)?;
        let reply = rt.block_on(async {
            let secret = AdminSecret::load(&self.secret).map_err(other)?;
            let mut c = AdminClient::connect(self.addr, &secret).await.map_err(other)?;
            c.call(req).await.map_err(other)
        })?;
        match reply {
            AdminReply::Status(s) => {
                *self.last.lock().expect("lock") = Some(s.clone());
                Ok(s)
            }
            AdminReply::Error { error } => Err(error),
        }
    }
}

fn other(e: impl std::fmt::Display) -> ControlError {
    ControlError::Other(e.to_string())
}

impl ServerControl for AdminControl {
    fn status(&self) -> ServerStatus {
        match self.last.lock().expect("lock").as_ref() {
            None => ServerStatus { online: Online::Stopped, clients: None, policy: Default::default() },
            Some(s) => ServerStatus {
                online: match &s.state {
                    LinkState::NotRegistered => Online::Unknown,
                    LinkState::Connecting => Online::Connecting,
                    LinkState::Online => Online::Online,
                    LinkState::Offline(why) => Online::Offline(why.clone()),
                    LinkState::NoEntryPoint => Online::Offline(crate::gui::tr(Key::ERR_NO_ENTRY_POINT)),
                },
                clients: Some(s.clients as usize),
                policy: s.policy.clone(),
            },
        }
    }

    fn config(&self) -> Result<ServerConfig, ControlError> {
        let s = self.call(AdminRequest::Status)?;
        Ok(ServerConfig {
            pcid: s.pcid,
            port: s.local_port,
            otp_email: s.otp_email,
            has_password: s.password_set,
            desktop: s.desktop,
            builtin_desktop: s.builtin_desktop,
        })
    }

    fn register(&self, pcid: &str, password: Option<&Secret>) -> Result<String, ControlError> {
        let s = self.call(AdminRequest::SetPcid { pcid: pcid.to_string(), password: password.cloned() })?;
        s.pcid.ok_or_else(|| ControlError::Other("the service kept no computer ID".into()))
    }

    fn set_password(&self, password: &Secret) -> Result<(), ControlError> {
        self.call(AdminRequest::SetPassword { password: password.clone() }).map(drop)
    }

    fn set_otp_email(&self, email: Option<&str>) -> Result<(), ControlError> {
        self.call(AdminRequest::SetOtpEmail { email: email.map(str::to_string) }).map(drop)
    }

    fn set_port(&self, port: u16) -> Result<(), ControlError> {
        self.call(AdminRequest::SetLocalPort { port }).map(drop)
    }

    fn set_desktop(&self, desktop: DesktopMode) -> Result<(), ControlError> {
        self.call(AdminRequest::SetDesktop { desktop }).map(drop)
    }
}
