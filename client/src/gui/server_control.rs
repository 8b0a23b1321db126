//! [`ServerControl`] over the office PC's config folder ([`ConfigDir`]):
//! registering at the gateway through the server agent, the password verifier,
//! and `thinsvr.toml`; the live state from a running agent when one is
//! attached. A running agent reads the one-time-password setting for every
//! tunnel, but the password and the port when it starts.

use std::sync::Arc;

use thin_protocol::auth::PasswordFile;
use thin_protocol::secret::Secret;
use tokio::sync::watch;

use super::server_window::{ControlError, Online, ServerConfig, ServerControl, ServerStatus};
use crate::link::Link;
use crate::server_agent::{self, ServerState};
use crate::settings::ConfigDir;

/// Clients connected now, from a running agent.
pub type ClientCount = Arc<dyn Fn() -> usize + Send + Sync>;

/// The config folder, the gateway link and, optionally, a running agent's state.
pub struct LocalControl {
    dir: ConfigDir,
    link: Option<Link>,
    state: Option<watch::Receiver<ServerState>>,
    clients: Option<ClientCount>,
}

impl LocalControl {
    /// Controls `dir`; `link` is needed to register (`None`: no entry point).
    pub fn new(dir: ConfigDir, link: Option<Link>) -> Self {
        Self { dir, link, state: None, clients: None }
    }

    /// Shows the state of a running agent.
    pub fn with_state(mut self, state: watch::Receiver<ServerState>) -> Self {
        self.state = Some(state);
        self
    }

    /// Shows the number of clients of a running agent.
    pub fn with_clients(mut self, count: ClientCount) -> Self {
        self.clients = Some(count);
        self
    }

    fn settings_err(e: impl std::fmt::Display) -> ControlError {
        ControlError::Other(e.to_string())
    }
}

pub use crate::control::classify_agent;

impl ServerControl for LocalControl {
    fn status(&self) -> ServerStatus {
        let online = match self.state.as_ref().map(|s| s.borrow().clone()) {
            None => Online::Unknown,
            Some(ServerState::Connecting) => Online::Connecting,
            Some(ServerState::Online { .. }) => Online::Online,
            Some(ServerState::Offline { reason }) => Online::Offline(reason),
        };
        ServerStatus { online, clients: self.clients.as_ref().map(|f| f()) }
    }

    fn config(&self) -> Result<ServerConfig, ControlError> {
        let s = self.dir.settings().map_err(Self::settings_err)?;
        let port = s.target.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(3389);
        Ok(ServerConfig { pcid: s.pcid, port, otp_email: s.otp_email, has_password: self.dir.password().is_ok() })
    }

    fn register(&self, pcid: &str, password: Option<&Secret>) -> Result<String, ControlError> {
        let link = self.link.as_ref().ok_or(ControlError::NoEntryPoint)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ControlError::Other(e.to_string()))?;
        // The agent's registration always sets a password; a rename keeps the
        // current one by putting its verifier back afterwards.
        let keep = match password {
            Some(_) => None,
            None => Some(self.dir.password().map_err(Self::settings_err)?),
        };
        let throwaway;
        let pw = match password {
            Some(p) => p,
            None => {
                throwaway = crate::otp::new_code();
                &throwaway
            }
        };
        let stored =
            rt.block_on(server_agent::register(link, &self.dir, pcid, pw)).map_err(|e| classify_agent(&e, pcid))?;
        if let Some(k) = keep {
            self.dir.save_password(&k).map_err(Self::settings_err)?;
        }
        Ok(stored)
    }

    fn set_password(&self, password: &Secret) -> Result<(), ControlError> {
        let file = PasswordFile::create(password.expose()).map_err(Self::settings_err)?;
        self.dir.save_password(&file).map_err(Self::settings_err)
    }

    fn set_otp_email(&self, email: Option<&str>) -> Result<(), ControlError> {
        let email = match email {
            Some(e) => Some(crate::otp::check_email(e).map_err(|_| ControlError::EmailInvalid)?),
            None => None,
        };
        let mut s = self.dir.settings().map_err(Self::settings_err)?;
        s.otp_email = email;
        self.dir.save_settings(&s).map_err(Self::settings_err)
    }

    fn set_port(&self, port: u16) -> Result<(), ControlError> {
        if port == 0 {
            return Err(ControlError::Other("port 0".into()));
        }
        let mut s = self.dir.settings().map_err(Self::settings_err)?;
        let host = s.target.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_else(|| "127.0.0.1".into());
        s.target = format!("{host}:{port}");
        self.dir.save_settings(&s).map_err(Self::settings_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_config_folder() {
        let d = tempfile::tempdir().unwrap();
        let c = LocalControl::new(ConfigDir(d.path().to_path_buf()), None);
        let cfg = c.config().unwrap();
        assert_eq!(cfg, ServerConfig { pcid: None, port: 3389, otp_email: None, has_password: false });
        c.set_port(13389).unwrap();
        c.set_otp_email(Some(" alice@example.org ")).unwrap();
        assert_eq!(c.set_otp_email(Some("nope")), Err(ControlError::EmailInvalid));
        c.set_password(&Secret::new("pw")).unwrap();
        let cfg = c.config().unwrap();
        assert_eq!((cfg.port, cfg.otp_email.as_deref(), cfg.has_password), (13389, Some("alice@example.org"), true));
        assert_eq!(ConfigDir(d.path().to_path_buf()).settings().unwrap().target, "127.0.0.1:13389");
        c.set_otp_email(None).unwrap();
        assert_eq!(c.config().unwrap().otp_email, None);
        assert_eq!(c.register("desk", None), Err(ControlError::NoEntryPoint));
        assert_eq!(c.status(), ServerStatus { online: Online::Unknown, clients: None });
    }
}
