//! Office PCs run in-process: registered from a temp config folder and
//! serving a target (by default an echo server of their own).

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use thin_protocol::secret::Secret;
use thin_tunnel::link::Link;
use thin_tunnel::otp::OtpPolicy;
use thin_tunnel::server_agent::{AgentError, ServeOptions, ServerState};
use thin_tunnel::settings::{ConfigDir, ServerSettings};
use tokio_util::sync::CancellationToken;

/// Registers `pcid` with `password` through `link` from a new config folder;
/// the error as the user reads it.
pub async fn try_register(link: &Link, pcid: &str, password: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigDir(dir.path().to_path_buf());
    thin_tunnel::server_agent::register(link, &cfg, pcid, &Secret::new(password)).await.map_err(|e| e.to_string())
}

/// An office PC's config folder after registration, not serving yet.
pub struct RegisteredPc {
    /// Its config folder.
    pub dir: tempfile::TempDir,
}

impl RegisteredPc {
    /// Registers `pcid` with `password` through `link` from a new folder.
    pub async fn register(link: &Link, pcid: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigDir(dir.path().to_path_buf());
        thin_tunnel::server_agent::register(link, &cfg, pcid, &Secret::new(password))
            .await
            .unwrap_or_else(|e| panic!("register {pcid}: {e}"));
        Self { dir }
    }

    /// Its config folder as the apps see it.
    pub fn cfg(&self) -> ConfigDir {
        ConfigDir(self.dir.path().to_path_buf())
    }

    /// Changes its settings (e.g. the lockout) as the window would.
    pub fn edit_settings(&self, edit: impl FnOnce(&mut ServerSettings)) {
        edit_settings(&self.cfg(), edit);
    }

    /// Serves `target` through `link` with the default OTP policy; returns once online.
    pub async fn serve(self, link: &Link, target: SocketAddr) -> OfficePc {
        OfficePc::run_with(self.dir, link, target, OtpPolicy::default()).await
    }
}

/// An office PC run in-process.
pub struct OfficePc {
    /// Its config folder.
    pub dir: tempfile::TempDir,
    /// Stops it.
    pub stop: CancellationToken,
    /// Its state.
    pub state: tokio::sync::watch::Receiver<ServerState>,
    /// The task.
    pub task: tokio::task::JoinHandle<Result<(), AgentError>>,
    /// The company's rules it received from the gateway.
    pub policy: thin_tunnel::policy::PolicyCell,
}

impl OfficePc {
    /// Registers `pcid` with `password`, then runs, forwarding to `target`.
    pub async fn start(link: &Link, pcid: &str, password: &str, target: SocketAddr) -> Self {
        RegisteredPc::register(link, pcid, password).await.serve(link, target).await
    }

    /// Runs an already registered config folder with a one-time-password policy
    /// (e.g. a short validity); returns once online.
    pub async fn run_with(dir: tempfile::TempDir, link: &Link, target: SocketAddr, otp: OtpPolicy) -> Self {
        let cfg = ConfigDir(dir.path().to_path_buf());
        let stop = CancellationToken::new();
        let (tx, state) = tokio::sync::watch::channel(ServerState::Connecting);
        let policy = thin_tunnel::policy::PolicyCell::default();
        // No built-in desktop unless a test gives one: the runner's DISPLAY is not the office PC's.
        let desktop = Some(thin_tunnel::desktop::Desktop::default());
        let opts = ServeOptions {
            target: Some(target.to_string()),
            otp,
            policy: policy.clone(),
            desktop,
            ..Default::default()
        };
        let task = tokio::spawn(thin_tunnel::server_agent::run_with(link.clone(), cfg, opts, stop.clone(), tx));
        let pc = Self { dir, stop, state, task, policy };
        pc.wait_online().await;
        pc
    }

    /// Its config folder as the apps see it.
    pub fn cfg(&self) -> ConfigDir {
        ConfigDir(self.dir.path().to_path_buf())
    }

    /// Changes its settings while it runs (they are read per session).
    pub fn edit_settings(&self, edit: impl FnOnce(&mut ServerSettings)) {
        edit_settings(&self.cfg(), edit);
    }

    /// The gateway's session id while online.
    pub fn session_id(&self) -> String {
        match &*self.state.borrow() {
            ServerState::Online { session_id, .. } => session_id.clone(),
            other => panic!("not online: {other:?}"),
        }
    }

    /// Waits until the gateway lists this PC as online.
    pub async fn wait_online(&self) {
        self.wait_state("office PC online", Duration::from_secs(20), |s| matches!(s, ServerState::Online { .. })).await;
    }

    /// Waits until it is no longer online (e.g. the gateway went away).
    pub async fn wait_offline(&self, what: &str, within: Duration) {
        self.wait_state(what, within, |s| !matches!(s, ServerState::Online { .. })).await;
    }

    /// Waits until `f` maps its state to `Some`; returns that.
    pub async fn wait_for_state<T>(&self, what: &str, within: Duration, f: impl Fn(&ServerState) -> Option<T>) -> T {
        let st = self.state.clone();
        crate::wait_for(what, within, || {
            let v = f(&st.borrow());
            async move { v }
        })
        .await
    }

    async fn wait_state(&self, what: &str, within: Duration, f: impl Fn(&ServerState) -> bool) {
        self.wait_for_state(what, within, |s| f(s).then_some(())).await
    }
}

fn edit_settings(cfg: &ConfigDir, edit: impl FnOnce(&mut ServerSettings)) {
    let mut s = cfg.settings().unwrap();
    edit(&mut s);
    cfg.save_settings(&s).unwrap();
}

type Settings = Box<dyn FnOnce(&mut ServerSettings) + Send>;

/// Options of an office PC before it starts (see `TestGateway::office_pc`);
/// `.await` registers it, applies the settings and serves until online.
pub struct OfficePcBuilder {
    link: Link,
    pcid: String,
    password: String,
    target: Option<SocketAddr>,
    otp: OtpPolicy,
    settings: Vec<Settings>,
}

impl OfficePcBuilder {
    pub(crate) fn new(link: Link, pcid: &str, password: &str) -> Self {
        Self {
            link,
            pcid: pcid.into(),
            password: password.into(),
            target: None,
            otp: OtpPolicy::default(),
            settings: Vec::new(),
        }
    }

    /// Reaches the gateway through this link (e.g. through a proxy).
    pub fn via(mut self, link: Link) -> Self {
        self.link = link;
        self
    }

    /// Serves `target` instead of an echo server of its own.
    pub fn target(mut self, target: SocketAddr) -> Self {
        self.target = Some(target);
        self
    }

    /// Validity and tries of one-time passwords.
    pub fn otp_policy(mut self, otp: OtpPolicy) -> Self {
        self.otp = otp;
        self
    }

    /// Changes its settings after registration, before it serves.
    pub fn settings(mut self, edit: impl FnOnce(&mut ServerSettings) + Send + 'static) -> Self {
        self.settings.push(Box::new(edit));
        self
    }

    /// Registers, applies the settings and serves until online (what `.await` does).
    pub async fn start(self) -> OfficePc {
        let target = match self.target {
            Some(t) => t,
            None => crate::echo_server().await,
        };
        let pc = RegisteredPc::register(&self.link, &self.pcid, &self.password).await;
        for edit in self.settings {
            pc.edit_settings(edit);
        }
        OfficePc::run_with(pc.dir, &self.link, target, self.otp).await
    }
}

impl IntoFuture for OfficePcBuilder {
    type Output = OfficePc;
    type IntoFuture = Pin<Box<dyn Future<Output = OfficePc> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}
