//! On Windows, ThinServer's config folder (key pair, password verifier, admin
//! secret) must be readable only by the service (SYSTEM), Administrators and
//! its owner: `%ProgramData%` lets every user read what is below it, so the
//! folder gets its own protected access list. On Unix the folder is made
//! 0700 (its files are 0600 already, see [`crate::settings::write_secret`]).

use std::path::Path;

/// Access list of the config folder: full control for SYSTEM, Administrators
/// and the owner; inherited by everything in it; nothing from the parent.
pub const CONFIG_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;OW)";

/// Creates `dir` if needed and restricts it: as [`CONFIG_DIR_SDDL`] says on
/// Windows, mode 0700 on Unix. A failure is logged: the service still runs.
pub fn protect_dir(dir: &Path) {
    let _ = std::fs::create_dir_all(dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!("{}: cannot make it private: {e}", dir.display());
        }
    }
    #[cfg(windows)]
    if let Err(e) = protect_windows(dir) {
        tracing::warn!("{}: cannot restrict who may read it: {e}", dir.display());
    }
}

#[cfg(windows)]
fn protect_windows(dir: &Path) -> Result<(), String> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
        PSECURITY_DESCRIPTOR,
    };
    let wide = |s: &std::ffi::OsStr| s.encode_wide().chain(Some(0)).collect::<Vec<u16>>();
    let sddl = wide(std::ffi::OsStr::new(CONFIG_DIR_SDDL));
    let path = wide(dir.as_os_str());
    // SAFETY: every pointer is to a live, NUL-terminated buffer or an out
    // variable of the right type; the descriptor is freed with LocalFree.
    unsafe {
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(format!("bad access list: {}", std::io::Error::last_os_error()));
        }
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let r = if GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) == 0 {
            Err(std::io::Error::last_os_error().to_string())
        } else {
            let e = SetNamedSecurityInfoW(
                path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            );
            if e == ERROR_SUCCESS {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(e as i32).to_string())
            }
        };
        LocalFree(sd as _);
        r
    }
}
