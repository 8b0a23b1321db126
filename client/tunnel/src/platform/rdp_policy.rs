//! The Remote Desktop host's machine policy values in the registry
//! (`HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services`), for
//! [`crate::share_policy`]. Windows only; the service runs as LocalSystem,
//! which may write there.

use windows_sys::Win32::Foundation::ERROR_FILE_NOT_FOUND;
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegDeleteValueW, RegQueryValueExW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE,
    KEY_QUERY_VALUE, KEY_SET_VALUE, REG_DWORD, REG_OPTION_NON_VOLATILE,
};

use crate::share_policy::{PolicyValues, KEY};

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The open key; closed on drop.
pub struct Registry(HKEY);

impl Registry {
    /// Opens (creating) the key for reading and writing values.
    pub fn open() -> Result<Self, String> {
        let mut h: HKEY = std::ptr::null_mut();
        let key = wide(KEY);
        // SAFETY: `key` is NUL-terminated and outlives the call; `h` receives
        // the opened key, closed in `Drop`.
        let rc = unsafe {
            RegCreateKeyExW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                0,
                std::ptr::null(),
                REG_OPTION_NON_VOLATILE,
                KEY_QUERY_VALUE | KEY_SET_VALUE,
                std::ptr::null(),
                &mut h,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "HKLM\\{KEY}: cannot open for writing (error {rc}); DISABLE_SHARE needs ThinServer's service \
                 (LocalSystem) or an administrator"
            ));
        }
        Ok(Self(h))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: the key was opened by `open` and is closed once.
        unsafe { RegCloseKey(self.0) };
    }
}

impl PolicyValues for Registry {
    fn get(&mut self, name: &str) -> Result<Option<u32>, String> {
        let n = wide(name);
        let (mut ty, mut data, mut len) = (0u32, 0u32, 4u32);
        // SAFETY: `data` is 4 writable bytes and `len` says so; `n` is NUL-terminated.
        let rc = unsafe {
            RegQueryValueExW(self.0, n.as_ptr(), std::ptr::null(), &mut ty, &mut data as *mut u32 as *mut u8, &mut len)
        };
        match rc {
            0 if ty == REG_DWORD && len == 4 => Ok(Some(data)),
            // Another type: treated as set by someone else; put back as absent
            // would lose it, so refuse rather than guess.
            0 => Err(format!("HKLM\\{KEY}\\{name} is not a DWORD; fix or delete it")),
            ERROR_FILE_NOT_FOUND => Ok(None),
            rc => Err(format!("HKLM\\{KEY}\\{name}: cannot read (error {rc})")),
        }
    }

    fn set(&mut self, name: &str, value: Option<u32>) -> Result<(), String> {
        let n = wide(name);
        // SAFETY: `n` is NUL-terminated; the data pointer covers 4 bytes.
        let rc = unsafe {
            match value {
                Some(v) => RegSetValueExW(self.0, n.as_ptr(), 0, REG_DWORD, &v as *const u32 as *const u8, 4),
                None => match RegDeleteValueW(self.0, n.as_ptr()) {
                    ERROR_FILE_NOT_FOUND => 0,
                    rc => rc,
                },
            }
        };
        if rc != 0 {
            return Err(format!("HKLM\\{KEY}\\{name}: cannot write (error {rc})"));
        }
        Ok(())
    }
}
