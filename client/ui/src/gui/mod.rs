//! The windows of the apps: ThinClient's (computer ID, password, one-time
//! password, progress, plain-language errors, then the viewer) and
//! ThinServer's (computer ID, password, one-time password by e-mail, local
//! service port, live state).
//!
//! Toolkit: egui, opened by eframe with OpenGL (glow), or, where OpenGL 2 is
//! missing (or `THIN_RENDERER=software`), painted on the CPU ([`software`]).
//! Each window is a plain
//! state struct with `fn ui(&mut self, ui: &mut egui::Ui)`, so tests drive it
//! headless with `egui_kittest`; [`run_client_window`] and
//! [`run_server_window`] open it as a native window. The work behind the
//! windows goes through traits ([`Connector`], [`ServerControl`]) so that tests
//! plug in stand-ins and the apps the real agents.
//!
//! Every text comes from the string tables ([`crate::strings`]), in the user's
//! language; a Japanese font is embedded ([`fonts`]); the brand's BMP artwork
//! is shown ([`artwork`]).

pub mod admin_control;
pub mod artwork;
pub mod client_window;
pub mod connector;
pub mod error;
pub mod fonts;
pub mod history;
pub mod raster;
pub mod server_window;
pub mod software;
#[cfg(feature = "test-support")]
pub mod stand_in;

pub use eframe::egui;

pub use crate::strings::Key;

pub use admin_control::AdminControl;
pub use client_window::{
    run_client_window, ClientEvent, ClientWindow, ConnectError, Connector, PhaseKind, Progress, Session,
};
pub use connector::{RealConnector, UnusableConnector};
pub use error::{EmbedError, GuiError};
pub use history::History;
pub use server_window::{
    run_server_window, suggest_pcids, ControlError, DesktopMode, Online, ServerConfig, ServerControl, ServerStatus,
    ServerWindow,
};
pub use software::SoftwareError;

/// What the windows show of the brand compiled into this build.
#[derive(Debug, Clone, Copy)]
pub struct BrandView {
    /// Product name (`Thin Telework`).
    pub product: &'static str,
    /// System name (`SYSTEM:` of the entry point, e.g. `Thin Telework System`).
    pub system: &'static str,
    /// AppId.
    pub app_id: &'static str,
    /// Header artwork (BMP, 150x57).
    pub header_bmp: &'static [u8],
    /// Icon artwork (BMP, 32x32).
    pub icon_bmp: &'static [u8],
}

/// The brand, read in this one place (the brand module's accessor may change;
/// only this function follows it).
pub fn brand() -> BrandView {
    let b = thin_tunnel::brand::get();
    BrandView {
        product: b.product_name,
        system: b.system_name,
        app_id: b.app_id,
        header_bmp: b.header_bmp,
        icon_bmp: b.icon_bmp,
    }
}

/// The text of `key` in the user's language.
pub fn tr(key: Key) -> String {
    crate::strings::text(key).into_owned()
}

/// The text of `key` with `{0}`, `{1}`... filled in.
pub fn trf(key: Key, args: &[&dyn std::fmt::Display]) -> String {
    crate::strings::fmt(key, args)
}

/// Prepares a context for the windows, once: the fonts (with Japanese) and a
/// light style that suits a small dialog. Returns false on the pass that
/// installed them: fonts take effect from the next pass, so a window draws
/// nothing on this one rather than text without its glyphs.
pub fn setup(ctx: &egui::Context) -> bool {
    let done = egui::Id::unique("thin_gui_setup_done");
    if ctx.data(|d| d.get_temp::<bool>(done)).unwrap_or(false) {
        return true;
    }
    fonts::install(ctx);
    ctx.set_theme(egui::Theme::Light);
    ctx.all_styles_mut(|s| {
        s.spacing.item_spacing = egui::vec2(8.0, 6.0);
        s.spacing.button_padding = egui::vec2(10.0, 4.0);
    });
    ctx.data_mut(|d| d.insert_temp(done, true));
    ctx.request_repaint();
    false
}

/// Prints `ready` on standard error once the first frame is painted, when
/// `THIN_GUI_REPORT_READY` is set (the start-up benchmark and the screenshot
/// test wait for it).
pub(crate) fn report_ready_once(ctx: &egui::Context) {
    let id = egui::Id::unique("thin_gui_ready_reported");
    if ctx.data(|d| d.get_temp::<bool>(id)).unwrap_or(false) {
        return;
    }
    ctx.data_mut(|d| d.insert_temp(id, true));
    if std::env::var_os("THIN_GUI_REPORT_READY").is_some() {
        eprintln!("thin-gui: ready");
    }
}

