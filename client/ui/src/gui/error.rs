//! Why a window could not be opened or its data kept.

/// Why the service could not be started inside the window.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A thread or runtime could not be started.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The service could not start.
    #[error(transparent)]
    Service(#[from] thin_tunnel::service::ServiceError),
    /// The service stopped before it listened.
    #[error("{0}")]
    Gone(String),
}

/// Why a window, its artwork, its history or the embedded service failed.
#[derive(Debug, thiserror::Error)]
pub enum GuiError {
    /// The window system refused to open the window.
    #[error(transparent)]
    Window(#[from] eframe::Error),
    /// The artwork is not a BMP this build can read.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The recent computer IDs cannot be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The recent computer IDs or the service's files cannot be written.
    #[error(transparent)]
    Settings(#[from] thin_tunnel::settings::SettingsError),
    /// The service could not be started inside the window.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// OpenGL (forced with `THIN_RENDERER=opengl`) could not open the window.
    #[error(
        "OpenGL could not open the window (OpenGL 2 or newer is needed; THIN_RENDERER=software paints on the CPU)"
    )]
    NoOpenGl,
    /// The window painted on the CPU failed.
    #[error(transparent)]
    Software(#[from] super::software::SoftwareError),
    /// `THIN_RENDERER` names no painter.
    #[error("THIN_RENDERER={0:?}: use auto, opengl or software")]
    Renderer(String),
    /// No such stand-in window.
    #[error("no demo window {0:?}: client, client-empty, server, server-new")]
    NoDemo(String),
}
