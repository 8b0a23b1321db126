//! The office PC's screen on Linux: an X11 display, spoken to with x11rb's
//! pure-Rust connection (no Xlib, no `unsafe`).
//!
//! - Capture: `GetImage` (Z-pixmap) of the root window; the display must keep
//!   its pixels as 32 bits, least significant byte first, with the usual
//!   masks, which is memory order B, G, R, X. Big areas are fetched in
//!   horizontal bands (X replies have no size limit of their own, but a band
//!   bounds the memory of one reply); all requests of one capture are sent
//!   before the first reply is read, so a capture costs one round trip.
//! - Changes: a DAMAGE object on the root (level non-empty): when it
//!   reports, the damage is moved into an XFIXES region whose rectangles are
//!   fetched, merged ([`merge`]) and captured. Size changes (RandR's
//!   ScreenChangeNotify, or the root's ConfigureNotify without RandR) make
//!   the next [`Screen::changes`] return the whole screen.
//! - Input: XTEST fake events. Scan codes become X keycodes as on servers
//!   with the evdev key codes (Xorg's default rules, Xvfb, Xwayland): keycode
//!   = Linux input code + 8. Characters without a key are looked up in the
//!   keyboard mapping.
//!
//! x11rb's connection has no timed wait for events, so [`Screen::changes`]
//! polls with short naps (1 to 4 ms) until its deadline.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::xtest::{self, ConnectionExt as _};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::x11_clip::{Clipboard, Handled};
use crate::desktop::screen::{Button, Input, Pixels, Rect, Screen, ScreenError};

/// How long the app that holds the clipboard has to hand over its text.
const CLIPBOARD_WAIT: Duration = Duration::from_secs(2);

/// The most bytes one `GetImage` fetches: 32 MiB, a 3840x2160 screen in one.
const BAND_BYTES: usize = 32 << 20;
/// The first and the longest nap while waiting for damage.
const NAP_MIN: Duration = Duration::from_millis(1);
const NAP_MAX: Duration = Duration::from_millis(4);

/// Keysyms used for typing characters.
const XK_SHIFT_L: u32 = 0xffe1;
const XK_SHIFT_R: u32 = 0xffe2;

/// An X11 display as the desktop server's [`Screen`].
pub struct X11Screen {
    conn: RustConnection,
    root: xproto::Window,
    width: u16,
    height: u16,
    /// Bytes a row of an image is padded to (from the pixmap format).
    row_pad: usize,
    damage: damage::Damage,
    /// Where the damage is moved to be read.
    region: xfixes::Region,
    /// A DamageNotify arrived since the damage was last read.
    damaged: bool,
    /// An event hinted that the size may have changed.
    size_hint: bool,
    /// The keyboard mapping, loaded on the first typed character and
    /// forgotten when the server announces a new one.
    keymap: Option<KeyMap>,
    /// The most bytes one `GetImage` fetches ([`BAND_BYTES`]; smaller in tests).
    band_bytes: usize,
    /// The `CLIPBOARD` selection.
    clip: Clipboard,
}

impl std::fmt::Debug for X11Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Screen").field("root", &self.root).field("size", &(self.width, self.height)).finish()
    }
}

/// Maps an x11rb error to [`ScreenError::Io`], naming what failed.
pub(super) fn io<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ScreenError {
    move |e| ScreenError::Io(format!("{what}: {e}"))
}

impl X11Screen {
    /// Connects to `display` (`None`: `$DISPLAY`) and prepares capture
    /// (DAMAGE over XFIXES), input (XTEST) and size tracking (RandR when the
    /// server has it, else the root window's configure events).
    pub fn open(display: Option<&str>) -> Result<X11Screen, ScreenError> {
        let name = display
            .map(str::to_owned)
            .or_else(|| std::env::var("DISPLAY").ok())
            .unwrap_or_else(|| "(DISPLAY is not set)".to_owned());
        let (conn, screen_num) = x11rb::connect(display)
            .map_err(|e| ScreenError::NoDisplay(format!("cannot connect to X display {name}: {e}")))?;
        let setup = conn.setup();
        let screen = setup
            .roots
            .get(screen_num)
            .ok_or_else(|| ScreenError::NoDisplay(format!("X display {name} has no screen {screen_num}")))?;
        let (root, width, height) = (screen.root, screen.width_in_pixels, screen.height_in_pixels);
        let row_pad = check_format(setup, screen)?;

        for (ext, label) in [
            (xfixes::X11_EXTENSION_NAME, "XFIXES"),
            (damage::X11_EXTENSION_NAME, "DAMAGE"),
            (xtest::X11_EXTENSION_NAME, "XTEST"),
        ] {
            if conn.extension_information(ext).map_err(io("querying X extensions"))?.is_none() {
                return Err(ScreenError::Missing(label));
            }
        }
        // DAMAGE works only after XFIXES's version is negotiated.
        let xf = conn.xfixes_query_version(5, 0).map_err(io("XFIXES"))?.reply().map_err(io("XFIXES"))?;
        let dm = conn.damage_query_version(1, 1).map_err(io("DAMAGE"))?.reply().map_err(io("DAMAGE"))?;
        let xt = conn.xtest_get_version(2, 2).map_err(io("XTEST"))?.reply().map_err(io("XTEST"))?;
        tracing::debug!(
            display = %name,
            width,
            height,
            xfixes = %format!("{}.{}", xf.major_version, xf.minor_version),
            damage = %format!("{}.{}", dm.major_version, dm.minor_version),
            xtest = %format!("{}.{}", xt.major_version, xt.minor_version),
            "X display opened"
        );

        // Size changes: the root's ConfigureNotify always, RandR's event too
        // when the server has RandR.
        conn.change_window_attributes(
            root,
            &xproto::ChangeWindowAttributesAux::new().event_mask(xproto::EventMask::STRUCTURE_NOTIFY),
        )
        .map_err(io("watching the root window"))?
        .check()
        .map_err(io("watching the root window"))?;
        if randr_usable(&conn, root) {
            tracing::debug!("size changes through RandR");
        } else {
            tracing::debug!("no RandR: size changes from the root window's geometry");
        }

        let damage = conn.generate_id().map_err(io("allocating an X id"))?;
        conn.damage_create(damage, root, damage::ReportLevel::NON_EMPTY)
            .map_err(io("creating the damage object"))?
            .check()
            .map_err(io("creating the damage object"))?;
        let region = conn.generate_id().map_err(io("allocating an X id"))?;
        conn.xfixes_create_region(region, &[])
            .map_err(io("creating a region"))?
            .check()
            .map_err(io("creating a region"))?;

        let clip = Clipboard::new(&conn, root)?;
        Ok(X11Screen {
            clip,
            conn,
            root,
            width,
            height,
            row_pad,
            damage,
            region,
            damaged: false,
            size_hint: false,
            keymap: None,
            band_bytes: BAND_BYTES,
        })
    }

