//! What the built-in desktop server needs from the office PC's screen: its
//! size, the pixels of what changed, and a way to press keys and move the
//! mouse. One implementation per platform (`crate::platform::x11` on Linux).

use std::time::Duration;

/// A rectangle of the screen, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

impl Rect {
    /// The area in pixels.
    pub fn area(&self) -> u32 {
        u32::from(self.width) * u32::from(self.height)
    }
}

/// The pixels of one rectangle: 32 bits per pixel, in memory order B, G, R,
/// X (X11's and Windows' native order), `stride` bytes per row.
#[derive(Debug, Clone)]
pub struct Pixels {
    pub rect: Rect,
    pub stride: usize,
    pub data: Vec<u8>,
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Left,
    Middle,
    Right,
}

/// Input from the viewer, in the screen's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A PC/AT set-1 scan code (what RDP sends); `extended` is the E0 prefix.
    Key { code: u8, extended: bool, down: bool },
    /// A character typed with no key behind it (RDP's Unicode keyboard event).
    Unicode { ch: u16, down: bool },
    /// The pointer moved to (x, y).
    Move { x: u16, y: u16 },
    /// A button went down or up at (x, y).
    Button { button: Button, down: bool, x: u16, y: u16 },
    /// The wheel turned: positive away from the user, in notches (120 = one).
    Wheel { delta: i16 },
}

/// Errors of a screen.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    /// No display to capture (no `DISPLAY`, or the X server refused).
    #[error("no desktop to serve: {0}")]
    NoDisplay(String),
    /// The display lacks an extension the server needs.
    #[error("the display lacks the {0} extension")]
    Missing(&'static str),
    /// The connection to the display failed.
    #[error("desktop display: {0}")]
    Io(String),
}

/// The office PC's screen.
pub trait Screen: Send {
    /// The screen's size now (width, height).
    fn size(&self) -> (u16, u16);
    /// The whole screen.
    fn grab_all(&mut self) -> Result<Pixels, ScreenError>;
    /// Waits up to `wait` for the screen to change and returns the changed
    /// parts (merged so that few rectangles cover them); empty when nothing
    /// changed in time. After the size changed, returns the whole screen
    /// and `size()` tells the new size.
    fn changes(&mut self, wait: Duration) -> Result<Vec<Pixels>, ScreenError>;
    /// Injects one input event.
    fn input(&mut self, event: Input) -> Result<(), ScreenError>;
}
