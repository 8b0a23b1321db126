//! Stand-in backends for the windows: a [`Connector`] that plays a script and
//! a [`ServerControl`] kept in memory. Tests drive the windows with them;
//! screenshots and the start-up benchmark open the windows with them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_protocol::secret::Secret;

use super::client_window::{ConnectError, Connector, Progress, Session};
use super::server_window::{ControlError, Online, ServerConfig, ServerControl, ServerStatus};
use thin_tunnel::otp::OtpRequest;

/// A connector that answers from a script.
#[derive(Clone)]
pub struct ScriptedConnector {
    /// The right password.
    pub password: String,
    /// The one-time password asked for, if any.
    pub otp: Option<String>,
    /// Answers allowed for the one-time password.
    pub otp_tries: u32,
    /// Computer IDs that are offline.
    pub offline: Vec<String>,
    /// Computer IDs that exist (others are unknown); empty = all exist.
    pub known: Vec<String>,
    /// Pause at each step.
    pub delay: Duration,
    /// After the viewer started: wait for Disconnect (true) or end at once (false).
    pub hold: bool,
    /// Computer IDs whose viewer was started, in order.
    pub viewers: Arc<Mutex<Vec<String>>>,
    /// Computer IDs that may be woken; empty = all.
    pub wake_group: Vec<String>,
    /// Computer IDs woken (`target via via`), in order.
    pub woken: Arc<Mutex<Vec<String>>>,
}

impl Default for ScriptedConnector {
    fn default() -> Self {
        Self {
            password: "secret".into(),
            otp: None,
            otp_tries: 3,
            offline: Vec::new(),
            known: Vec::new(),
            delay: Duration::ZERO,
            hold: true,
            viewers: Arc::default(),
            wake_group: Vec::new(),
            woken: Arc::default(),
        }
    }
}

impl ScriptedConnector {
    fn pause(&self, s: &Session) -> Result<(), ConnectError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if s.cancel_token().is_cancelled() {
            return Err(ConnectError::Cancelled);
        }
        Ok(())
    }
}

impl ScriptedConnector {
    /// Reaches `pcid` and logs in (password, then the one-time password).
    fn login(&self, pcid: &str, password: Secret, s: &Session) -> Result<(), ConnectError> {
        s.progress(Progress::Connecting);
        self.pause(s)?;
        if !self.known.is_empty() && !self.known.iter().any(|k| k == pcid) {
            return Err(ConnectError::UnknownPcid);
        }
        if self.offline.iter().any(|k| k == pcid) {
            return Err(ConnectError::ServerOffline);
        }
        s.progress(Progress::Authenticating);
        self.pause(s)?;
        if password.expose() != self.password {
            return Err(ConnectError::WrongPassword);
        }
        if let Some(code) = &self.otp {
            let mut req = OtpRequest {
                destination: "a***@example.org".into(),
                tries_left: self.otp_tries,
                valid_s: 300,
                retry: false,
            };
            loop {
                let answer = s.ask_otp_blocking(req.clone()).ok_or(ConnectError::Cancelled)?;
                if answer.expose() == code {
                    break;
                }
                req.tries_left -= 1;
                req.retry = true;
                if req.tries_left == 0 {
                    return Err(ConnectError::OtpWrong);
                }
            }
        }
        s.progress(Progress::Connected);
        self.pause(s)
    }
}

impl Connector for ScriptedConnector {
    fn run(&self, pcid: &str, password: Secret, s: &Session) -> Result<(), ConnectError> {
        let pcid = pcid.to_ascii_lowercase();
        self.login(&pcid, password, s)?;
        self.viewers.lock().unwrap().push(pcid);
        s.viewer_started(SocketAddr::from(([127, 0, 0, 1], 3500)));
        if self.hold {
            futures::executor::block_on(s.cancel_token().cancelled());
        }
        Ok(())
    }

    fn wake(&self, target: &str, via: &str, password: Secret, s: &Session) -> Result<u32, ConnectError> {
        let (target, via) = (target.to_ascii_lowercase(), via.to_ascii_lowercase());
        self.login(&via, password, s)?;
        if !self.wake_group.is_empty() && !self.wake_group.contains(&target) {
            return Err(ConnectError::WakeRefused(format!("{via:?} may not wake {target:?}")));
        }
        self.woken.lock().unwrap().push(format!("{target} via {via}"));
        Ok(1)
    }
}

