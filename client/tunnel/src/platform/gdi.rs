//! The office PC's screen on Windows, through GDI.
//!
//! - Capture: `BitBlt` (with `CAPTUREBLT`, so layered windows show) of the
//!   whole virtual screen (every monitor, as one desktop the size of their
//!   bounding box) into a 32-bit top-down DIB section, memory order B, G, R,
//!   X. The process is made per-monitor DPI aware first, so sizes and
//!   positions are physical pixels on scaled displays too.
//! - Changes: GDI reports no damage, so the screen is captured at most every
//!   [`FRAME`] and compared with the last capture in tiles
//!   ([`crate::desktop::diff`]).
//! - Input: `SendInput`: keys by their virtual key (mapped from the scan code
//!   in the office PC's keyboard layout) with the scan code alongside,
//!   characters as Unicode key events, the pointer in absolute coordinates
//!   over the virtual desktop.
//!
//! A service runs in session 0, which has no user's desktop to see:
//! [`in_service_session`] tells, and the built-in desktop is then off.
//! DXGI desktop duplication (damage from the GPU, no polling) is left for later.

use std::time::{Duration, Instant};

use windows_sys::Win32::Graphics::Gdi::{
    BitBlt, CreateCompatibleDC, CreateDIBSection, DeleteDC, DeleteObject, GetDC, ReleaseDC, SelectObject, BITMAPINFO,
    BITMAPINFOHEADER, BI_RGB, CAPTUREBLT, DIB_RGB_COLORS, HBITMAP, HDC, HGDIOBJ, SRCCOPY,
};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::Threading::GetCurrentProcessId;
use windows_sys::Win32::UI::HiDpi::{SetProcessDpiAwarenessContext, DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2};
use windows_sys::Win32::UI::Input::KeyboardAndMouse::{
    MapVirtualKeyW, SendInput, INPUT, INPUT_0, INPUT_KEYBOARD, INPUT_MOUSE, KEYBDINPUT, KEYEVENTF_EXTENDEDKEY,
    KEYEVENTF_KEYUP, KEYEVENTF_SCANCODE, KEYEVENTF_UNICODE, MAPVK_VSC_TO_VK_EX, MOUSEEVENTF_ABSOLUTE,
    MOUSEEVENTF_LEFTDOWN, MOUSEEVENTF_LEFTUP, MOUSEEVENTF_MIDDLEDOWN, MOUSEEVENTF_MIDDLEUP, MOUSEEVENTF_MOVE,
    MOUSEEVENTF_RIGHTDOWN, MOUSEEVENTF_RIGHTUP, MOUSEEVENTF_VIRTUALDESK, MOUSEEVENTF_WHEEL, MOUSEINPUT,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    GetSystemMetrics, SM_CMONITORS, SM_CXVIRTUALSCREEN, SM_CYVIRTUALSCREEN, SM_XVIRTUALSCREEN, SM_YVIRTUALSCREEN,
};

use crate::desktop::diff;
use crate::desktop::screen::{Button, Input, Pixels, Rect, Screen, ScreenError};

/// The shortest time between two captures (about 30 per second).
pub const FRAME: Duration = Duration::from_millis(33);

/// Whether this process runs in session 0 (a service's), which shows no
/// user's desktop.
pub fn in_service_session() -> bool {
    let mut session = u32::MAX;
    // SAFETY: plain call with a valid out pointer.
    let ok = unsafe { ProcessIdToSessionId(GetCurrentProcessId(), &mut session) } != 0;
    ok && session == 0
}

/// The virtual screen: origin and size.
fn virtual_screen() -> (i32, i32, u16, u16) {
    // SAFETY: GetSystemMetrics has no preconditions.
    let (x, y, w, h) = unsafe {
        (
            GetSystemMetrics(SM_XVIRTUALSCREEN),
            GetSystemMetrics(SM_YVIRTUALSCREEN),
            GetSystemMetrics(SM_CXVIRTUALSCREEN),
            GetSystemMetrics(SM_CYVIRTUALSCREEN),
        )
    };
    let c = |v: i32| u16::try_from(v.clamp(0, i32::from(u16::MAX))).unwrap_or(u16::MAX);
    (x, y, c(w), c(h))
}