    /// Reads the events that arrived, noting damage, size and keyboard
    /// mapping changes.
    fn pump(&mut self) -> Result<(), ScreenError> {
        while let Some(ev) = self.conn.poll_for_event().map_err(io("reading X events"))? {
            if let Some(text) = self.event(ev)? {
                tracing::debug!(bytes = text.map_or(0, |t| t.len()), "a late answer from the clipboard's owner");
            }
        }
        Ok(())
    }

    /// Handles one event; `Some` is the answer of the clipboard's owner to
    /// [`Clipboard::request`].
    fn event(&mut self, ev: Event) -> Result<Option<Option<String>>, ScreenError> {
        match self.clip.handle(&self.conn, ev)? {
            Handled::Yes => {}
            Handled::Converted(text) => return Ok(Some(text)),
            Handled::No(ev) => match ev {
                Event::DamageNotify(e) if e.damage == self.damage => self.damaged = true,
                Event::RandrScreenChangeNotify(_) => self.size_hint = true,
                Event::ConfigureNotify(e) if e.window == self.root => self.size_hint = true,
                Event::MappingNotify(e) if e.request == xproto::Mapping::KEYBOARD => self.keymap = None,
                Event::Error(e) => tracing::debug!(error = ?e, "X error"),
                _ => {}
            },
        }
        Ok(None)
    }

    /// The root window's size now, asked of the server.
    fn root_size(&self) -> Result<(u16, u16), ScreenError> {
        let g = self
            .conn
            .get_geometry(self.root)
            .map_err(io("reading the screen size"))?
            .reply()
            .map_err(io("reading the screen size"))?;
        Ok((g.width, g.height))
    }

    /// Asks the server for the size; true (and `size()` updated) when it changed.
    fn size_changed(&mut self) -> Result<bool, ScreenError> {
        let (w, h) = self.root_size()?;
        if (w, h) == (self.width, self.height) {
            return Ok(false);
        }
        tracing::debug!(from = ?(self.width, self.height), to = ?(w, h), "screen size changed");
        self.width = w;
        self.height = h;
        Ok(true)
    }

    fn full(&self) -> Rect {
        Rect { x: 0, y: 0, width: self.width, height: self.height }
    }

    /// The whole screen, after forgetting the damage so far (the capture
    /// shows it).
    fn grab_full(&mut self) -> Result<Pixels, ScreenError> {
        self.pump()?;
        self.damaged = false;
        self.conn.damage_subtract(self.damage, x11rb::NONE, x11rb::NONE).map_err(io("resetting the damage"))?;
        let mut got = self.fetch(&[self.full()])?;
        got.pop().ok_or_else(|| ScreenError::Io("no image of the screen".to_owned()))
    }

    /// Bytes per row of an image `width` pixels wide.
    fn stride(&self, width: u16) -> usize {
        (usize::from(width) * 4).div_ceil(self.row_pad) * self.row_pad
    }

    /// Rows per `GetImage` for rectangles `width` pixels wide.
    fn band_rows(&self, width: u16) -> u16 {
        let rows = self.band_bytes / self.stride(width).max(1);
        u16::try_from(rows).unwrap_or(u16::MAX).max(1)
    }

    /// Captures `rects` (inside the screen, not empty), each in bands of at
    /// most `band_bytes`; all requests go out before the first reply is read.
    fn fetch(&self, rects: &[Rect]) -> Result<Vec<Pixels>, ScreenError> {
        let mut cookies = Vec::new();
        for r in rects {
            let rows = self.band_rows(r.width);
            let mut y = 0;
            while y < r.height {
                let h = rows.min(r.height - y);
                let cookie = self
                    .conn
                    .get_image(xproto::ImageFormat::Z_PIXMAP, self.root, coord(r.x), coord(r.y + y), r.width, h, !0)
                    .map_err(io("capturing the screen"))?;
                cookies.push((h, cookie));
                y += h;
            }
        }
        let mut cookies = cookies.into_iter();
        let mut out = Vec::with_capacity(rects.len());
        for r in rects {
            let stride = self.stride(r.width);
            let mut data: Vec<u8> = Vec::new();
            let mut y = 0;
            while y < r.height {
                let Some((h, cookie)) = cookies.next() else {
                    return Err(ScreenError::Io("capturing the screen: a band went missing".to_owned()));
                };
                let reply = cookie.reply().map_err(io("capturing the screen"))?;
                let want = stride * usize::from(h);
                if reply.data.len() < want {
                    return Err(ScreenError::Io(format!(
                        "the X server sent {} bytes for {}x{h} pixels, expected {want}",
                        reply.data.len(),
                        r.width
                    )));
                }
                if data.is_empty() && h == r.height {
                    data = reply.data;
                    data.truncate(want);
                } else {
                    if data.is_empty() {
                        data.reserve_exact(stride * usize::from(r.height));
                    }
                    data.extend_from_slice(&reply.data[..want]);
                }
                y += h;
            }
            out.push(Pixels { rect: *r, stride, data });
        }
        Ok(out)
    }

    /// The size changed: the whole screen at its new size.
    fn after_resize(&mut self) -> Result<Vec<Pixels>, ScreenError> {
        Ok(vec![self.grab_full()?])
    }