/// A server control kept in memory.
pub struct MemoryControl {
    /// The settings.
    pub config: Mutex<ServerConfig>,
    /// The live state shown.
    pub status: Mutex<ServerStatus>,
    /// IDs that other computers hold.
    pub taken: Vec<String>,
    /// Every call, in order (`register desk-01 with password`, ...), for tests.
    pub calls: Mutex<Vec<String>>,
}

impl Default for MemoryControl {
    fn default() -> Self {
        Self {
            config: Mutex::new(ServerConfig::default()),
            status: Mutex::new(ServerStatus { online: Online::Unknown, clients: None, policy: Default::default() }),
            taken: Vec::new(),
            calls: Mutex::default(),
        }
    }
}

impl MemoryControl {
    /// A registered, online office PC with `clients` clients.
    pub fn online(pcid: &str, clients: usize) -> Self {
        let c = Self::default();
        *c.config.lock().unwrap() =
            ServerConfig { pcid: Some(pcid.into()), has_password: true, builtin_desktop: true, ..Default::default() };
        *c.status.lock().unwrap() =
            ServerStatus { online: Online::Online, clients: Some(clients), policy: Default::default() };
        c
    }

    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl ServerControl for MemoryControl {
    fn status(&self) -> ServerStatus {
        self.status.lock().unwrap().clone()
    }

    fn config(&self) -> Result<ServerConfig, ControlError> {
        Ok(self.config.lock().unwrap().clone())
    }

    fn register(&self, pcid: &str, password: Option<&Secret>) -> Result<String, ControlError> {
        let p = thin_protocol::pcid::normalize(pcid).map_err(|_| ControlError::PcidInvalid)?;
        self.log(format!("register {p} {}", if password.is_some() { "with password" } else { "keeping password" }));
        if self.taken.contains(&p) {
            return Err(ControlError::PcidTaken(pcid.to_string()));
        }
        let mut c = self.config.lock().unwrap();
        c.pcid = Some(p.clone());
        c.has_password |= password.is_some();
        Ok(p)
    }

    fn set_password(&self, _password: &Secret) -> Result<(), ControlError> {
        self.log("set_password".into());
        self.config.lock().unwrap().has_password = true;
        Ok(())
    }

    fn set_otp_email(&self, email: Option<&str>) -> Result<(), ControlError> {
        self.log(format!("set_otp_email {email:?}"));
        self.config.lock().unwrap().otp_email = email.map(str::to_string);
        Ok(())
    }

    fn set_port(&self, port: u16) -> Result<(), ControlError> {
        self.log(format!("set_port {port}"));
        self.config.lock().unwrap().port = port;
        Ok(())
    }

    fn set_desktop(&self, desktop: super::server_window::DesktopMode) -> Result<(), ControlError> {
        self.log(format!("set_desktop {desktop}"));
        self.config.lock().unwrap().desktop = desktop;
        Ok(())
    }
}

/// Opens a window with stand-in backends, for screenshots and the start-up
/// benchmark, and returns when it is closed: `client` (recent IDs filled in),
/// `client-empty` (no history; the right password is `secret`), `server`
/// (registered, online, one client) or `server-new` (not registered yet).
pub fn run_demo_window(which: &str) -> Result<(), super::GuiError> {
    use super::{run_client_window, run_server_window, ClientWindow, History, ServerWindow};
    match which {
        "client" | "client-empty" => {
            let history = if which == "client" {
                History::in_memory(&["desk-01", "lab-pc", "home-2"])
            } else {
                History::default()
            };
            let conn = ScriptedConnector { delay: Duration::from_millis(200), ..Default::default() };
            run_client_window(ClientWindow::new(Arc::new(conn), history))
        }
        "server" => {
            run_server_window(ServerWindow::with_names(Arc::new(MemoryControl::online("desk-01", 1)), "taro", "desk"))
        }
        "server-new" => {
            run_server_window(ServerWindow::with_names(Arc::new(MemoryControl::default()), "Taro.Yamada", "DESKTOP-7"))
        }
        other => Err(super::GuiError::NoDemo(other.to_string())),
    }
}
