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

/// More changed rectangles than this are sent as their bounding box.
pub const MAX_RECTS: usize = 16;
/// Changed rectangles covering more than this share (in tenths) of their
/// bounding box are sent as the box.
const MERGE_TENTHS: u64 = 7;

/// The changed rectangles to send (inside the screen, not overlapping),
/// replaced by their bounding box when there are more than [`MAX_RECTS`] or
/// they cover most of it (one bigger image costs less than many small ones).
pub fn merge(rects: Vec<Rect>) -> Vec<Rect> {
    let Some(first) = rects.first() else { return rects };
    let (mut x0, mut y0) = (u32::from(first.x), u32::from(first.y));
    let (mut x1, mut y1) = (x0 + u32::from(first.width), y0 + u32::from(first.height));
    for r in &rects[1..] {
        x0 = x0.min(u32::from(r.x));
        y0 = y0.min(u32::from(r.y));
        x1 = x1.max(u32::from(r.x) + u32::from(r.width));
        y1 = y1.max(u32::from(r.y) + u32::from(r.height));
    }
    let c = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let bbox = Rect { x: c(x0), y: c(y0), width: c(x1 - x0), height: c(y1 - y0) };
    // The rectangles do not overlap: their sum is the changed area.
    let sum: u64 = rects.iter().map(|r| u64::from(r.area())).sum();
    if rects.len() > MAX_RECTS || sum * 10 > u64::from(bbox.area()) * MERGE_TENTHS {
        vec![bbox]
    } else {
        rects
    }
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