    /// One fake event through XTEST (not flushed).
    fn fake(&self, kind: u8, detail: u8, x: u16, y: u16) -> Result<(), ScreenError> {
        self.conn
            .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, self.root, coord(x), coord(y), 0)
            .map_err(io("injecting input"))?;
        Ok(())
    }

    /// The key typing `keysym` and the shift key to hold with it, if any.
    fn lookup(&mut self, keysym: u32) -> Result<Option<(u8, Option<u8>)>, ScreenError> {
        self.pump()?; // a MappingNotify forgets the cached mapping
        if self.keymap.is_none() {
            let setup = self.conn.setup();
            let (min, max) = (setup.min_keycode, setup.max_keycode);
            let reply = self
                .conn
                .get_keyboard_mapping(min, max.saturating_sub(min).saturating_add(1))
                .map_err(io("reading the keyboard mapping"))?
                .reply()
                .map_err(io("reading the keyboard mapping"))?;
            self.keymap = Some(KeyMap {
                min_keycode: min,
                per_keycode: usize::from(reply.keysyms_per_keycode),
                keysyms: reply.keysyms,
            });
        }
        let Some(map) = &self.keymap else { return Ok(None) };
        let Some((code, shifted)) = map.find(keysym) else { return Ok(None) };
        let shift = if shifted {
            // The evdev keycode of the left shift key when the mapping has none.
            Some(map.find_plain(XK_SHIFT_L).or_else(|| map.find_plain(XK_SHIFT_R)).unwrap_or(50))
        } else {
            None
        };
        Ok(Some((code, shift)))
    }

    /// Types (presses or releases) the key of character `ch`.
    fn unicode(&mut self, ch: u16, down: bool) -> Result<(), ScreenError> {
        let Some(sym) = keysym_for_char(ch) else {
            tracing::debug!(ch, "no keysym for this character");
            return Ok(());
        };
        let Some((code, shift)) = self.lookup(sym)? else {
            tracing::debug!(ch, keysym = sym, "character not on the keyboard mapping");
            return Ok(());
        };
        if down {
            if let Some(s) = shift {
                self.fake(xproto::KEY_PRESS_EVENT, s, 0, 0)?;
            }
            self.fake(xproto::KEY_PRESS_EVENT, code, 0, 0)?;
        } else {
            self.fake(xproto::KEY_RELEASE_EVENT, code, 0, 0)?;
            if let Some(s) = shift {
                self.fake(xproto::KEY_RELEASE_EVENT, s, 0, 0)?;
            }
        }
        Ok(())
    }
}

impl Drop for X11Screen {
    /// A round trip before the connection closes: the X server drops fake
    /// input it has not yet processed when its client goes, and the last
    /// events of a session are the releases of what the viewer left held.
    fn drop(&mut self) {
        if let Ok(cookie) = self.conn.get_input_focus() {
            let _ = cookie.reply();
        }
    }
}

impl Screen for X11Screen {
    fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    fn grab_all(&mut self) -> Result<Pixels, ScreenError> {
        match self.grab_full() {
            Ok(p) => Ok(p),
            // The screen may have shrunk under the request: retry at the new size.
            Err(e) if self.size_changed()? => {
                tracing::debug!(error = %e, "capture failed during a size change; retrying");
                self.grab_full()
            }
            Err(e) => Err(e),
        }
    }