/// The DIB section one capture lands in, selected into its memory DC.
struct Canvas {
    dc: HDC,
    bitmap: HBITMAP,
    old: HGDIOBJ,
    bits: *mut u8,
    width: u16,
    height: u16,
}

impl Canvas {
    fn new(screen: HDC, width: u16, height: u16) -> Result<Self, ScreenError> {
        let info = BITMAPINFO {
            bmiHeader: BITMAPINFOHEADER {
                biSize: std::mem::size_of::<BITMAPINFOHEADER>() as u32,
                biWidth: i32::from(width),
                // Negative: rows top down.
                biHeight: -i32::from(height),
                biPlanes: 1,
                biBitCount: 32,
                biCompression: BI_RGB,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut bits = std::ptr::null_mut();
        // SAFETY: `screen` is a valid DC; the out pointers are valid; every
        // handle made here is released in `Drop` or on the error paths.
        unsafe {
            let dc = CreateCompatibleDC(screen);
            if dc.is_null() {
                return Err(ScreenError::Io("CreateCompatibleDC failed".into()));
            }
            let bitmap = CreateDIBSection(screen, &info, DIB_RGB_COLORS, &mut bits, std::ptr::null_mut(), 0);
            if bitmap.is_null() || bits.is_null() {
                DeleteDC(dc);
                return Err(ScreenError::Io(format!("CreateDIBSection {width}x{height} failed")));
            }
            let old = SelectObject(dc, bitmap);
            Ok(Self { dc, bitmap, old, bits: bits.cast(), width, height })
        }
    }

    fn stride(&self) -> usize {
        usize::from(self.width) * 4
    }

    fn pixels(&self) -> &[u8] {
        // SAFETY: the DIB section holds `height` rows of `stride` bytes and
        // lives as long as `self`; GDI writes it only inside `capture`.
        unsafe { std::slice::from_raw_parts(self.bits, self.stride() * usize::from(self.height)) }
    }

    /// Copies the screen from (x, y) in; false when GDI refused (the secure
    /// desktop of UAC or the lock screen is showing).
    fn capture(&mut self, screen: HDC, x: i32, y: i32) -> bool {
        // SAFETY: both DCs are valid; the DIB is selected into `self.dc`.
        unsafe {
            BitBlt(self.dc, 0, 0, i32::from(self.width), i32::from(self.height), screen, x, y, SRCCOPY | CAPTUREBLT)
                != 0
        }
    }
}

impl Drop for Canvas {
    fn drop(&mut self) {
        // SAFETY: the handles were made in `new` and are released once.
        unsafe {
            SelectObject(self.dc, self.old);
            DeleteObject(self.bitmap);
            DeleteDC(self.dc);
        }
    }
}

/// The Windows desktop as the desktop server's [`Screen`].
pub struct GdiScreen {
    screen: HDC,
    canvas: Canvas,
    /// The last capture the viewer was sent (rows of `width * 4` bytes).
    sent: Vec<u8>,
    origin: (i32, i32),
    next_capture: Instant,
    refused: bool,
    clip: super::win_clip::WinClipboard,
}

// SAFETY: the DCs and the DIB are used by one thread at a time (the
// desktop's screen thread owns the `GdiScreen`); GDI objects are not bound
// to the thread that made them.
unsafe impl Send for GdiScreen {}

impl std::fmt::Debug for GdiScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdiScreen").field("origin", &self.origin).field("size", &self.size()).finish()
    }
}

