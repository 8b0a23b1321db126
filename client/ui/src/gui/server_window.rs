//! ThinServer's window: the live state (registered ID, connected to the
//! gateway, number of clients), the computer ID (with a suggestion, as the
//! original's candidate function offers one), the password, the one-time
//! password by e-mail, the local service port, and which desktop home PCs
//! see (the RDP host at that port or the built-in desktop).
//!
//! The window changes nothing itself: it goes through a [`ServerControl`]
//! (the config folder today, the service later), on a worker thread for the
//! slow actions (registering at the gateway, stretching a password).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use eframe::egui;
use thin_protocol::policy::Policy;
use thin_protocol::secret::Secret;
pub use thin_tunnel::desktop::DesktopMode;

use super::{labeled_field, tr, trf};
use crate::strings::Key;
use crate::wording::Wording;

/// Whether the office PC is reachable through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Online {
    /// Nobody knows (no running agent to ask).
    Unknown,
    /// Trying to reach the gateway.
    Connecting,
    /// Registered and waiting for connections.
    Online,
    /// Lost; retrying (why).
    Offline(String),
    /// The service does not run.
    Stopped,
}

/// The live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Reachability.
    pub online: Online,
    /// Clients connected now, when known.
    pub clients: Option<usize>,
    /// The company's rules from the gateway (empty: none).
    pub policy: Policy,
}

/// The settings the window edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Registered computer ID.
    pub pcid: Option<String>,
    /// Local service port (3389, remote desktop).
    pub port: u16,
    /// Address for one-time passwords; `None` = off.
    pub otp_email: Option<String>,
    /// A password is set.
    pub has_password: bool,
    /// Which desktop home PCs see.
    pub desktop: DesktopMode,
    /// Whether this PC has a built-in desktop.
    pub builtin_desktop: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            pcid: None,
            port: 3389,
            otp_email: None,
            has_password: false,
            desktop: DesktopMode::Auto,
            builtin_desktop: false,
        }
    }
}

pub use thin_tunnel::control::ControlError;

/// What the server window needs from the office PC's app. Calls may block
/// (network, password stretching); the window makes the slow ones on a worker
/// thread and calls [`Self::status`] and [`Self::config`] from its own.
pub trait ServerControl: Send + Sync + 'static {
    /// The live state (cheap).
    fn status(&self) -> ServerStatus;
    /// The saved settings.
    fn config(&self) -> Result<ServerConfig, ControlError>;
    /// Claims `pcid` at the gateway (or renames to it); with `password` the
    /// password is set too, without it the current one is kept. Returns the ID
    /// as stored.
    fn register(&self, pcid: &str, password: Option<&Secret>) -> Result<String, ControlError>;
    /// Sets a new password.
    fn set_password(&self, password: &Secret) -> Result<(), ControlError>;
    /// Turns one-time passwords on (mailed to `email`) or off.
    fn set_otp_email(&self, email: Option<&str>) -> Result<(), ControlError>;
    /// Sets the local service port.
    fn set_port(&self, port: u16) -> Result<(), ControlError>;
    /// Chooses which desktop home PCs see.
    fn set_desktop(&self, desktop: DesktopMode) -> Result<(), ControlError>;
}