/// A text field with a label in front of it that names it (for screen readers
/// and for tests that find fields by label).
pub(crate) fn labeled_field(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut String,
    password: bool,
    width: f32,
) -> egui::Response {
    ui.horizontal(|ui| {
        let l = ui.label(label);
        let edit = egui::TextEdit::singleline(value).password(password).desired_width(width).id_salt(label);
        ui.add(edit).labelled_by(l.id)
    })
    .inner
}

/// A window's content: its state and the `ui` function that shows it.
pub trait WindowUi {
    /// Shows the window's content for one frame.
    fn ui(&mut self, ui: &mut egui::Ui);
}

/// Which painter opens the windows: `THIN_RENDERER` is `opengl` (eframe's
/// OpenGL painter only), `software` (painted on the CPU), or unset or `auto`
/// (OpenGL, and the CPU painter when OpenGL cannot open the window, e.g. with
/// OpenGL 1.1 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// OpenGL, else the CPU.
    Auto,
    /// OpenGL only.
    OpenGl,
    /// The CPU only.
    Software,
}

impl Renderer {
    /// The environment variable that chooses the painter.
    pub const ENV: &'static str = "THIN_RENDERER";

    /// The painter `THIN_RENDERER` asks for.
    pub fn from_env() -> Result<Self, GuiError> {
        match std::env::var(Self::ENV) {
            Err(_) => Ok(Self::Auto),
            Ok(v) => Self::parse(&v).ok_or(GuiError::Renderer(v)),
        }
    }

    /// `auto`, `opengl` (or `gl`, `glow`), `software` (or `cpu`); empty is `auto`.
    pub fn parse(v: &str) -> Option<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Self::Auto),
            "opengl" | "gl" | "glow" => Some(Self::OpenGl),
            "software" | "cpu" => Some(Self::Software),
            _ => None,
        }
    }
}

/// eframe's view of a window's content.
struct Shared(std::rc::Rc<std::cell::RefCell<Box<dyn WindowUi>>>);

impl eframe::App for Shared {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.borrow_mut().ui(ui);
    }
}

/// Prints which painter shows the window, when `THIN_GUI_REPORT_READY` is set
/// (the tests check that the one they expect was used).
fn report_renderer(name: &str) {
    if std::env::var_os("THIN_GUI_REPORT_READY").is_some() {
        eprintln!("thin-gui: renderer {name}");
    }
}

/// Opens a window titled `title` of `size` showing `app` with the painter
/// [`Renderer::from_env`] chooses, and returns when it is closed. OpenGL is
/// tried first; when it could not open the window (eframe never created the
/// app: no OpenGL 2 context, no usable pixel format), the same window opens
/// again painted on the CPU, on the same event loop (winit allows only one
/// per process).
pub(crate) fn run_window(title: &str, size: [f32; 2], app: Box<dyn WindowUi>) -> Result<(), GuiError> {
    use egui_winit::winit::platform::run_on_demand::EventLoopExtRunOnDemand as _;
    let renderer = Renderer::from_env()?;
    let app = std::rc::Rc::new(std::cell::RefCell::new(app));
    let mut event_loop = egui_winit::winit::event_loop::EventLoop::<eframe::UserEvent>::with_user_event()
        .build()
        .map_err(eframe::Error::from)?;
    if renderer != Renderer::Software {
        let created = std::rc::Rc::new(std::cell::Cell::new(false));
        {
            let (created, app) = (created.clone(), app.clone());
            let mut gl = eframe::create_native(
                title,
                native_options(title, size),
                Box::new(move |cc| {
                    created.set(true);
                    report_renderer("opengl");
                    let _ = setup(&cc.egui_ctx);
                    Ok(Box::new(Shared(app)))
                }),
                &event_loop,
            );
            event_loop.run_app_on_demand(&mut gl).map_err(eframe::Error::from)?;
        }
        if created.get() {
            return Ok(());
        }
        if renderer == Renderer::OpenGl {
            return Err(GuiError::NoOpenGl);
        }
        tracing::warn!("OpenGL could not open the window (no OpenGL 2?): painting it on the CPU");
    }
    report_renderer("software");
    software::run(&mut event_loop, viewport(title, size), size, app)?;
    Ok(())
}

/// The window's title, size and icon.
fn viewport(title: &str, size: [f32; 2]) -> egui::ViewportBuilder {
    let mut viewport = egui::ViewportBuilder::default().with_title(title).with_inner_size(size).with_resizable(true);
    if let Some(icon) = artwork::icon_data(brand().icon_bmp) {
        viewport = viewport.with_icon(icon);
    }
    viewport
}

/// eframe's options for a window titled `title` of `size`.
pub(crate) fn native_options(title: &str, size: [f32; 2]) -> eframe::NativeOptions {
    eframe::NativeOptions { viewport: viewport(title, size), centered: true, ..Default::default() }
}

