//! A window painted on the CPU, for PCs whose OpenGL is older than 2.0
//! (Windows without a GPU driver, Windows Server, some VDI): the same egui
//! window, its input through `egui-winit` as eframe's, its frames painted by
//! [`super::raster`] and shown with `softbuffer` (GDI on Windows, X11 shared
//! memory or `PutImage` on Linux), which needs no graphics driver at all.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::time::Instant;

use eframe::egui;
use eframe::UserEvent;
use egui_winit::winit;
use winit::application::ApplicationHandler;
use winit::event::{StartCause, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop, EventLoopProxy};
use winit::window::{Window, WindowId};

use super::raster::{self, Canvas, RasterError, Textures};
use super::WindowUi;

/// Why the CPU-painted window failed.
#[derive(Debug, thiserror::Error)]
pub enum SoftwareError {
    /// The window could not be created.
    #[error("cannot create the window: {0}")]
    Window(#[from] winit::error::OsError),
    /// The window system gave no way to show a picture in the window.
    #[error("cannot show pictures in the window: {0}")]
    Present(#[from] softbuffer::SoftBufferError),
    /// A frame could not be painted.
    #[error("cannot paint the window: {0}")]
    Raster(#[from] RasterError),
    /// The event loop failed.
    #[error("window events: {0}")]
    EventLoop(#[from] winit::error::EventLoopError),
}

/// Opens `viewport` on `event_loop` showing `app`, painted on the CPU, and
/// returns when it is closed.
pub(crate) fn run(
    event_loop: &mut EventLoop<UserEvent>,
    viewport: egui::ViewportBuilder,
    size: [f32; 2],
    app: Rc<RefCell<Box<dyn WindowUi>>>,
) -> Result<(), SoftwareError> {
    use winit::platform::run_on_demand::EventLoopExtRunOnDemand as _;
    let ctx = egui::Context::default();
    let proxy = event_loop.create_proxy();
    let mut handler = Handler {
        viewport,
        size,
        app,
        ctx,
        proxy,
        running: None,
        textures: Textures::default(),
        repaint_at: None,
        error: None,
    };
    event_loop.run_app_on_demand(&mut handler)?;
    // Dropping the window closes it before the caller goes on.
    handler.running = None;
    handler.error.map_or(Ok(()), Err)
}

struct Running {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    egui: egui_winit::State,
}

struct Handler {
    viewport: egui::ViewportBuilder,
    /// The window's size in points, to centre it.
    size: [f32; 2],
    app: Rc<RefCell<Box<dyn WindowUi>>>,
    ctx: egui::Context,
    proxy: EventLoopProxy<UserEvent>,
    running: Option<Running>,
    textures: Textures,
    repaint_at: Option<Instant>,
    error: Option<SoftwareError>,
}

impl Handler {
    fn fail(&mut self, event_loop: &ActiveEventLoop, e: SoftwareError) {
        tracing::error!("the window painted on the CPU failed: {e}");
        self.error = Some(e);
        event_loop.exit();
    }

    fn open(&mut self, event_loop: &ActiveEventLoop) -> Result<(), SoftwareError> {
        // In the middle of the screen, as eframe places its windows.
        let mut viewport = self.viewport.clone();
        if let Some(m) = event_loop.primary_monitor().or_else(|| event_loop.available_monitors().next()) {
            let screen = m.size().to_logical::<f32>(m.scale_factor());
            if screen.width > 0.0 && screen.height > 0.0 {
                let [w, h] = self.size;
                viewport = viewport.with_position([(screen.width - w) * 0.5, (screen.height - h) * 0.5]);
            }
        }
        let window = Rc::new(egui_winit::create_window(&self.ctx, event_loop, &viewport)?);
        let context = softbuffer::Context::new(window.clone())?;
        let surface = softbuffer::Surface::new(&context, window.clone())?;
        let egui = egui_winit::State::new(
            self.ctx.clone(),
            egui::ViewportId::ROOT,
            &window,
            Some(window.scale_factor() as f32),
            None,
            None,
        );
        let _ = super::setup(&self.ctx);
        let proxy = self.proxy.clone();
        self.ctx.set_request_repaint_callback(move |info| {
            let _ = proxy.send_event(UserEvent::RequestRepaint {
                viewport_id: info.viewport_id,
                when: Instant::now() + info.delay,
                cumulative_pass_nr: info.current_cumulative_pass_nr,
            });
        });
        window.request_redraw();
        tracing::info!("window painted on the CPU");
        self.running = Some(Running { window, surface, egui });
        Ok(())
    }

    /// Runs the window's ui for one frame and shows it; false when the window asked to close.
    fn frame(&mut self) -> Result<bool, SoftwareError> {
        let Some(r) = self.running.as_mut() else { return Ok(true) };
        let input = r.egui.take_egui_input(&r.window);
        let app = &self.app;
        let out = self.ctx.run_ui(input, |ui| app.borrow_mut().ui(ui));
        r.egui.handle_platform_output(&r.window, out.platform_output);
        let mut delta = out.textures_delta;
        let set = self.textures.set(&mut delta);
        let freed = std::mem::take(&mut delta.free);
        set?;
        let ppp = out.pixels_per_point;
        let prims = self.ctx.tessellate(out.shapes, ppp);
        let size = r.window.inner_size();
        if let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) {
            r.surface.resize(w, h)?;
            let mut buffer = r.surface.buffer_mut()?;
            let mut canvas = Canvas { width: size.width as usize, height: size.height as usize, px: &mut buffer };
            let background = self.ctx.global_style().visuals.panel_fill;
            raster::paint(&mut canvas, &self.textures, &prims, ppp, background)?;
            buffer.present()?;
        }
        self.textures.free(freed);
        let mut close = false;
        if let Some(vp) = out.viewport_output.get(&egui::ViewportId::ROOT) {
            close = vp.commands.contains(&egui::ViewportCommand::Close);
            if vp.repaint_delay.is_zero() {
                r.window.request_redraw();
            } else if let Some(at) = Instant::now().checked_add(vp.repaint_delay) {
                self.repaint_at = Some(self.repaint_at.map_or(at, |t| t.min(at)));
            }
        }
        Ok(!close)
    }
}

impl ApplicationHandler<UserEvent> for Handler {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.running.is_none() && self.error.is_none() {
            if let Err(e) = self.open(event_loop) {
                self.fail(event_loop, e);
            }
        }
    }

    fn new_events(&mut self, _event_loop: &ActiveEventLoop, cause: StartCause) {
        if let StartCause::ResumeTimeReached { .. } = cause {
            if let Some(r) = &self.running {
                r.window.request_redraw();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, id: WindowId, event: WindowEvent) {
        // Late events of another window (the one OpenGL failed to paint) are not this one's.
        let Some(r) = self.running.as_mut().filter(|r| r.window.id() == id) else { return };
        let response = r.egui.on_window_event(&r.window, &event);
        match event {
            WindowEvent::CloseRequested | WindowEvent::Destroyed => event_loop.exit(),
            WindowEvent::RedrawRequested => {
                self.repaint_at = None;
                match self.frame() {
                    Ok(true) => {}
                    Ok(false) => event_loop.exit(),
                    Err(e) => self.fail(event_loop, e),
                }
            }
            WindowEvent::Resized(_) | WindowEvent::ScaleFactorChanged { .. } => r.window.request_redraw(),
            _ if response.repaint => r.window.request_redraw(),
            _ => {}
        }
    }

    fn user_event(&mut self, _event_loop: &ActiveEventLoop, event: UserEvent) {
        let UserEvent::RequestRepaint { when, .. } = event;
        if when <= Instant::now() {
            if let Some(r) = &self.running {
                r.window.request_redraw();
            }
        } else {
            self.repaint_at = Some(self.repaint_at.map_or(when, |t| t.min(when)));
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        match self.repaint_at {
            Some(at) if at <= Instant::now() => {
                self.repaint_at = None;
                if let Some(r) = &self.running {
                    r.window.request_redraw();
                }
                event_loop.set_control_flow(ControlFlow::Wait);
            }
            Some(at) => event_loop.set_control_flow(ControlFlow::WaitUntil(at)),
            None => event_loop.set_control_flow(ControlFlow::Wait),
        }
    }
}
