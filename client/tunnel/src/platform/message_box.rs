//! A message box for errors that would otherwise be lost: the apps are
//! Windows GUI programs, so a double-clicked app has no console to print on.
//! Elsewhere (and on Windows when the box cannot be shown) the caller prints
//! the error on standard error as before.

/// Shows `text` under `title` in a Windows error message box and waits until
/// the user closes it. Returns whether a box was shown (never, off Windows).
pub fn show_error(title: &str, text: &str) -> bool {
    #[cfg(windows)]
    {
        use windows_sys::Win32::UI::WindowsAndMessaging::{
            MessageBoxW, MB_ICONERROR, MB_OK, MB_SETFOREGROUND, MB_TASKMODAL,
        };
        let wide = |s: &str| s.encode_utf16().chain(std::iter::once(0)).collect::<Vec<u16>>();
        let (title, text) = (wide(title), wide(text));
        // SAFETY: both strings are NUL-terminated UTF-16 that outlive the
        // call; a null owner window is allowed.
        let r = unsafe {
            MessageBoxW(
                std::ptr::null_mut(),
                text.as_ptr(),
                title.as_ptr(),
                MB_OK | MB_ICONERROR | MB_SETFOREGROUND | MB_TASKMODAL,
            )
        };
        if r == 0 {
            tracing::warn!("cannot show a message box: {}", std::io::Error::last_os_error());
        }
        r != 0
    }
    #[cfg(not(windows))]
    {
        let _ = (title, text);
        false
    }
}