/// Computer IDs to suggest for a user and a computer, best first, each valid
/// (`[a-z0-9_-]`, at most 31): the user name, the computer name, both joined,
/// then numbered variants of the user name. Letters outside ASCII are dropped.
pub fn suggest_pcids(user: &str, host: &str) -> Vec<String> {
    fn clean(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                out.push(c);
            } else if (c == '-' || c == '.' || c == ' ') && !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.truncate(thin_protocol::pcid::MAX_PCID_LEN);
        out.trim_matches(['-', '_']).to_string()
    }
    // DOMAIN\user and user@domain: the user part.
    let user = user.rsplit('\\').next().unwrap_or(user);
    let user = clean(user.split('@').next().unwrap_or(user));
    let host = clean(host.split('.').next().unwrap_or(host));
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !s.is_empty() && !out.contains(&s) && thin_protocol::pcid::normalize(&s).is_ok() {
            out.push(s);
        }
    };
    add(user.clone());
    add(host.clone());
    if !user.is_empty() && !host.is_empty() {
        add(clean(&format!("{user}-{host}")));
    }
    let base = if user.is_empty() {
        if host.is_empty() {
            "pc".to_string()
        } else {
            host
        }
    } else {
        user
    };
    for n in 2..=9 {
        let mut b = base.clone();
        b.truncate(thin_protocol::pcid::MAX_PCID_LEN - 2);
        add(format!("{}-{n}", b.trim_end_matches(['-', '_'])));
    }
    out
}