/// Shows why a window could not be opened, or failed, where the user sees it:
/// in a message box titled `title` on Windows (a double-clicked app has no
/// console); the log gets it too. The caller still prints it on standard error.
pub fn show_failure(title: &str, e: &GuiError) {
    let text = trf(Key::GUI_WINDOW_FAILED, &[e]);
    tracing::error!("{text}");
    thin_tunnel::platform::message_box::show_error(title, &text);
}

/// ThinClient's window as the app opens it: the real connector over `link`
/// (or, without one, a window that says why it cannot connect), the user's
/// recent computer IDs, `pcid` filled in if given. Returns when it is closed.
/// Call it on the main thread, outside any tokio runtime.
pub fn open_client_app(
    link: Result<thin_tunnel::link::Link, thin_tunnel::entry::EntryError>,
    viewer: Option<String>,
    pcid: Option<&str>,
) -> Result<(), GuiError> {
    let connector: std::sync::Arc<dyn Connector> = match link {
        Ok(link) => std::sync::Arc::new(RealConnector::new(link).with_viewer(viewer)),
        Err(e) => {
            tracing::warn!("no gateway: {e}");
            std::sync::Arc::new(UnusableConnector(ConnectError::NoEntryPoint))
        }
    };
    let mut w = ClientWindow::new(connector, History::load_user());
    if let Some(p) = pcid {
        w = w.with_pcid(p);
    }
    run_client_window(w)
}

/// ThinServer's window, a front end of the service that answers on
/// `127.0.0.1:admin_port` (the brand's RPC port), proving knowledge of the
/// admin secret in the config folder `dir`. When no service answers (nothing
/// installed it, or it is stopped), the service runs inside this process
/// until the window closes (see [`connect_or_embed`]). Returns when the
/// window is closed. Call it on the main thread, outside any tokio runtime.
pub fn open_server_app(
    dir: thin_tunnel::settings::ConfigDir,
    link: Option<thin_tunnel::link::Link>,
    admin_port: u16,
) -> Result<(), GuiError> {
    let control = connect_or_embed(dir, link, admin_port)?;
    run_server_window(ServerWindow::new(std::sync::Arc::new(control)))
}

/// The service on `127.0.0.1:admin_port`, or, when nothing listens there, a
/// service started in this process (on threads of its own, for as long as the
/// process lives) with the config folder `dir` and the gateway `link`.
pub fn connect_or_embed(
    dir: thin_tunnel::settings::ConfigDir,
    link: Option<thin_tunnel::link::Link>,
    admin_port: u16,
) -> Result<AdminControl, GuiError> {
    use std::net::{Ipv4Addr, SocketAddr};
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port));
    let secret = dir.0.join(thin_tunnel::service::ADMIN_SECRET_FILE);
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok() {
        return Ok(AdminControl::new(addr, secret));
    }
    tracing::info!("no ThinServer service answers on {addr}: running it inside this window until it closes");
    let (tx, rx) = std::sync::mpsc::channel::<Result<SocketAddr, EmbedError>>();
    std::thread::Builder::new()
        .name("thin-service".into())
        .spawn(move || {
            let rt = match thin_tunnel::runtime::build("thin-service") {
                Ok(rt) => rt,
                Err(e) => return drop(tx.send(Err(e.into()))),
            };
            rt.block_on(async move {
                let (ready, listening) = tokio::sync::oneshot::channel();
                let opts = thin_tunnel::service::ServiceOptions { admin_port, ..Default::default() };
                let stop = tokio_util::sync::CancellationToken::new();
                let svc = tokio::spawn(thin_tunnel::service::run(link, dir, opts, stop, Some(ready)));
                match listening.await {
                    Ok(addr) => {
                        let _ = tx.send(Ok(addr));
                        if let Ok(Err(e)) = svc.await {
                            tracing::error!("ThinServer stopped: {e}");
                        }
                    }
                    Err(_) => {
                        let why = match svc.await {
                            Ok(Err(e)) => e.into(),
                            other => EmbedError::Gone(format!("{other:?}")),
                        };
                        let _ = tx.send(Err(why));
                    }
                }
            });
        })
        .map_err(EmbedError::from)?;
    let addr = rx.recv().map_err(|e| EmbedError::Gone(e.to_string()))??;
    Ok(AdminControl::new(addr, secret))
}

#[cfg(test)]
mod tests {
    use super::Renderer;

    #[test]
    fn thin_renderer_values() {
        for (v, r) in [
            ("", Renderer::Auto),
            ("auto", Renderer::Auto),
            ("OpenGL", Renderer::OpenGl),
            ("gl", Renderer::OpenGl),
            (" software ", Renderer::Software),
            ("cpu", Renderer::Software),
        ] {
            assert_eq!(Renderer::parse(v), Some(r), "{v:?}");
        }
        assert_eq!(Renderer::parse("wgpu"), None);
    }
}
