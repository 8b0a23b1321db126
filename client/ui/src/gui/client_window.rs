//! ThinClient's window: the computer ID (with the recent ones), Connect, the
//! password prompt, the one-time-password prompt when the office PC asks for
//! one, progress, plain-language errors, and, once connected, the state of the
//! remote desktop until its viewer exits.
//!
//! The connection itself runs on a worker thread through a [`Connector`]; the
//! window and the worker talk through a [`Session`] (events to the window,
//! one-time-password answers back, cancellation).
//!
//! "Wake a sleeping office PC" (Wake-on-LAN) runs the same way: the window
//! asks for the password of the office PC that sends the packet (and its
//! one-time password when it wants one), the worker logs in to it through
//! [`Connector::wake`], and the window says how many packets went out or why
//! none did.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use thin_protocol::secret::Secret;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{labeled_field, tr, trf, History};
use crate::strings::Key;
use thin_tunnel::otp::OtpRequest;

/// Steps of a connection, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Reaching the gateway and the office PC.
    Connecting,
    /// Checking the password (and one-time password).
    Authenticating,
    /// Logged in; the viewer is about to start.
    Connected,
}

/// Why a connection did not happen or ended, in terms the user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The computer ID breaks the naming rules.
    InvalidPcid,
    /// The password is wrong.
    WrongPassword,
    /// The office PC is registered but not online.
    ServerOffline,
    /// No office PC has this ID.
    UnknownPcid,
    /// The gateway cannot be reached.
    GatewayUnreachable {
        /// host:port of the gateway.
        gateway: String,
    },
    /// The gateway's certificate does not chain to the pinned CA (or names another host).
    CertUntrusted,
    /// The gateway's certificate has expired.
    CertExpired,
    /// Too many wrong passwords: the office PC refuses logins for a while.
    LockedOut {
        /// Minutes to wait.
        minutes: u64,
    },
    /// Wrong one-time password and no tries left.
    OtpWrong,
    /// The one-time password expired.
    OtpExpired,
    /// The one-time password could not be mailed.
    OtpMailFailed,
    /// The gateway is at its limits.
    Busy,
    /// App and gateway or office PC speak different protocol versions.
    Version,
    /// Something did not answer in time.
    Timeout,
    /// The connection dropped (detail for the log).
    ConnectionLost(String),
    /// The viewer could not be started.
    Viewer(String),
    /// No local port could be opened.
    LocalPort(String),
    /// This build has no gateway address.
    NoEntryPoint,
    /// The user cancelled.
    Cancelled,
    /// The wake request was refused (the office PC's or the gateway's words).
    WakeRefused(String),
    /// Anything else (detail shown).
    Other(String),
}

impl ConnectError {
    /// The text shown to the user, from the string tables.
    pub fn message(&self, pcid: &str) -> String {
        match self {
            Self::InvalidPcid => tr(Key::ERR_PCID_INVALID),
            Self::WrongPassword => tr(Key::ERR_WRONG_PASSWORD),
            Self::ServerOffline => trf(Key::ERR_SERVER_OFFLINE, &[&pcid]),
            Self::UnknownPcid => trf(Key::ERR_UNKNOWN_PCID, &[&pcid]),
            Self::GatewayUnreachable { gateway } => trf(Key::ERR_GATEWAY_UNREACHABLE, &[gateway]),
            Self::CertUntrusted => tr(Key::ERR_CERT_UNTRUSTED),
            Self::CertExpired => tr(Key::ERR_CERT_EXPIRED),
            Self::LockedOut { minutes } => trf(Key::ERR_LOCKED_OUT, &[minutes]),
            Self::OtpWrong => tr(Key::ERR_OTP_WRONG),
            Self::OtpExpired => tr(Key::ERR_OTP_EXPIRED),
            Self::OtpMailFailed => tr(Key::ERR_OTP_MAIL_FAILED),
            Self::Busy => tr(Key::ERR_TOO_MANY_SESSIONS),
            Self::Version => tr(Key::ERR_PROTOCOL_VERSION),
            Self::Timeout => tr(Key::ERR_TIMEOUT),
            Self::ConnectionLost(_) => trf(Key::ERR_CONNECTION_LOST, &[&pcid]),
            Self::Viewer(e) => trf(Key::ERR_VIEWER_FAILED, &[e]),
            Self::LocalPort(e) => trf(Key::ERR_PORT_IN_USE, &[e]),
            Self::NoEntryPoint => tr(Key::ERR_NO_ENTRY_POINT),
            Self::Cancelled => tr(Key::THINCLIENT_CANCELLED),
            Self::WakeRefused(e) => trf(Key::WAKE_REFUSED, &[e]),
            Self::Other(e) => trf(Key::ERR_INTERNAL, &[e]),
        }
    }
}