/// The user name and computer name of this session.
pub fn local_names() -> (String, String) {
    let user = ["USERNAME", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default();
    (user, thin_tunnel::server_agent::hostname())
}

enum Done {
    Registered,
    PasswordSet,
    SettingsSaved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    text: String,
    error: bool,
}

/// ThinServer's window.
pub struct ServerWindow {
    control: Arc<dyn ServerControl>,
    config: ServerConfig,
    pcid: String,
    password: String,
    password2: String,
    otp_on: bool,
    email: String,
    port: String,
    desktop: DesktopMode,
    suggestions: Vec<String>,
    suggestion: usize,
    busy: Option<mpsc::Receiver<Result<Done, ControlError>>>,
    message: Option<Message>,
    /// The company's rules as last seen in the status.
    policy: Policy,
}

/// The rules of `p` in force, by the policy file's key names (the admin's
/// words, the same in every language).
pub fn policy_rules(p: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let flags = [
        (p.enforce_otp, "ENFORCE_OTP"),
        (p.enforce_maccheck, "ENFORCE_MACCHECK"),
        (p.enforce_inspection, "ENFORCE_INSPECTION"),
        (p.disable_share, "DISABLE_SHARE"),
    ];
    out.extend(flags.iter().filter(|(on, _)| *on).map(|(_, k)| k.to_string()));
    if let Some(s) = p.idle_timeout_s {
        out.push(format!("IDLE_TIMEOUT {s} s"));
    }
    if let Some(b) = p.min_client_build {
        out.push(format!("REQUIRE_MINIMUM_CLIENT_BUILD {b}"));
    }
    out
}

impl ServerWindow {
    /// A window over `control`, suggesting IDs from this session's user and computer names.
    pub fn new(control: Arc<dyn ServerControl>) -> Self {
        let (user, host) = local_names();
        Self::with_names(control, &user, &host)
    }

    /// A window that suggests IDs from `user` and `host`.
    pub fn with_names(control: Arc<dyn ServerControl>, user: &str, host: &str) -> Self {
        let mut w = Self {
            control,
            config: ServerConfig::default(),
            pcid: String::new(),
            password: String::new(),
            password2: String::new(),
            otp_on: false,
            email: String::new(),
            port: String::new(),
            desktop: DesktopMode::Auto,
            suggestions: suggest_pcids(user, host),
            suggestion: 0,
            busy: None,
            message: None,
            policy: Policy::default(),
        };
        w.reload();
        w
    }

    /// Reads the settings again into the fields.
    pub fn reload(&mut self) {
        match self.control.config() {
            Ok(c) => {
                self.pcid = c.pcid.clone().unwrap_or_default();
                self.otp_on = c.otp_email.is_some();
                self.email = c.otp_email.clone().unwrap_or_default();
                self.port = c.port.to_string();
                self.desktop = c.desktop;
                self.config = c;
            }
            Err(e) => self.message = Some(Message { text: e.message(), error: true }),
        }
    }

    /// The error shown, if any.
    pub fn error(&self) -> Option<&str> {
        self.message.as_ref().filter(|m| m.error).map(|m| m.text.as_str())
    }

    /// The current suggestion, if any is left.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestions.get(self.suggestion).map(String::as_str)
    }

    /// True while an action runs.
    pub fn is_busy(&self) -> bool {
        self.busy.is_some()
    }

    /// Draws the window and handles its input.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if !super::setup(ui.ctx()) {
            return;
        }
        self.poll();
        // The live state changes behind the window's back.
        ui.ctx().request_repaint_after(Duration::from_millis(500));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                super::artwork::title_block(ui, &tr(Key::APP_TITLE_SERVER));
                ui.separator();
                self.status_ui(ui);
                ui.separator();
                ui.add_enabled_ui(self.busy.is_none(), |ui| {
                    self.pcid_ui(ui);
                    ui.separator();
                    self.password_ui(ui);
                    ui.separator();
                    self.settings_ui(ui);
                });
                if self.busy.is_some() {
                    ui.spinner();
                }
                if let Some(m) = &self.message {
                    ui.add_space(4.0);
                    let color = if m.error { ui.visuals().error_fg_color } else { ui.visuals().text_color() };
                    ui.label(egui::RichText::new(&m.text).color(color));
                }
            });
        });
        super::report_ready_once(ui.ctx());
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        match &self.config.pcid {
            Some(p) => ui.label(egui::RichText::new(trf(Key::THINSVR_REGISTERED, &[p])).strong()),
            None => ui.label(tr(Key::THINSVR_NOT_REGISTERED)),
        };
        let st = self.control.status();
        let ok = egui::Color32::from_rgb(0x1b, 0x7f, 0x3b);
        match &st.online {
            Online::Unknown => {}
            Online::Connecting => {
                ui.label(tr(Key::THINSVR_CONNECTING));
            }
            Online::Online => {
                ui.label(egui::RichText::new(tr(Key::THINSVR_ONLINE)).color(ok));
            }
            Online::Offline(why) => {
                ui.label(egui::RichText::new(trf(Key::THINSVR_OFFLINE, &[why])).color(ui.visuals().error_fg_color));
            }
            Online::Stopped => {
                ui.label(tr(Key::THINSVR_SERVICE_STOPPED));
            }
        }
        if let Some(n) = st.clients {
            ui.label(trf(Key::THINSVR_NUM_CLIENTS, &[&n]));
        }
        self.policy = st.policy;
        if let Some(m) = &self.policy.server_message {
            ui.label(egui::RichText::new(trf(Key::THINSVR_POLICY_MESSAGE, &[m])).strong());
        }
        let fixed = policy_rules(&self.policy);
        if !fixed.is_empty() {
            ui.label(egui::RichText::new(trf(Key::THINSVR_POLICY_FIXED, &[&fixed.join(", ")])).small());
        }
    }

    fn pcid_ui(&mut self, ui: &mut egui::Ui) {
        labeled_field(ui, &tr(Key::THINSVR_PCID_LABEL), &mut self.pcid, false, 220.0);
        let typed = self.pcid.trim();
        if !typed.is_empty() && thin_protocol::pcid::normalize(typed).is_err() {
            ui.label(egui::RichText::new(tr(Key::ERR_PCID_INVALID)).color(ui.visuals().error_fg_color).small());
        }
        // A suggestion helps choose the first ID; a registered PC has one.
        if let Some(s) = self.suggestion().filter(|_| self.config.pcid.is_none()).map(str::to_string) {
            if !s.eq_ignore_ascii_case(typed) {
                ui.horizontal(|ui| {
                    ui.label(trf(Key::THINSVR_PCID_SUGGEST, &[&s]));
                    if ui.small_button(tr(Key::THINSVR_USE_SUGGESTION)).clicked() {
                        self.pcid = s.clone();
                    }
                });
            }
        }
        let registered = self.config.pcid.is_some();
        let label = if registered { tr(Key::THINSVR_PCID_CHANGE) } else { tr(Key::THINSVR_PCID_REGISTER) };
        if ui.button(label).clicked() {
            self.register(ui.ctx());
        }
    }

    fn password_ui(&mut self, ui: &mut egui::Ui) {
        if self.config.pcid.is_none() {
            ui.label(egui::RichText::new(tr(Key::THINSVR_PASSWORD_FIRST)).weak());
        }
        labeled_field(ui, &tr(Key::PASSWORD_PROMPT), &mut self.password, true, 180.0);
        labeled_field(ui, &tr(Key::PASSWORD_CONFIRM_PROMPT), &mut self.password2, true, 180.0);
        if self.config.pcid.is_some() && ui.button(tr(Key::THINSVR_PASSWORD_SET)).clicked() {
            if let Some(pw) = self.checked_password() {
                let c = self.control.clone();
                self.spawn(ui.ctx(), move || c.set_password(&pw).map(|()| Done::PasswordSet));
            }
        }
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        // ENFORCE_OTP: the box stays ticked and cannot be cleared here.
        let forced = self.policy.enforce_otp;
        if forced {
            self.otp_on = true;
        }
        ui.add_enabled(!forced, egui::Checkbox::new(&mut self.otp_on, tr(Key::THINSVR_OTP_ENABLE)));
        if self.otp_on {
            labeled_field(ui, &tr(Key::THINSVR_OTP_EMAIL), &mut self.email, false, 220.0);
        }
        labeled_field(ui, &tr(Key::THINSVR_SERVICE_PORT), &mut self.port, false, 60.0);
        if parse_port(&self.port).is_none() {
            ui.label(egui::RichText::new(tr(Key::ERR_PORT_INVALID)).color(ui.visuals().error_fg_color).small());
        }
        self.desktop_ui(ui);
        if ui.button(tr(Key::BUTTON_SAVE)).clicked() {
            self.save_settings(ui.ctx());
        }
    }

    fn desktop_ui(&mut self, ui: &mut egui::Ui) {
        ui.label(tr(Key::THINSVR_DESKTOP_LABEL));
        for (mode, key) in [
            (DesktopMode::Auto, Key::THINSVR_DESKTOP_AUTO),
            (DesktopMode::Builtin, Key::THINSVR_DESKTOP_BUILTIN),
            (DesktopMode::Rdp, Key::THINSVR_DESKTOP_RDP),
        ] {
            ui.radio_value(&mut self.desktop, mode, tr(key));
        }
        if !self.config.builtin_desktop {
            ui.label(egui::RichText::new(tr(Key::THINSVR_DESKTOP_UNAVAILABLE)).weak().small());
        }
    }

    fn error_msg(&mut self, text: String) {
        self.message = Some(Message { text, error: true });
    }

    /// The typed password if both fields agree and it is not empty.
    fn checked_password(&mut self) -> Option<Secret> {
        if self.password.is_empty() {
            self.error_msg(tr(Key::ERR_PASSWORD_EMPTY));
            return None;
        }
        if self.password != self.password2 {
            self.error_msg(tr(Key::ERR_PASSWORD_MISMATCH));
            return None;
        }
        let pcid = self.pcid.trim().to_string();
        if let Err(e) = thin_tunnel::password_policy::check(&self.password, &[&pcid]) {
            self.error_msg(ControlError::WeakPassword(e).message());
            return None;
        }
        Some(Secret::new(self.password.clone()))
    }

    fn register(&mut self, ctx: &egui::Context) {
        let pcid = self.pcid.trim().to_string();
        if thin_protocol::pcid::normalize(&pcid).is_err() {
            self.error_msg(ControlError::PcidInvalid.message());
            return;
        }
        // A first registration sets the password too; a rename keeps it
        // unless a new one was typed.
        let needs_password = self.config.pcid.is_none() || !self.config.has_password;
        let password = if needs_password || !self.password.is_empty() {
            match self.checked_password() {
                Some(p) => Some(p),
                None => return,
            }
        } else {
            None
        };
        let c = self.control.clone();
        self.spawn(ctx, move || c.register(&pcid, password.as_ref()).map(|_| Done::Registered));
    }

    fn save_settings(&mut self, ctx: &egui::Context) {
        let Some(port) = parse_port(&self.port) else {
            self.error_msg(tr(Key::ERR_PORT_INVALID));
            return;
        };
        let email = if self.otp_on {
            match thin_tunnel::otp::check_email(&self.email) {
                Ok(e) => Some(e),
                Err(_) => {
                    self.error_msg(ControlError::EmailInvalid.message());
                    return;
                }
            }
        } else {
            None
        };
        let (c, desktop) = (self.control.clone(), self.desktop);
        self.spawn(ctx, move || {
            c.set_otp_email(email.as_deref())?;
            c.set_port(port)?;
            c.set_desktop(desktop)?;
            Ok(Done::SettingsSaved)
        });
    }

    fn spawn(&mut self, ctx: &egui::Context, job: impl FnOnce() -> Result<Done, ControlError> + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new().name("thin-server-action".into()).spawn(move || {
            let _ = tx.send(job());
            ctx.request_repaint();
        });
        match spawned {
            Ok(_) => {
                self.message = None;
                self.busy = Some(rx);
            }
            Err(e) => self.error_msg(ControlError::Other(e.to_string()).message()),
        }
    }

    fn poll(&mut self) {
        let Some(rx) = &self.busy else { return };
        let r = match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => Err(ControlError::Other("the action stopped".into())),
        };
        self.busy = None;
        match r {
            Ok(done) => {
                // A registration shows in the state line; the others say so.
                let clear = !matches!(done, Done::SettingsSaved);
                let text = match done {
                    Done::Registered => None,
                    Done::PasswordSet => Some(tr(Key::THINSVR_PASSWORD_CHANGED)),
                    Done::SettingsSaved => Some(tr(Key::THINSVR_SETTINGS_SAVED)),
                };
                if clear {
                    self.password.clear();
                    self.password2.clear();
                }
                self.reload();
                self.message = text.map(|text| Message { text, error: false });
            }
            Err(e) => {
                // A taken suggestion gives way to the next one.
                if let ControlError::PcidTaken(p) = &e {
                    if self.suggestion().is_some_and(|s| s.eq_ignore_ascii_case(p)) {
                        self.suggestion += 1;
                    }
                }
                self.error_msg(e.message());
            }
        }
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