    fn changes(&mut self, wait: Duration) -> Result<Vec<Pixels>, ScreenError> {
        let start = Instant::now();
        let mut nap = NAP_MIN;
        loop {
            self.pump()?;
            if self.size_hint {
                self.size_hint = false;
                if self.size_changed()? {
                    return self.after_resize();
                }
            }
            if self.damaged {
                break;
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(NAP_MAX);
        }
        self.damaged = false;
        self.conn.damage_subtract(self.damage, x11rb::NONE, self.region).map_err(io("reading the damage"))?;
        let region = self
            .conn
            .xfixes_fetch_region(self.region)
            .map_err(io("reading the damage"))?
            .reply()
            .map_err(io("reading the damage"))?;
        let rects = merge(&region.rectangles, self.width, self.height);
        tracing::debug!(damaged = region.rectangles.len(), sent = rects.len(), "screen changed");
        match self.fetch(&rects) {
            Ok(p) => Ok(p),
            Err(e) if self.size_changed()? => {
                tracing::debug!(error = %e, "capture failed during a size change");
                self.after_resize()
            }
            Err(e) => Err(e),
        }
    }

    fn clipboard_text(&mut self) -> Result<Option<String>, ScreenError> {
        if let Some(mine) = self.clip.owned() {
            return Ok(Some(mine.to_owned()));
        }
        if !self.clip.request(&self.conn)? {
            return Ok(None);
        }
        // The other events that come meanwhile are handled as usual (damage,
        // size, and requests for a selection this connection holds).
        let deadline = Instant::now() + CLIPBOARD_WAIT;
        loop {
            while let Some(ev) = self.conn.poll_for_event().map_err(io("reading X events"))? {
                if let Some(text) = self.event(ev)? {
                    return Ok(text);
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "the app holding the office PC's clipboard did not hand over its text in {} s",
                    CLIPBOARD_WAIT.as_secs()
                );
                return Ok(None);
            }
            std::thread::sleep(NAP_MAX);
        }
    }

    fn set_clipboard_text(&mut self, text: &str) -> Result<(), ScreenError> {
        self.clip.set(&self.conn, text)
    }

    fn clipboard_changed(&mut self) -> Result<bool, ScreenError> {
        self.pump()?;
        Ok(self.clip.take_changed())
    }

    fn input(&mut self, event: Input) -> Result<(), ScreenError> {
        use xproto::{
            BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
        };
        match event {
            Input::Key { code, extended, down } => {
                let Some(key) = x_keycode(code, extended) else {
                    tracing::debug!(code, extended, "no X key for this scan code");
                    return Ok(());
                };
                self.fake(if down { KEY_PRESS_EVENT } else { KEY_RELEASE_EVENT }, key, 0, 0)?;
            }
            Input::Unicode { ch, down } => self.unicode(ch, down)?,
            Input::Move { x, y } => self.fake(MOTION_NOTIFY_EVENT, 0, x, y)?,
            Input::Button { button, down, x, y } => {
                let detail = match button {
                    Button::Left => 1,
                    Button::Middle => 2,
                    Button::Right => 3,
                };
                self.fake(MOTION_NOTIFY_EVENT, 0, x, y)?;
                self.fake(if down { BUTTON_PRESS_EVENT } else { BUTTON_RELEASE_EVENT }, detail, 0, 0)?;
            }
            Input::Wheel { delta } => {
                if delta == 0 {
                    return Ok(());
                }
                let detail = if delta > 0 { 4 } else { 5 };
                for _ in 0..(delta.unsigned_abs() / 120).max(1) {
                    self.fake(BUTTON_PRESS_EVENT, detail, 0, 0)?;
                    self.fake(BUTTON_RELEASE_EVENT, detail, 0, 0)?;
                }
            }
        }
        self.conn.flush().map_err(io("injecting input"))
    }
}

/// Checks that the screen's pixels come as B, G, R, X bytes; returns the
/// row padding in bytes.
fn check_format(setup: &xproto::Setup, screen: &xproto::Screen) -> Result<usize, ScreenError> {
    let depth = screen.root_depth;
    if depth != 24 && depth != 32 {
        return Err(ScreenError::Io(format!("the screen's depth is {depth} bits; only 24 and 32 are supported")));
    }
    let Some(format) = setup.pixmap_formats.iter().find(|f| f.depth == depth) else {
        return Err(ScreenError::Io(format!("the X server lists no pixel format for depth {depth}")));
    };
    if format.bits_per_pixel != 32 {
        return Err(ScreenError::Io(format!(
            "depth {depth} is stored with {} bits per pixel; only 32 is supported",
            format.bits_per_pixel
        )));
    }
    if setup.image_byte_order != xproto::ImageOrder::LSB_FIRST {
        return Err(ScreenError::Io(format!(
            "depth {depth}: the X server sends pixels most significant byte first; only B, G, R, X is supported"
        )));
    }
    let visual = screen.allowed_depths.iter().flat_map(|d| &d.visuals).find(|v| v.visual_id == screen.root_visual);
    if let Some(v) = visual {
        if (v.red_mask, v.green_mask, v.blue_mask) != (0xff_0000, 0xff00, 0xff) {
            return Err(ScreenError::Io(format!(
                "depth {depth}: colour masks {:#x}/{:#x}/{:#x}; only B, G, R, X is supported",
                v.red_mask, v.green_mask, v.blue_mask
            )));
        }
    }
    Ok((usize::from(format.scanline_pad) / 8).max(4))
}

/// True when the server has RandR and now reports size changes through it.
fn randr_usable(conn: &RustConnection, root: xproto::Window) -> bool {
    match conn.extension_information(randr::X11_EXTENSION_NAME) {
        Ok(Some(_)) => {}
        _ => return false,
    }
    let version = conn.randr_query_version(1, 2).map_err(io("RandR")).and_then(|c| c.reply().map_err(io("RandR")));
    if let Err(e) = version {
        tracing::debug!(error = %e, "RandR unusable");
        return false;
    }
    let select = conn
        .randr_select_input(root, randr::NotifyMask::SCREEN_CHANGE)
        .map_err(io("RandR"))
        .and_then(|c| c.check().map_err(io("RandR")));
    if let Err(e) = select {
        tracing::debug!(error = %e, "RandR unusable");
        return false;
    }
    true
}

/// A screen coordinate as X's signed 16 bits.
fn coord(v: u16) -> i16 {
    i16::try_from(v).unwrap_or(i16::MAX)
}

/// Clips a damaged rectangle to a `width` x `height` screen; `None` when
/// nothing is left.
fn clip(r: &xproto::Rectangle, width: u16, height: u16) -> Option<Rect> {
    let x0 = i32::from(r.x).max(0);
    let y0 = i32::from(r.y).max(0);
    let x1 = (i32::from(r.x) + i32::from(r.width)).min(i32::from(width));
    let y1 = (i32::from(r.y) + i32::from(r.height)).min(i32::from(height));
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    // All four lie in 0..=u16::MAX now.
    let c = |v: i32| u16::try_from(v).unwrap_or(u16::MAX);
    Some(Rect { x: c(x0), y: c(y0), width: c(x1 - x0), height: c(y1 - y0) })
}

/// The damaged rectangles to send: clipped to the screen, then merged
/// ([`crate::desktop::screen::merge`]).
fn merge(rects: &[xproto::Rectangle], width: u16, height: u16) -> Vec<Rect> {
    crate::desktop::screen::merge(rects.iter().filter_map(|r| clip(r, width, height)).collect())
}

/// The X keycode of a PC/AT set-1 scan code on a server with evdev keycodes
/// (Linux input code + 8); `None` for keys without one.
fn x_keycode(code: u8, extended: bool) -> Option<u8> {
    let evdev = if extended {
        match code {
            0x1c => 96,  // keypad Enter
            0x1d => 97,  // right Ctrl
            0x20 => 113, // mute
            0x2e => 114, // volume down
            0x30 => 115, // volume up
            0x35 => 98,  // keypad /
            0x37 => 99,  // Print Screen
            0x38 => 100, // right Alt (AltGr)
            0x47 => 102, // Home
            0x48 => 103, // Up
            0x49 => 104, // Page Up
            0x4b => 105, // Left
            0x4d => 106, // Right
            0x4f => 107, // End
            0x50 => 108, // Down
            0x51 => 109, // Page Down
            0x52 => 110, // Insert
            0x53 => 111, // Delete
            0x5b => 125, // left Windows
            0x5c => 126, // right Windows
            0x5d => 127, // Menu
            _ => return None,
        }
    } else {
        match code {
            // Esc .. F12 and the keypad: the Linux code is the scan code.
            0x01..=0x58 => code,
            _ => return None,
        }
    };
    Some(evdev + 8)
}

/// The keysym of UTF-16 unit `ch`: control characters with a key of their
/// own, Latin-1 as itself, the rest as Unicode keysyms; `None` for other
/// controls and lone surrogates.
fn keysym_for_char(ch: u16) -> Option<u32> {
    match ch {
        0x08 => Some(0xff08),        // BackSpace
        0x09 => Some(0xff09),        // Tab
        0x0a | 0x0d => Some(0xff0d), // Return
        0x1b => Some(0xff1b),        // Escape
        0x7f => Some(0xffff),        // Delete
        0x20..=0x7e | 0xa0..=0xff => Some(u32::from(ch)),
        0x00..=0x1f | 0x80..=0x9f | 0xd800..=0xdfff => None,
        _ => Some(0x0100_0000 | u32::from(ch)),
    }
}

/// The server's keyboard mapping: `per_keycode` keysyms for each keycode
/// from `min_keycode` on.
#[derive(Debug)]
struct KeyMap {
    min_keycode: u8,
    per_keycode: usize,
    keysyms: Vec<u32>,
}

impl KeyMap {
    /// The keycode whose column `col` is `keysym`.
    fn find_in(&self, keysym: u32, col: usize) -> Option<u8> {
        if col >= self.per_keycode {
            return None;
        }
        let i = self.keysyms.chunks(self.per_keycode).position(|syms| syms.get(col) == Some(&keysym))?;
        u8::try_from(usize::from(self.min_keycode) + i).ok()
    }