/// What the worker tells the window.
pub enum ClientEvent {
    /// A step was reached.
    Progress(Progress),
    /// The office PC asks for a one-time password; answer through `reply`
    /// (`None` cancels the login).
    OtpNeeded {
        /// What the server said.
        request: OtpRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Option<Secret>>,
    },
    /// The viewer runs against this local address.
    ViewerStarted(SocketAddr),
    /// The office PC sent `sent` magic packets for `target` (a wake request).
    Woken {
        /// Computer ID woken.
        target: String,
        /// Magic packets sent.
        sent: u32,
    },
    /// The session is over: `Ok` when the viewer exited or the user disconnected.
    Finished(Result<(), ConnectError>),
}

/// The worker's side of one connection attempt.
#[derive(Clone)]
pub struct Session {
    events: mpsc::Sender<ClientEvent>,
    cancel: CancellationToken,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl Session {
    /// A session that sends to `events` and wakes the window with `repaint`.
    pub fn new(
        events: mpsc::Sender<ClientEvent>,
        cancel: CancellationToken,
        repaint: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self { events, cancel, repaint }
    }

    fn send(&self, ev: ClientEvent) {
        let _ = self.events.send(ev);
        (self.repaint)();
    }

    /// Reports a step.
    pub fn progress(&self, p: Progress) {
        self.send(ClientEvent::Progress(p));
    }

    /// Reports that the viewer was started against `addr`.
    pub fn viewer_started(&self, addr: SocketAddr) {
        self.send(ClientEvent::ViewerStarted(addr));
    }

    /// Cancelled by the user (Cancel, Disconnect, window closed).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Asks the user for the one-time password; `None` when they cancel.
    pub async fn ask_otp(&self, request: OtpRequest) -> Option<Secret> {
        let (reply, answer) = oneshot::channel();
        self.send(ClientEvent::OtpNeeded { request, reply });
        tokio::select! {
            a = answer => a.ok().flatten(),
            _ = self.cancel.cancelled() => None,
        }
    }

    /// [`Self::ask_otp`] for a worker that is not async.
    pub fn ask_otp_blocking(&self, request: OtpRequest) -> Option<Secret> {
        futures::executor::block_on(self.ask_otp(request))
    }
}

/// Makes the connection behind the window: reach the office PC, log in,
/// start the viewer and keep the tunnel until the viewer exits.
pub trait Connector: Send + Sync + 'static {
    /// Runs one session on the calling (worker) thread, reporting through
    /// `session`; returns when the viewer has exited (`Ok`), on error, or when
    /// cancelled ([`ConnectError::Cancelled`], or `Ok` once the viewer ran).
    fn run(&self, pcid: &str, password: Secret, session: &Session) -> Result<(), ConnectError>;

    /// Logs in to office PC `via` (with `password`, and a one-time password
    /// asked through `session` when it wants one) and asks it to wake
    /// `target` on its LAN; the number of magic packets it sent.
    fn wake(&self, target: &str, via: &str, password: Secret, session: &Session) -> Result<u32, ConnectError> {
        let _ = (target, via, password, session);
        Err(ConnectError::WakeRefused("this build cannot wake office PCs".into()))
    }
}