impl GdiScreen {
    /// Opens the desktop of this session.
    pub fn open() -> Result<Self, ScreenError> {
        if in_service_session() {
            return Err(ScreenError::NoDisplay(
                "this process runs in session 0 (a service), which shows no user's desktop".into(),
            ));
        }
        // SAFETY: plain calls; a failure (already set by the manifest) is harmless.
        unsafe {
            SetProcessDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2);
        }
        let (x, y, w, h) = virtual_screen();
        if w == 0 || h == 0 {
            return Err(ScreenError::NoDisplay("the desktop has no size".into()));
        }
        // SAFETY: GetDC(NULL) is the screen's DC; released in `Drop`.
        let screen = unsafe { GetDC(std::ptr::null_mut()) };
        if screen.is_null() {
            return Err(ScreenError::NoDisplay("GetDC of the screen failed".into()));
        }
        let canvas = match Canvas::new(screen, w, h) {
            Ok(c) => c,
            Err(e) => {
                // SAFETY: the DC was got above.
                unsafe { ReleaseDC(std::ptr::null_mut(), screen) };
                return Err(e);
            }
        };
        // SAFETY: plain call.
        let monitors = unsafe { GetSystemMetrics(SM_CMONITORS) };
        tracing::info!("built-in desktop: {w}x{h} at ({x}, {y}), {monitors} monitor(s) as one desktop");
        let clip = match super::win_clip::WinClipboard::new() {
            Ok(c) => c,
            Err(e) => {
                // SAFETY: the DC was got above.
                unsafe { ReleaseDC(std::ptr::null_mut(), screen) };
                return Err(e);
            }
        };
        Ok(Self {
            screen,
            canvas,
            sent: Vec::new(),
            origin: (x, y),
            next_capture: Instant::now(),
            refused: false,
            clip,
        })
    }

    /// Captures the screen, following a changed size; false when GDI refused.
    fn capture(&mut self) -> Result<bool, ScreenError> {
        let (x, y, w, h) = virtual_screen();
        if (w, h) != (self.canvas.width, self.canvas.height) && w > 0 && h > 0 {
            self.canvas = Canvas::new(self.screen, w, h)?;
            self.sent.clear();
        }
        self.origin = (x, y);
        self.next_capture = Instant::now() + FRAME;
        let ok = self.canvas.capture(self.screen, x, y);
        if ok == self.refused {
            self.refused = !ok;
            if self.refused {
                tracing::info!("built-in desktop: the screen cannot be read now (a secure desktop shows)");
            }
        }
        Ok(ok)
    }

    /// The pixels of `r` from the last capture sent.
    fn part(&self, r: Rect) -> Pixels {
        let stride = self.canvas.stride();
        let mut data = Vec::with_capacity(r.area() as usize * 4);
        for row in rows(r, stride) {
            data.extend_from_slice(&self.sent[row]);
        }
        Pixels { rect: r, stride: usize::from(r.width) * 4, data }
    }

    fn whole(&self) -> Pixels {
        self.part(Rect { x: 0, y: 0, width: self.canvas.width, height: self.canvas.height })
    }

    /// Absolute pointer coordinates (0..=65535 over the virtual desktop).
    fn absolute(&self, x: u16, y: u16) -> (i32, i32) {
        let scale = |v: u16, size: u16| (i32::from(v) * 65535) / i32::from(size.saturating_sub(1).max(1));
        (scale(x, self.canvas.width), scale(y, self.canvas.height))
    }
}

impl Drop for GdiScreen {
    fn drop(&mut self) {
        // SAFETY: the screen DC was got in `open`.
        unsafe { ReleaseDC(std::ptr::null_mut(), self.screen) };
    }
}

impl Screen for GdiScreen {
    fn size(&self) -> (u16, u16) {
        (self.canvas.width, self.canvas.height)
    }

    fn grab_all(&mut self) -> Result<Pixels, ScreenError> {
        self.capture()?;
        self.sent = self.canvas.pixels().to_vec();
        Ok(self.whole())
    }