    /// The keycode typing `keysym` without shift.
    fn find_plain(&self, keysym: u32) -> Option<u8> {
        self.find_in(keysym, 0)
    }

    /// The keycode typing `keysym` and whether it needs shift.
    fn find(&self, keysym: u32) -> Option<(u8, bool)> {
        if let Some(k) = self.find_plain(keysym) {
            return Some((k, false));
        }
        if let Some(k) = self.find_in(keysym, 1) {
            return Some((k, true));
        }
        // X's rule: a key listing only a lower-case letter types its upper
        // case with shift.
        let upper_latin1 = matches!(keysym, 0x41..=0x5a | 0xc0..=0xd6 | 0xd8..=0xde);
        if upper_latin1 {
            let k = self.find_plain(keysym + 0x20)?;
            let i = (usize::from(k) - usize::from(self.min_keycode)) * self.per_keycode;
            if self.keysyms.get(i + 1).copied().unwrap_or(0) == 0 {
                return Some((k, true));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    /// A private X server; stopped on drop.
    struct Xvfb {
        child: Child,
        display: String,
    }

    impl Xvfb {
        /// Starts one of `size` (`WxH`) with `extra` arguments; `None` (and
        /// the reason printed) when Xvfb is not installed.
        fn start(size: &str, extra: &[&str]) -> Option<Xvfb> {
            let on_path = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join("Xvfb").is_file()))
                .unwrap_or(false);
            if !on_path {
                eprintln!("skipped: Xvfb is not on PATH");
                return None;
            }
            let mut child = Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0", &format!("{size}x24"), "-nolisten", "tcp"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb starts");
            // Xvfb writes its display number once it accepts clients.
            let mut line = String::new();
            let read = BufReader::new(child.stdout.take().expect("Xvfb's stdout")).read_line(&mut line);
            let n: u32 = match (read, line.trim().parse()) {
                (Ok(_), Ok(n)) => n,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("Xvfb did not report its display: {line:?}");
                }
            };
            Some(Xvfb { child, display: format!(":{n}") })
        }

        /// A second client of this display (the test's own eyes and hands).
        fn client(&self) -> (RustConnection, xproto::Window) {
            let (c, n) = x11rb::connect(Some(&self.display)).expect("connect to Xvfb");
            let root = c.setup().roots[n].root;
            (c, root)
        }
    }

    impl Drop for Xvfb {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Waits until the server has handled everything `c` sent.
    fn sync(c: &RustConnection) {
        c.get_input_focus().unwrap().reply().unwrap();
    }