/// What the worker does once the password is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    /// Connect to the active computer ID and start the viewer.
    Connect,
    /// Log in to the active computer ID and have it wake `target`.
    Wake { target: String },
}

enum Phase {
    /// Typing the computer ID.
    Idle,
    /// Typing the password.
    Password,
    /// Working; Cancel is offered.
    Working(Progress),
    /// Typing the one-time password.
    Otp { request: OtpRequest, reply: Option<oneshot::Sender<Option<Secret>>> },
    /// The viewer runs.
    Running(SocketAddr),
}

/// What the window's phase is, for tests and the lead's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    /// Typing the computer ID.
    Idle,
    /// Typing the password.
    Password,
    /// Working.
    Working,
    /// Typing the one-time password.
    Otp,
    /// The viewer runs.
    Running,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    text: String,
    error: bool,
}

/// ThinClient's window.
pub struct ClientWindow {
    connector: Arc<dyn Connector>,
    history: History,
    pcid: String,
    password: String,
    otp_code: String,
    phase: Phase,
    job: Job,
    wake_target: String,
    wake_via: String,
    woken: Option<(String, u32)>,
    message: Option<Message>,
    active_pcid: String,
    events: Option<mpsc::Receiver<ClientEvent>>,
    cancel: Option<CancellationToken>,
    worker: Option<std::thread::JoinHandle<()>>,
    focus: bool,
    remembered: bool,
}

impl ClientWindow {
    /// A window that connects through `connector` and offers `history`.
    pub fn new(connector: Arc<dyn Connector>, history: History) -> Self {
        let pcid = history.ids().first().cloned().unwrap_or_default();
        Self {
            connector,
            history,
            pcid,
            password: String::new(),
            otp_code: String::new(),
            phase: Phase::Idle,
            job: Job::Connect,
            wake_target: String::new(),
            wake_via: String::new(),
            woken: None,
            message: None,
            active_pcid: String::new(),
            events: None,
            cancel: None,
            worker: None,
            focus: true,
            remembered: false,
        }
    }

    /// Fills in the computer ID (e.g. from the command line).
    pub fn with_pcid(mut self, pcid: &str) -> Self {
        self.pcid = pcid.to_string();
        self
    }

    /// The phase, for tests.
    pub fn phase(&self) -> PhaseKind {
        match self.phase {
            Phase::Idle => PhaseKind::Idle,
            Phase::Password => PhaseKind::Password,
            Phase::Working(_) => PhaseKind::Working,
            Phase::Otp { .. } => PhaseKind::Otp,
            Phase::Running(_) => PhaseKind::Running,
        }
    }

    /// The error shown, if any.
    pub fn error(&self) -> Option<&str> {
        self.message.as_ref().filter(|m| m.error).map(|m| m.text.as_str())
    }

    /// The message shown under the controls (an error or a result), if any.
    pub fn status(&self) -> Option<&str> {
        self.message.as_ref().map(|m| m.text.as_str())
    }