    fn changes(&mut self, wait: Duration) -> Result<Vec<Pixels>, ScreenError> {
        let deadline = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= self.next_capture {
                if !self.capture()? {
                    return Ok(Vec::new());
                }
                if self.sent.is_empty() {
                    // The size changed: the whole screen.
                    self.sent = self.canvas.pixels().to_vec();
                    return Ok(vec![self.whole()]);
                }
                let (w, h) = self.size();
                let rects = diff::changed(&self.sent, self.canvas.pixels(), w, h, self.canvas.stride());
                if !rects.is_empty() {
                    let (stride, now) = (self.canvas.stride(), self.canvas.pixels());
                    for row in rects.iter().flat_map(|r| rows(*r, stride)) {
                        self.sent[row.clone()].copy_from_slice(&now[row]);
                    }
                    return Ok(rects.into_iter().map(|r| self.part(r)).collect());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            std::thread::sleep(deadline.min(self.next_capture).saturating_duration_since(now));
        }
    }

    fn clipboard_text(&mut self) -> Result<Option<String>, ScreenError> {
        self.clip.text()
    }

    fn set_clipboard_text(&mut self, text: &str) -> Result<(), ScreenError> {
        self.clip.set(text)
    }

    fn clipboard_changed(&mut self) -> Result<bool, ScreenError> {
        Ok(self.clip.changed())
    }

    fn input(&mut self, event: Input) -> Result<(), ScreenError> {
        let input = match event {
            Input::Key { code, extended, down } => {
                let scan = u32::from(code) | if extended { 0xe000 } else { 0 };
                // SAFETY: plain call.
                let vk = unsafe { MapVirtualKeyW(scan, MAPVK_VSC_TO_VK_EX) };
                let mut flags = if down { 0 } else { KEYEVENTF_KEYUP };
                if extended {
                    flags |= KEYEVENTF_EXTENDEDKEY;
                }
                if vk == 0 {
                    flags |= KEYEVENTF_SCANCODE;
                }
                key(KEYBDINPUT { wVk: vk as u16, wScan: u16::from(code), dwFlags: flags, time: 0, dwExtraInfo: 0 })
            }
            Input::Unicode { ch, down } => key(KEYBDINPUT {
                wVk: 0,
                wScan: ch,
                dwFlags: KEYEVENTF_UNICODE | if down { 0 } else { KEYEVENTF_KEYUP },
                time: 0,
                dwExtraInfo: 0,
            }),
            Input::Move { x, y } => self.mouse(x, y, 0, 0),
            Input::Button { button, down, x, y } => {
                let flag = match (button, down) {
                    (Button::Left, true) => MOUSEEVENTF_LEFTDOWN,
                    (Button::Left, false) => MOUSEEVENTF_LEFTUP,
                    (Button::Middle, true) => MOUSEEVENTF_MIDDLEDOWN,
                    (Button::Middle, false) => MOUSEEVENTF_MIDDLEUP,
                    (Button::Right, true) => MOUSEEVENTF_RIGHTDOWN,
                    (Button::Right, false) => MOUSEEVENTF_RIGHTUP,
                };
                self.mouse(x, y, flag, 0)
            }
            Input::Wheel { delta } => INPUT {
                r#type: INPUT_MOUSE,
                Anonymous: INPUT_0 {
                    mi: MOUSEINPUT {
                        mouseData: i32::from(delta) as u32,
                        dwFlags: MOUSEEVENTF_WHEEL,
                        ..Default::default()
                    },
                },
            },
        };
        // SAFETY: one valid INPUT of the size given.
        let sent = unsafe { SendInput(1, &input, std::mem::size_of::<INPUT>() as i32) };
        if sent == 1 {
            Ok(())
        } else {
            Err(ScreenError::Io(format!("SendInput refused {event:?} (another desktop has the input)")))
        }
    }
}

impl GdiScreen {
    fn mouse(&self, x: u16, y: u16, flag: u32, data: u32) -> INPUT {
        let (dx, dy) = self.absolute(x, y);
        INPUT {
            r#type: INPUT_MOUSE,
            Anonymous: INPUT_0 {
                mi: MOUSEINPUT {
                    dx,
                    dy,
                    mouseData: data,
                    dwFlags: MOUSEEVENTF_MOVE | MOUSEEVENTF_ABSOLUTE | MOUSEEVENTF_VIRTUALDESK | flag,
                    time: 0,
                    dwExtraInfo: 0,
                },
            },
        }
    }
}

/// The byte ranges of the rows of `r` in a frame with rows `stride` bytes apart.
fn rows(r: Rect, stride: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let len = usize::from(r.width) * 4;
    (usize::from(r.y)..usize::from(r.y) + usize::from(r.height)).map(move |y| {
        let start = y * stride + usize::from(r.x) * 4;
        start..start + len
    })
}

fn key(ki: KEYBDINPUT) -> INPUT {
    INPUT { r#type: INPUT_KEYBOARD, Anonymous: INPUT_0 { ki } }
}