    /// Polls `c`'s events until `want` accepts one or `within` passes.
    fn wait_event<T>(c: &RustConnection, within: Duration, mut want: impl FnMut(&Event) -> Option<T>) -> Option<T> {
        let start = Instant::now();
        while start.elapsed() < within {
            while let Some(ev) = c.poll_for_event().unwrap() {
                if let Some(t) = want(&ev) {
                    return Some(t);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// The keycode whose first keysym is `sym`, from `c`'s view.
    fn keycode_of(c: &RustConnection, sym: u32) -> u8 {
        let (min, max) = (c.setup().min_keycode, c.setup().max_keycode);
        let m = c.get_keyboard_mapping(min, max - min + 1).unwrap().reply().unwrap();
        let per = usize::from(m.keysyms_per_keycode);
        let i = m.keysyms.chunks(per).position(|s| s[0] == sym).expect("keysym on the keyboard");
        min + u8::try_from(i).unwrap()
    }

    /// A mapped override-redirect window of colour `pixel`, with `events`.
    fn window(c: &RustConnection, root: u32, r: Rect, pixel: u32, events: xproto::EventMask) -> u32 {
        let w = c.generate_id().unwrap();
        let aux = xproto::CreateWindowAux::new().background_pixel(pixel).override_redirect(1).event_mask(events);
        c.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            w,
            root,
            coord(r.x),
            coord(r.y),
            r.width,
            r.height,
            0,
            xproto::WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &aux,
        )
        .unwrap();
        c.map_window(w).unwrap();
        sync(c);
        w
    }

    fn contains(outer: &Rect, inner: &Rect) -> bool {
        outer.x <= inner.x
            && outer.y <= inner.y
            && u32::from(outer.x) + u32::from(outer.width) >= u32::from(inner.x) + u32::from(inner.width)
            && u32::from(outer.y) + u32::from(outer.height) >= u32::from(inner.y) + u32::from(inner.height)
    }

    /// The B, G, R bytes at screen point (x, y) of `p`.
    fn bgr_at(p: &Pixels, x: u16, y: u16) -> [u8; 3] {
        let i = usize::from(y - p.rect.y) * p.stride + usize::from(x - p.rect.x) * 4;
        [p.data[i], p.data[i + 1], p.data[i + 2]]
    }

    #[test]
    fn x11_screen_is_send() {
        fn send<T: Send>() {}
        send::<X11Screen>();
    }

    #[test]
    fn no_display_names_the_display() {
        // A display nobody runs: no socket, no lock file. (Not above 59535:
        // x11rb's TCP port, 6000 + the number, would overflow.)
        let n = (4200..4300)
            .find(|n| {
                !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free display number");
        let name = format!(":{n}");
        match X11Screen::open(Some(&name)) {
            Err(ScreenError::NoDisplay(m)) => assert!(m.contains(&name), "{m}"),
            other => panic!("expected NoDisplay, got {other:?}"),
        }
    }

    #[test]
    fn missing_extensions_are_named() {
        let Some(x) = Xvfb::start("320x240", &["-extension", "DAMAGE"]) else { return };
        match X11Screen::open(Some(&x.display)) {
            Err(ScreenError::Missing("DAMAGE")) => {}
            other => panic!("expected Missing(DAMAGE), got {other:?}"),
        }
        let Some(x) = Xvfb::start("320x240", &["-extension", "XTEST"]) else { return };
        match X11Screen::open(Some(&x.display)) {
            Err(ScreenError::Missing("XTEST")) => {}
            other => panic!("expected Missing(XTEST), got {other:?}"),
        }
        // RandR is optional.
        let Some(x) = Xvfb::start("320x240", &["-extension", "RANDR"]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        assert_eq!(s.grab_all().unwrap().data.len(), 320 * 240 * 4);
    }

    /// `xclip` ARGS on `display` (the other app of the clipboard tests).
    fn xclip(display: &str, args: &[&str]) -> Command {
        let mut c = Command::new("xclip");
        c.env("DISPLAY", display).args(["-selection", "clipboard"]).args(args);
        c
    }

    /// Polls `f` every 20 ms for up to 5 s.
    fn within<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_clipboard_goes_both_ways_with_another_app() {
        use std::io::Write;
        let Some(x) = Xvfb::start("320x240", &[]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        assert_eq!(s.clipboard_text().unwrap(), None, "nobody owns the clipboard yet");
        assert!(!s.clipboard_changed().unwrap());

        // Another app copies: the change is seen, and its text read.
        let mut app = xclip(&x.display, &["-i", "-quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xclip (scripts/setup.sh installs it)");
        app.stdin.take().unwrap().write_all("copied in an app: é and 日本".as_bytes()).unwrap();
        assert!(within(|| s.clipboard_changed().unwrap().then_some(())).is_some(), "the copy was not seen");
        assert_eq!(s.clipboard_text().unwrap().as_deref(), Some("copied in an app: é and 日本"));

        // The viewer's copy: the other app loses the clipboard and pastes it.
        s.set_clipboard_text("from the viewer\nline 2 ü").unwrap();
        let paste = std::thread::spawn({
            let d = x.display.clone();
            move || xclip(&d, &["-o"]).output().expect("xclip -o")
        });
        // The paste is answered while the screen pumps its events.
        while !paste.is_finished() {
            let _ = s.changes(Duration::from_millis(10)).unwrap();
        }
        let out = paste.join().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from the viewer\nline 2 ü");
        assert!(!s.clipboard_changed().unwrap(), "thinsvr's own copy is not a change");
        assert!(within(|| app.try_wait().unwrap()).is_some(), "the app that lost the clipboard did not end");
        assert_eq!(s.clipboard_text().unwrap().as_deref(), Some("from the viewer\nline 2 ü"));
    }

    #[test]
    fn opens_and_grabs_the_whole_screen() {
        let Some(x) = Xvfb::start("640x480", &[]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        assert_eq!(s.size(), (640, 480));
        let p = s.grab_all().unwrap();
        assert_eq!(p.rect, Rect { x: 0, y: 0, width: 640, height: 480 });
        assert_eq!(p.stride, 2560);
        assert_eq!(p.data.len(), 640 * 480 * 4);
        // In bands of 7 rows (69 requests, the last one of 4 rows): the same image.
        s.band_bytes = 7 * 2560 + 100;
        assert_eq!(s.band_rows(640), 7);
        let banded = s.grab_all().unwrap();
        assert_eq!(banded.stride, 2560);
        assert!(banded.data == p.data, "banded capture differs");
    }

    #[test]
    fn changes_return_the_changed_region_only() {
        let Some(x) = Xvfb::start("640x480", &[]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        s.grab_all().unwrap();
        let (c, root) = x.client();
        let red = Rect { x: 100, y: 50, width: 40, height: 30 };
        window(&c, root, red, 0xff_0000, xproto::EventMask::NO_EVENT);

        let start = Instant::now();
        let mut got: Vec<Pixels> = Vec::new();
        while !got.iter().any(|p| contains(&p.rect, &red)) && start.elapsed() < Duration::from_secs(2) {
            got.extend(s.changes(Duration::from_secs(2).saturating_sub(start.elapsed())).unwrap());
        }
        let p = got.iter().find(|p| contains(&p.rect, &red)).expect("a changed rectangle covers the red window");
        assert_eq!(p.data.len(), p.stride * usize::from(p.rect.height));
        for (x, y) in [(100, 50), (120, 65), (139, 79)] {
            assert_eq!(bgr_at(p, x, y), [0, 0, 255], "pixel ({x}, {y})");
        }
        let area: u32 = got.iter().map(|p| p.rect.area()).sum();
        assert!(area < 640 * 480 / 20, "sent {area} pixels for a 40x30 change: {:?}", got.iter().map(|p| p.rect));

        let none = s.changes(Duration::from_millis(200)).unwrap();
        assert!(none.is_empty(), "changes without drawing: {:?}", none.iter().map(|p| p.rect).collect::<Vec<_>>());
    }

    #[test]
    fn a_key_released_just_before_the_screen_closes_is_released() {
        let Some(x) = Xvfb::start("640x480", &[]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        let (c, _root) = x.client();
        // Shift (scan code 0x2A) is X keycode 50 on evdev servers.
        let shift_down = |c: &RustConnection| c.query_keymap().unwrap().reply().unwrap().keys[50 / 8] & (1 << 2) != 0;
        let wait = |want: bool| {
            let start = Instant::now();
            while shift_down(&c) != want && start.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(5));
            }
            shift_down(&c) == want
        };
        s.input(Input::Key { code: 0x2a, extended: false, down: true }).unwrap();
        assert!(wait(true), "Shift did not go down");
        // The session's last event, then the connection closes at once.
        s.input(Input::Key { code: 0x2a, extended: false, down: false }).unwrap();
        drop(s);
        assert!(wait(false), "the release sent just before closing was dropped: Shift stays down");
    }

    #[test]
    fn input_moves_the_pointer_and_types() {
        let Some(x) = Xvfb::start("640x480", &[]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        let (c, root) = x.client();

        // The pointer.
        s.input(Input::Move { x: 300, y: 200 }).unwrap();
        let start = Instant::now();
        let at = loop {
            let q = c.query_pointer(root).unwrap().reply().unwrap();
            if (q.root_x, q.root_y) == (300, 200) || start.elapsed() > Duration::from_secs(2) {
                break (q.root_x, q.root_y);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        assert_eq!(at, (300, 200));

        // A focused window that hears keys and buttons.
        let mask = xproto::EventMask::KEY_PRESS
            | xproto::EventMask::KEY_RELEASE
            | xproto::EventMask::BUTTON_PRESS
            | xproto::EventMask::BUTTON_RELEASE
            | xproto::EventMask::EXPOSURE;
        let w = window(&c, root, Rect { x: 0, y: 0, width: 640, height: 480 }, 0x00_8000, mask);
        assert!(
            wait_event(&c, Duration::from_secs(5), |e| matches!(e, Event::Expose(_)).then_some(())).is_some(),
            "the window was not shown"
        );
        c.set_input_focus(xproto::InputFocus::PARENT, w, x11rb::CURRENT_TIME).unwrap();
        sync(&c);

        // A scan code: 0x1E is the A key, X keycode 38 on evdev servers.
        assert_eq!(keycode_of(&c, 0x61), 38, "Xvfb's keycode of 'a'");
        s.input(Input::Key { code: 0x1e, extended: false, down: true }).unwrap();
        s.input(Input::Key { code: 0x1e, extended: false, down: false }).unwrap();
        let key = |want: u8| {
            wait_event(&c, Duration::from_secs(2), move |e| match e {
                Event::KeyPress(k) if k.detail == want => Some(k.state),
                _ => None,
            })
        };
        assert!(key(38).is_some(), "no KeyPress of keycode 38");
        // An extended scan code: E0 4B is Left, evdev 105.
        assert_eq!(keycode_of(&c, 0xff51), 113, "Xvfb's keycode of Left");
        s.input(Input::Key { code: 0x4b, extended: true, down: true }).unwrap();
        s.input(Input::Key { code: 0x4b, extended: true, down: false }).unwrap();
        assert!(key(113).is_some(), "no KeyPress of Left");
        // An unknown scan code does nothing, and fails nothing.
        s.input(Input::Key { code: 0x7f, extended: true, down: true }).unwrap();

        // Characters: 'b' plain, 'B' with shift.
        let b = keycode_of(&c, 0x62);
        s.input(Input::Unicode { ch: u16::from(b'b'), down: true }).unwrap();
        s.input(Input::Unicode { ch: u16::from(b'b'), down: false }).unwrap();
        let state = key(b).expect("no KeyPress for 'b'");
        assert!(!state.contains(xproto::KeyButMask::SHIFT), "'b' typed with shift");
        s.input(Input::Unicode { ch: u16::from(b'B'), down: true }).unwrap();
        s.input(Input::Unicode { ch: u16::from(b'B'), down: false }).unwrap();
        let state = key(b).expect("no KeyPress for 'B'");
        assert!(state.contains(xproto::KeyButMask::SHIFT), "'B' typed without shift");
        // A character on no key is ignored.
        s.input(Input::Unicode { ch: 0x4e2d, down: true }).unwrap();
        s.input(Input::Unicode { ch: 0x4e2d, down: false }).unwrap();

        // Buttons (at their point) and the wheel.
        let button = |want: u8| {
            wait_event(&c, Duration::from_secs(2), move |e| match e {
                Event::ButtonPress(b) if b.detail == want => Some((b.event_x, b.event_y)),
                _ => None,
            })
        };
        s.input(Input::Button { button: Button::Right, down: true, x: 10, y: 20 }).unwrap();
        s.input(Input::Button { button: Button::Right, down: false, x: 10, y: 20 }).unwrap();
        assert_eq!(button(3), Some((10, 20)));
        s.input(Input::Wheel { delta: -120 }).unwrap();
        assert!(button(5).is_some(), "no wheel-down button");
        s.input(Input::Wheel { delta: 240 }).unwrap();
        assert!(button(4).is_some(), "no wheel-up button");
    }

    #[test]
    fn a_size_change_returns_the_whole_screen() {
        let Some(x) = Xvfb::start("1024x768", &[]) else { return };
        let mut s = X11Screen::open(Some(&x.display)).unwrap();
        s.grab_all().unwrap();
        let (c, root) = x.client();
        if c.extension_information(randr::X11_EXTENSION_NAME).unwrap().is_none() {
            eprintln!("skipped: this Xvfb has no RandR");
            return;
        }
        c.randr_query_version(1, 2).unwrap().reply().unwrap();
        // Xvfb only shrinks (its framebuffer stays), and only once no CRTC
        // shows a mode bigger than the new size: turn its CRTC off first.
        let res = c.randr_get_screen_resources(root).unwrap().reply().unwrap();
        for crtc in &res.crtcs {
            let info = c.randr_get_crtc_info(*crtc, res.config_timestamp).unwrap().reply().unwrap();
            if info.mode != 0 {
                let r = c
                    .randr_set_crtc_config(
                        *crtc,
                        x11rb::CURRENT_TIME,
                        res.config_timestamp,
                        0,
                        0,
                        0,
                        randr::Rotation::ROTATE0,
                        &[],
                    )
                    .unwrap()
                    .reply();
                if !matches!(&r, Ok(r) if r.status == randr::SetConfig::SUCCESS) {
                    eprintln!("skipped: Xvfb refused to turn its CRTC off: {r:?}");
                    return;
                }
            }
        }
        let resized = c.randr_set_screen_size(root, 800, 600, 211, 158).unwrap().check();
        if let Err(e) = resized {
            eprintln!("skipped: Xvfb refused the new screen size: {e}");
            return;
        }
        let g = c.get_geometry(root).unwrap().reply().unwrap();
        assert_eq!((g.width, g.height), (800, 600), "root size after RandR");

        let got = s.changes(Duration::from_secs(2)).unwrap();
        assert_eq!(s.size(), (800, 600));
        assert_eq!(got.len(), 1, "{:?}", got.iter().map(|p| p.rect).collect::<Vec<_>>());
        assert_eq!(got[0].rect, Rect { x: 0, y: 0, width: 800, height: 600 });
        assert_eq!(got[0].stride, 3200);
        assert_eq!(got[0].data.len(), 800 * 600 * 4);
        assert_eq!(s.grab_all().unwrap().data.len(), 800 * 600 * 4);
    }

    fn xr(x: i16, y: i16, width: u16, height: u16) -> xproto::Rectangle {
        xproto::Rectangle { x, y, width, height }
    }

    #[test]
    fn merge_clips_keeps_sparse_rectangles_and_boxes_dense_or_many() {
        // Clipped to the screen; off-screen parts dropped.
        assert_eq!(
            merge(&[xr(-10, -5, 20, 10), xr(630, 470, 50, 50), xr(700, 0, 5, 5)], 640, 480),
            vec![Rect { x: 0, y: 0, width: 10, height: 5 }, Rect { x: 630, y: 470, width: 10, height: 10 }]
        );
        // Two far apart: kept.
        let sparse = [xr(0, 0, 10, 10), xr(500, 400, 10, 10)];
        assert_eq!(merge(&sparse, 640, 480).len(), 2);
        // Two side by side covering most of their box: the box.
        assert_eq!(
            merge(&[xr(0, 0, 10, 10), xr(10, 0, 10, 9)], 640, 480),
            vec![Rect { x: 0, y: 0, width: 20, height: 10 }]
        );
        // Seventeen small ones: the box.
        let many: Vec<_> = (0..17).map(|i| xr(i * 30, i * 20, 2, 2)).collect();
        assert_eq!(merge(&many, 640, 480), vec![Rect { x: 0, y: 0, width: 482, height: 322 }]);
        // Sixteen: kept.
        assert_eq!(merge(&many[..16], 640, 480).len(), 16);
        assert!(merge(&[], 640, 480).is_empty());
    }

    #[test]
    fn scan_codes_map_to_evdev_keycodes() {
        assert_eq!(x_keycode(0x01, false), Some(9)); // Esc
        assert_eq!(x_keycode(0x1e, false), Some(38)); // A
        assert_eq!(x_keycode(0x1c, false), Some(36)); // Enter
        assert_eq!(x_keycode(0x58, false), Some(96)); // F12
        assert_eq!(x_keycode(0x59, false), None);
        assert_eq!(x_keycode(0x00, false), None);
        assert_eq!(x_keycode(0x1c, true), Some(104)); // keypad Enter
        assert_eq!(x_keycode(0x38, true), Some(108)); // AltGr
        assert_eq!(x_keycode(0x53, true), Some(119)); // Delete
        assert_eq!(x_keycode(0x5d, true), Some(135)); // Menu
        assert_eq!(x_keycode(0x2a, true), None); // the fake shift of E0 sequences
    }

    #[test]
    fn characters_map_to_keysyms() {
        assert_eq!(keysym_for_char(u16::from(b'a')), Some(0x61));
        assert_eq!(keysym_for_char(0xe9), Some(0xe9)); // é
        assert_eq!(keysym_for_char(0x20ac), Some(0x0100_20ac)); // €
        assert_eq!(keysym_for_char(0x0d), Some(0xff0d));
        assert_eq!(keysym_for_char(0x01), None);
        assert_eq!(keysym_for_char(0xd800), None);
    }

    #[test]
    fn keymap_finds_plain_shifted_and_implied_upper_case() {
        // Keycodes 10.. : [a A] [1 !] [q] (no upper case listed).
        let map = KeyMap { min_keycode: 10, per_keycode: 2, keysyms: vec![0x61, 0x41, 0x31, 0x21, 0x71, 0] };
        assert_eq!(map.find(0x61), Some((10, false)));
        assert_eq!(map.find(0x41), Some((10, true)));
        assert_eq!(map.find(0x21), Some((11, true)));
        assert_eq!(map.find(0x51), Some((12, true))); // Q from q
        assert_eq!(map.find(0x7a), None);
    }

    /// How long a full capture takes (printed; run with `--ignored`).
    #[test]
    #[ignore]
    fn grab_all_timing() {
        for size in ["640x480", "1920x1080", "3840x2160"] {
            let Some(x) = Xvfb::start(size, &[]) else { return };
            let mut s = X11Screen::open(Some(&x.display)).unwrap();
            s.grab_all().unwrap();
            let n = 10;
            let start = Instant::now();
            for _ in 0..n {
                s.grab_all().unwrap();
            }
            eprintln!("grab_all {size}: {:?} each", start.elapsed() / n);
            // One GetImage for the whole screen, whatever its size: X replies
            // have no limit of their own.
            s.band_bytes = usize::MAX;
            let start = Instant::now();
            let p = s.grab_all().unwrap();
            eprintln!("grab_all {size} in one request: {:?} ({} bytes)", start.elapsed(), p.data.len());
        }
    }
}