impl super::WindowUi for ServerWindow {
    fn ui(&mut self, ui: &mut egui::Ui) {
        ServerWindow::ui(self, ui);
    }
}

/// Opens ThinServer's window and returns when it is closed.
pub fn run_server_window(window: ServerWindow) -> Result<(), super::GuiError> {
    super::run_window(&tr(Key::APP_TITLE_SERVER), [480.0, 640.0], Box::new(window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_valid_ids_from_the_names() {
        let s = suggest_pcids("Taro.Yamada", "DESKTOP-AB12.corp.example");
        assert_eq!(&s[..3], ["taro-yamada", "desktop-ab12", "taro-yamada-desktop-ab12"]);
        assert!(s.iter().all(|x| thin_protocol::pcid::normalize(x).is_ok()), "{s:?}");
        assert_eq!(s[3], "taro-yamada-2");
        assert_eq!(suggest_pcids("CORP\\alice", "")[0], "alice");
        assert_eq!(suggest_pcids("bob@example.org", "h")[0], "bob");
        // A Japanese user name leaves the computer name.
        assert_eq!(suggest_pcids("山田", "office-7")[0], "office-7");
        assert_eq!(suggest_pcids("", "")[0], "pc-2");
        let long = suggest_pcids(&"x".repeat(40), "h");
        assert!(long.iter().all(|x| x.len() <= 31), "{long:?}");
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port(" 3389 "), Some(3389));
        assert_eq!(parse_port("0"), None);
        assert_eq!(parse_port("65536"), None);
        assert_eq!(parse_port("rdp"), None);
    }
}