    /// The recent computer IDs.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Draws the window and handles its input.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if !super::setup(ui.ctx()) {
            return;
        }
        self.poll();
        egui::CentralPanel::default().show(ui, |ui| {
            super::artwork::title_block(ui, &tr(Key::APP_TITLE_CLIENT));
            ui.label(tr(Key::APP_WELCOME));
            ui.separator();
            match self.phase {
                Phase::Idle => self.idle_ui(ui),
                Phase::Password => self.password_ui(ui),
                Phase::Working(p) => self.working_ui(ui, p),
                Phase::Otp { .. } => self.otp_ui(ui),
                Phase::Running(addr) => self.running_ui(ui, addr),
            }
            if let Some(m) = &self.message {
                ui.add_space(6.0);
                let color = if m.error { ui.visuals().error_fg_color } else { ui.visuals().text_color() };
                ui.label(egui::RichText::new(&m.text).color(color));
            }
        });
        super::report_ready_once(ui.ctx());
    }

    fn take_focus(&mut self, r: &egui::Response) {
        if self.focus {
            r.request_focus();
            self.focus = false;
        }
    }

    fn idle_ui(&mut self, ui: &mut egui::Ui) {
        let field = labeled_field(ui, &tr(Key::THINCLIENT_PCID_LABEL), &mut self.pcid, false, 200.0);
        self.take_focus(&field);
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.label(egui::RichText::new(tr(Key::THINCLIENT_PCID_HINT)).weak());
        if !self.history.ids().is_empty() {
            ui.add_space(4.0);
            ui.label(tr(Key::THINCLIENT_HISTORY));
            let mut chosen = None;
            ui.horizontal_wrapped(|ui| {
                for id in self.history.ids() {
                    if ui.selectable_label(self.pcid.eq_ignore_ascii_case(id), id).clicked() {
                        chosen = Some(id.clone());
                    }
                }
            });
            if let Some(id) = chosen {
                self.pcid = id;
            }
        }
        ui.add_space(6.0);
        if ui.button(tr(Key::BUTTON_CONNECT)).clicked() || enter {
            self.ask_password();
        }
        ui.add_space(8.0);
        let mut wake = false;
        egui::CollapsingHeader::new(tr(Key::WAKE_SECTION)).id_salt("wake").show(ui, |ui| {
            let t = labeled_field(ui, &tr(Key::WAKE_TARGET_LABEL), &mut self.wake_target, false, 160.0);
            let v = labeled_field(ui, &tr(Key::WAKE_VIA_LABEL), &mut self.wake_via, false, 160.0);
            ui.label(egui::RichText::new(tr(Key::WAKE_VIA_HINT)).weak());
            let enter = (t.lost_focus() || v.lost_focus()) && ui.input(|i| i.key_pressed(egui::Key::Enter));
            wake = ui.button(tr(Key::WAKE_BUTTON)).clicked() || enter;
        });
        if wake {
            self.ask_wake_password();
        }
    }

    /// Wake: both IDs must be valid; then the password of the `via` PC.
    fn ask_wake_password(&mut self) {
        let target = self.wake_target.trim().to_string();
        let via = self.wake_via.trim().to_string();
        for id in [&target, &via] {
            if thin_protocol::pcid::normalize(id).is_err() {
                self.message = Some(Message { text: ConnectError::InvalidPcid.message(id), error: true });
                return;
            }
        }
        self.wake_target = target.clone();
        self.wake_via = via.clone();
        self.job = Job::Wake { target };
        self.active_pcid = via;
        self.message = None;
        self.password.clear();
        self.phase = Phase::Password;
        self.focus = true;
    }

    fn ask_password(&mut self) {
        let pcid = self.pcid.trim().to_string();
        if thin_protocol::pcid::normalize(&pcid).is_err() {
            self.message = Some(Message { text: ConnectError::InvalidPcid.message(&pcid), error: true });
            return;
        }
        self.pcid = pcid;
        self.job = Job::Connect;
        self.active_pcid = self.pcid.clone();
        self.message = None;
        self.password.clear();
        self.phase = Phase::Password;
        self.focus = true;
    }

    fn password_ui(&mut self, ui: &mut egui::Ui) {
        ui.label(egui::RichText::new(format!("{}: {}", tr(Key::THINCLIENT_PCID_LABEL), self.active_pcid)).strong());
        let field = labeled_field(ui, &tr(Key::PASSWORD_PROMPT), &mut self.password, true, 200.0);
        self.take_focus(&field);
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let (mut ok, mut cancel) = (enter, false);
        ui.horizontal(|ui| {
            ok |= ui.button(tr(Key::BUTTON_OK)).clicked();
            cancel = ui.button(tr(Key::BUTTON_CANCEL)).clicked();
        });
        if cancel {
            self.password.clear();
            self.message = None;
            self.phase = Phase::Idle;
            self.focus = true;
        } else if ok {
            if self.password.is_empty() {
                self.message = Some(Message { text: tr(Key::ERR_PASSWORD_EMPTY), error: true });
            } else {
                self.start(ui.ctx());
            }
        }
    }

    fn working_ui(&mut self, ui: &mut egui::Ui, p: Progress) {
        let text = match p {
            Progress::Connecting => trf(Key::THINCLIENT_CONNECTING, &[&self.active_pcid]),
            Progress::Authenticating => tr(Key::THINCLIENT_AUTHENTICATING),
            Progress::Connected => trf(Key::THINCLIENT_CONNECTED, &[&self.active_pcid]),
        };
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(text);
        });
        ui.add_space(6.0);
        let cancelling = self.cancel.as_ref().is_some_and(|c| c.is_cancelled());
        if ui.add_enabled(!cancelling, egui::Button::new(tr(Key::BUTTON_CANCEL))).clicked() {
            if let Some(c) = &self.cancel {
                c.cancel();
            }
        }
    }

    fn otp_ui(&mut self, ui: &mut egui::Ui) {
        let Phase::Otp { request, .. } = &self.phase else { return };
        let request = request.clone();
        ui.label(trf(Key::OTP_SENT, &[&request.destination]));
        if request.retry {
            ui.label(egui::RichText::new(tr(Key::ERR_OTP_WRONG)).color(ui.visuals().error_fg_color));
            ui.label(trf(Key::OTP_TRIES_LEFT, &[&request.tries_left]));
        }
        let field = labeled_field(ui, &tr(Key::OTP_PROMPT), &mut self.otp_code, false, 120.0);
        self.take_focus(&field);
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let (mut ok, mut cancel) = (enter, false);
        ui.horizontal(|ui| {
            ok |= ui.button(tr(Key::BUTTON_OK)).clicked();
            cancel = ui.button(tr(Key::BUTTON_CANCEL)).clicked();
        });
        let code = self.otp_code.trim().to_string();
        let answer = if cancel {
            Some(None)
        } else if ok && !code.is_empty() {
            Some(Some(Secret::new(code)))
        } else {
            None
        };
        if let Some(answer) = answer {
            self.otp_code.clear();
            if let Phase::Otp { reply: Some(reply), .. } =
                std::mem::replace(&mut self.phase, Phase::Working(Progress::Authenticating))
            {
                let _ = reply.send(answer);
            }
        }
    }

    fn running_ui(&mut self, ui: &mut egui::Ui, addr: SocketAddr) {
        ui.label(egui::RichText::new(trf(Key::THINCLIENT_CONNECTED, &[&self.active_pcid])).strong());
        ui.label(tr(Key::THINCLIENT_VIEWER_STARTED));
        ui.label(egui::RichText::new(trf(Key::LISTENING_ON, &[&addr])).weak().small());
        ui.add_space(6.0);
        if ui.button(tr(Key::BUTTON_DISCONNECT)).clicked() {
            if let Some(c) = &self.cancel {
                c.cancel();
            }
        }
    }

    /// Starts the worker for the active computer ID and the typed password.
    fn start(&mut self, ctx: &egui::Context) {
        let (tx, rx) = mpsc::channel();
        let cancel = CancellationToken::new();
        let repaint_ctx = ctx.clone();
        let session = Session::new(tx, cancel.clone(), Arc::new(move || repaint_ctx.request_repaint()));
        let connector = self.connector.clone();
        let pcid = self.active_pcid.clone();
        let password = Secret::new(std::mem::take(&mut self.password));
        let job = self.job.clone();
        self.woken = None;
        let worker = std::thread::Builder::new().name("thin-connect".into()).spawn(move || {
            let r = match job {
                Job::Connect => connector.run(&pcid, password, &session),
                Job::Wake { target } => connector
                    .wake(&target, &pcid, password, &session)
                    .map(|sent| session.send(ClientEvent::Woken { target, sent })),
            };
            session.send(ClientEvent::Finished(r));
        });
        match worker {
            Ok(w) => {
                self.worker = Some(w);
                self.events = Some(rx);
                self.cancel = Some(cancel);
                self.message = None;
                self.remembered = false;
                self.phase = Phase::Working(Progress::Connecting);
            }
            Err(e) => {
                self.message = Some(Message { text: ConnectError::Other(e.to_string()).message(""), error: true })
            }
        }
    }

    fn remember(&mut self) {
        // Only the IDs connected to are offered again, not the PCs that woke others.
        if !self.remembered && self.job == Job::Connect {
            self.remembered = true;
            if let Err(e) = self.history.remember(&self.active_pcid) {
                tracing::warn!("cannot save the recent computer IDs: {e}");
            }
        }
    }

    /// Takes the worker's events.
    fn poll(&mut self) {
        let Some(rx) = &self.events else { return };
        let mut evs = Vec::new();
        let mut gone = false;
        loop {
            match rx.try_recv() {
                Ok(ev) => evs.push(ev),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        for ev in evs {
            self.handle(ev);
        }
        if gone && self.events.is_some() {
            // The worker ended without a word (it panicked).
            self.finish(Err(ConnectError::Other("the connection worker stopped".into())));
        }
    }

    fn handle(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Progress(p) => {
                if p == Progress::Connected {
                    self.remember();
                }
                if matches!(self.phase, Phase::Working(_)) {
                    self.phase = Phase::Working(p);
                }
            }
            ClientEvent::OtpNeeded { request, reply } => {
                self.otp_code.clear();
                self.focus = true;
                self.phase = Phase::Otp { request, reply: Some(reply) };
            }
            ClientEvent::ViewerStarted(addr) => {
                self.remember();
                self.phase = Phase::Running(addr);
            }
            ClientEvent::Woken { target, sent } => self.woken = Some((target, sent)),
            ClientEvent::Finished(r) => self.finish(r),
        }
    }

    fn finish(&mut self, r: Result<(), ConnectError>) {
        let was_running = matches!(self.phase, Phase::Running(_));
        self.events = None;
        self.cancel = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        self.focus = true;
        match r {
            Ok(()) => {
                self.phase = Phase::Idle;
                self.message = match self.woken.take() {
                    Some((target, sent)) => {
                        Some(Message { text: trf(Key::WAKE_SENT, &[&self.active_pcid, &target, &sent]), error: false })
                    }
                    None => was_running.then(|| Message { text: tr(Key::THINCLIENT_VIEWER_EXITED), error: false }),
                };
            }
            Err(ConnectError::Cancelled) => {
                self.phase = Phase::Idle;
                self.message = Some(Message { text: ConnectError::Cancelled.message(&self.active_pcid), error: false });
            }
            Err(e) => {
                // A wrong password asks for the password again, as the original does.
                self.phase = if e == ConnectError::WrongPassword { Phase::Password } else { Phase::Idle };
                self.message = Some(Message { text: e.message(&self.active_pcid), error: true });
            }
        }
    }
}

impl Drop for ClientWindow {
    /// Closing the window ends the session: the worker stops the viewer and the
    /// tunnel (waited for a short while).
    fn drop(&mut self) {
        if let Some(c) = &self.cancel {
            c.cancel();
        }
        if let Some(w) = self.worker.take() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl super::WindowUi for ClientWindow {
    fn ui(&mut self, ui: &mut egui::Ui) {
        ClientWindow::ui(self, ui);
    }
}

/// Opens ThinClient's window and returns when it is closed.
pub fn run_client_window(window: ClientWindow) -> Result<(), super::GuiError> {
    super::run_window(&tr(Key::APP_TITLE_CLIENT), [460.0, 540.0], Box::new(window))
}
