//! The Windows clipboard for the built-in desktop: Unicode text only.
//!
//! thinsvr owns what it puts there through a message-only window of the
//! screen's thread (with no owner window `SetClipboardData` fails), and
//! that thread pumps the window's messages at every look for changes, so an
//! app that empties the clipboard is never kept waiting on it. Changes made
//! by other apps are seen through the clipboard's sequence number.

use windows_sys::Win32::Foundation::{GlobalFree, HWND};
use windows_sys::Win32::System::DataExchange::{
    CloseClipboard, EmptyClipboard, GetClipboardData, GetClipboardSequenceNumber, IsClipboardFormatAvailable,
    OpenClipboard, SetClipboardData,
};
use windows_sys::Win32::System::Memory::{GlobalAlloc, GlobalLock, GlobalSize, GlobalUnlock, GMEM_MOVEABLE};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DestroyWindow, DispatchMessageW, PeekMessageW, HWND_MESSAGE, MSG, PM_REMOVE,
};

use crate::desktop::screen::{ScreenError, CLIPBOARD_MAX};

/// `CF_UNICODETEXT`: UTF-16 text ending with a NUL.
const CF_UNICODETEXT: u32 = 13;

/// thinsvr's side of the clipboard, in the screen's thread.
pub struct WinClipboard {
    window: HWND,
    /// The sequence number right after thinsvr's own last copy.
    own: u32,
    /// The sequence number last looked at.
    seen: u32,
}

impl std::fmt::Debug for WinClipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WinClipboard").field("seen", &self.seen).finish()
    }
}

/// Closes the clipboard when dropped.
struct Opened;

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: made only after OpenClipboard succeeded.
        unsafe { CloseClipboard() };
    }
}

impl WinClipboard {
    /// Makes the message-only window (in the calling thread, which must be
    /// the one that uses this clipboard).
    pub fn new() -> Result<Self, ScreenError> {
        let class: Vec<u16> = "STATIC\0".encode_utf16().collect();
        // SAFETY: a predefined window class, no parameters; destroyed in `Drop`.
        let window = unsafe {
            CreateWindowExW(
                0,
                class.as_ptr(),
                std::ptr::null(),
                0,
                0,
                0,
                0,
                0,
                HWND_MESSAGE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        if window.is_null() {
            return Err(ScreenError::Io(format!(
                "cannot make the clipboard window: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: plain call.
        let seq = unsafe { GetClipboardSequenceNumber() };
        Ok(Self { window, own: seq, seen: seq })
    }

    /// Opens the clipboard, waiting a little for an app that holds it open.
    fn open(&self) -> Result<Opened, ScreenError> {
        for _ in 0..20 {
            // SAFETY: `window` is this thread's window.
            if unsafe { OpenClipboard(self.window) } != 0 {
                return Ok(Opened);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(ScreenError::Io(format!("the clipboard stays open in another app: {}", std::io::Error::last_os_error())))
    }

    /// Answers the messages sent to the window (the clipboard's among them).
    fn pump(&self) {
        // SAFETY: MSG is plain data; the calls get a valid pointer to it.
        unsafe {
            let mut msg: MSG = std::mem::zeroed();
            while PeekMessageW(&mut msg, self.window, 0, 0, PM_REMOVE) != 0 {
                DispatchMessageW(&msg);
            }
        }
    }

    /// The Unicode text on the clipboard.
    pub fn text(&self) -> Result<Option<String>, ScreenError> {
        // SAFETY: plain call.
        if unsafe { IsClipboardFormatAvailable(CF_UNICODETEXT) } == 0 {
            return Ok(None);
        }
        let _open = self.open()?;
        // SAFETY: the clipboard is open; the handle stays valid until it is
        // closed (`_open`), and is read only between lock and unlock, within
        // the size the allocation has.
        unsafe {
            let h = GetClipboardData(CF_UNICODETEXT);
            if h.is_null() {
                return Ok(None);
            }
            let p = GlobalLock(h).cast::<u16>();
            if p.is_null() {
                return Ok(None);
            }
            let units = std::slice::from_raw_parts(p, GlobalSize(h) / 2);
            let len = units.iter().position(|&u| u == 0).unwrap_or(units.len());
            let text = (len <= CLIPBOARD_MAX).then(|| String::from_utf16_lossy(&units[..len]));
            GlobalUnlock(h);
            if text.is_none() {
                tracing::info!(max = CLIPBOARD_MAX, "the office PC's clipboard holds more text than is carried");
            }
            Ok(text)
        }
    }

    /// Puts `text` on the clipboard.
    pub fn set(&mut self, text: &str) -> Result<(), ScreenError> {
        let wide: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
        {
            let _open = self.open()?;
            // SAFETY: the clipboard is open by this window; the allocation is
            // written within its size between lock and unlock; once
            // SetClipboardData takes it the system owns it, else it is freed.
            unsafe {
                EmptyClipboard();
                let h = GlobalAlloc(GMEM_MOVEABLE, wide.len() * 2);
                if h.is_null() {
                    return Err(ScreenError::Io("no memory for the clipboard's text".into()));
                }
                let p = GlobalLock(h).cast::<u16>();
                if p.is_null() {
                    GlobalFree(h);
                    return Err(ScreenError::Io("cannot lock the clipboard's memory".into()));
                }
                std::ptr::copy_nonoverlapping(wide.as_ptr(), p, wide.len());
                GlobalUnlock(h);
                if SetClipboardData(CF_UNICODETEXT, h).is_null() {
                    let e = std::io::Error::last_os_error();
                    GlobalFree(h);
                    return Err(ScreenError::Io(format!("SetClipboardData: {e}")));
                }
            }
        }
        // SAFETY: plain call.
        self.own = unsafe { GetClipboardSequenceNumber() };
        self.seen = self.own;
        Ok(())
    }

    /// Whether another app changed the clipboard since the last call.
    pub fn changed(&mut self) -> bool {
        self.pump();
        // SAFETY: plain call.
        let now = unsafe { GetClipboardSequenceNumber() };
        if now == self.seen {
            return false;
        }
        self.seen = now;
        now != self.own
    }
}

impl Drop for WinClipboard {
    fn drop(&mut self) {
        // SAFETY: the window was made in `new`, in this thread.
        unsafe { DestroyWindow(self.window) };
    }
}
