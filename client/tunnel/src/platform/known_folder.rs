//! Where Windows keeps machine-wide program data (`C:\ProgramData`), asked of
//! the shell rather than read from the environment: a service's environment
//! may lack `PROGRAMDATA`, and `ALLUSERSPROFILE` is another folder under Wine,
//! so the service and its window could otherwise look in different places.

use std::path::PathBuf;

/// The ProgramData folder (Windows), else `None`.
pub fn program_data() -> Option<PathBuf> {
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStringExt;
        use windows_sys::Win32::System::Com::CoTaskMemFree;
        use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
        let mut p: windows_sys::core::PWSTR = std::ptr::null_mut();
        // SAFETY: `p` receives a NUL-terminated string allocated by the shell,
        // read up to its NUL and freed with CoTaskMemFree, as documented.
        unsafe {
            let hr = SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut p);
            if hr != 0 || p.is_null() {
                if !p.is_null() {
                    CoTaskMemFree(p as _);
                }
                return None;
            }
            let len = (0..).take_while(|&i| *p.add(i) != 0).count();
            let s = std::ffi::OsString::from_wide(std::slice::from_raw_parts(p, len));
            CoTaskMemFree(p as _);
            Some(PathBuf::from(s))
        }
    }
    #[cfg(not(windows))]
    None
}
