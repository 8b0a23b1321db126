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
    /// The text on the office PC's clipboard (`None`: no text there, or
    /// more than [`CLIPBOARD_MAX`] bytes of it).
    fn clipboard_text(&mut self) -> Result<Option<String>, ScreenError>;
    /// Puts `text` on the office PC's clipboard, as a copy in an app would.
    fn set_clipboard_text(&mut self, text: &str) -> Result<(), ScreenError>;
    /// Whether another app put something on the clipboard since the last
    /// call (a [`Self::set_clipboard_text`] does not count).
    fn clipboard_changed(&mut self) -> Result<bool, ScreenError>;
}

/// The most text the clipboard carries either way, in bytes (UTF-8 on the
/// office PC): bigger copies are not offered, so a viewer cannot make the
/// office PC hold more than this, nor the office PC the viewer.
pub const CLIPBOARD_MAX: usize = 4 << 20;

/// What the viewer holds down on the office PC: keys, characters and mouse
/// buttons pressed and not yet released. A viewer that vanishes (its
/// connection dropped, a key-up lost) must not leave Ctrl or a button held
/// on the office PC: the session releases what is left when it ends.
#[derive(Debug, Default)]
pub struct Held {
    /// Keys and characters down, in the order they went down.
    keys: Vec<Input>,
    buttons: Vec<Button>,
    /// Where the pointer was last put.
    at: (u16, u16),
}

impl Held {
    /// Notes one event that was passed on to the screen.
    pub fn note(&mut self, event: &Input) {
        match *event {
            Input::Key { code, extended, down } => {
                self.keys.retain(|k| *k != Input::Key { code, extended, down: true });
                if down {
                    self.keys.push(*event);
                }
            }
            Input::Unicode { ch, down } => {
                self.keys.retain(|k| *k != Input::Unicode { ch, down: true });
                if down {
                    self.keys.push(*event);
                }
            }
            Input::Move { x, y } => self.at = (x, y),
            Input::Button { button, down, x, y } => {
                self.at = (x, y);
                self.buttons.retain(|b| *b != button);
                if down {
                    self.buttons.push(button);
                }
            }
            Input::Wheel { .. } => {}
        }
    }

    /// The events that release everything still held (last pressed first),
    /// after which nothing is.
    pub fn release_all(&mut self) -> Vec<Input> {
        let (x, y) = self.at;
        let buttons = self.buttons.drain(..).rev().map(|button| Input::Button { button, down: false, x, y });
        let keys = self.keys.drain(..).rev().map(|k| match k {
            Input::Key { code, extended, .. } => Input::Key { code, extended, down: false },
            Input::Unicode { ch, .. } => Input::Unicode { ch, down: false },
            other => other,
        });
        buttons.chain(keys).collect::<Vec<_>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: u8, down: bool) -> Input {
        Input::Key { code, extended: false, down }
    }

    #[test]
    fn what_is_still_held_is_released_last_pressed_first() {
        let mut h = Held::default();
        // Ctrl down, C down and up, Shift down (twice: a repeat), a button down at (5, 6).
        for e in [key(0x1d, true), key(0x2e, true), key(0x2e, false), key(0x2a, true), key(0x2a, true)] {
            h.note(&e);
        }
        h.note(&Input::Unicode { ch: 0x3042, down: true });
        h.note(&Input::Button { button: Button::Left, down: true, x: 5, y: 6 });
        h.note(&Input::Move { x: 7, y: 8 });
        h.note(&Input::Wheel { delta: 120 });
        assert_eq!(
            h.release_all(),
            vec![
                Input::Button { button: Button::Left, down: false, x: 7, y: 8 },
                Input::Unicode { ch: 0x3042, down: false },
                key(0x2a, false),
                key(0x1d, false),
            ]
        );
        assert!(h.release_all().is_empty(), "nothing is held after the release");
        // Released by the viewer: nothing to do.
        h.note(&Input::Button { button: Button::Right, down: true, x: 1, y: 1 });
        h.note(&Input::Button { button: Button::Right, down: false, x: 1, y: 1 });
        h.note(&Input::Key { code: 0x1d, extended: true, down: true });
        h.note(&Input::Key { code: 0x1d, extended: true, down: false });
        assert!(h.release_all().is_empty());
    }
}
