//! The Windows calls behind [`super::acl`]: open a folder or file without
//! following links, read and set its owner and access list through that
//! handle (never by name, so nothing is propagated to what is inside and no
//! link is followed), create a folder with its descriptor from the start, and
//! enable the privileges that let SYSTEM take over what another user made.

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, LocalFree, ERROR_ALREADY_EXISTS, ERROR_INSUFFICIENT_BUFFER, HANDLE,
    INVALID_HANDLE_VALUE, LUID,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    AdjustTokenPrivileges, GetKernelObjectSecurity, GetTokenInformation, LookupPrivilegeValueW,
    SetKernelObjectSecurity, TokenUser, DACL_SECURITY_INFORMATION, LUID_AND_ATTRIBUTES, OWNER_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, SE_BACKUP_NAME,
    SE_PRIVILEGE_ENABLED, SE_RESTORE_NAME, SE_TAKE_OWNERSHIP_NAME, TOKEN_ADJUST_PRIVILEGES, TOKEN_PRIVILEGES,
    TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateDirectoryW, CreateFileW, GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION, FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_LIST_DIRECTORY,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING, READ_CONTROL, WRITE_DAC, WRITE_OWNER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(Some(0)).collect()
}

/// Reads a NUL-terminated wide string and frees it with `LocalFree`.
///
/// # Safety
/// `p` is null or a NUL-terminated string allocated with `LocalAlloc`.
unsafe fn take_local_string(p: *mut u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let len = (0..).take_while(|&i| *p.add(i) != 0).count();
    let s = String::from_utf16_lossy(std::slice::from_raw_parts(p, len));
    LocalFree(p as _);
    s
}

/// A security descriptor made from SDDL (freed on drop).
struct Descriptor(PSECURITY_DESCRIPTOR);

impl Descriptor {
    fn from_sddl(sddl: &str) -> io::Result<Self> {
        let text = wide(OsStr::new(sddl));
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; `sd` receives a LocalAlloc'd descriptor freed in Drop.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(sd))
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.0 as _) };
    }
}

/// An open handle (closed on drop).
#[derive(Debug)]
pub struct Handle(HANDLE);

// SAFETY: a kernel handle may be used and closed from any thread.
unsafe impl Send for Handle {}
// SAFETY: the methods only pass the handle to thread-safe kernel calls.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a valid handle from CreateFileW or OpenProcessToken, closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// How [`Handle::open`] shares the entry with other programs.
#[derive(Debug, Clone, Copy)]
pub enum Share {
    /// Others may read and write, not rename or delete it while it is open
    /// (an open that asks to fails; a program already holding it open so
    /// that it could makes this open fail instead).
    Pin,
    /// Everything (the service renames or deletes it afterwards).
    All,
}

/// What [`Handle::info`] tells.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// A folder.
    pub dir: bool,
    /// A symbolic link or junction.
    pub reparse: bool,
    /// Names of the file (hard links).
    pub links: u32,
}

impl Handle {
    /// Opens `path` (a folder or file; a link itself, not where it leads) to
    /// read and change its owner and access list. With [`Share::All`] none of
    /// the rights asked take part in sharing, so the open conflicts with no
    /// other program; a [`Share::Pin`] (folders only) also lists the folder.
    pub fn open(path: &Path, share: Share) -> io::Result<Self> {
        let name = wide(path.as_os_str());
        // Windows records a handle's sharing only when it reads, writes or
        // deletes: a pin lists the folder, so that its refusal to share
        // deletion holds.
        let (share, data) = match share {
            Share::Pin => (FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_LIST_DIRECTORY),
            Share::All => (FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, 0),
        };
        // SAFETY: `name` is NUL-terminated; the returned handle is owned by `Handle`.
        let h = unsafe {
            CreateFileW(
                name.as_ptr(),
                READ_CONTROL | WRITE_DAC | WRITE_OWNER | data,
                share,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                std::ptr::null_mut(),
            )
        };
        if h == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(h))
    }

    /// Kind and number of names.
    pub fn info(&self) -> io::Result<Info> {
        let mut i = BY_HANDLE_FILE_INFORMATION::default();
        // SAFETY: `i` is a writable struct of the documented type.
        if unsafe { GetFileInformationByHandle(self.0, &mut i) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Info {
            dir: i.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY != 0,
            reparse: i.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0,
            links: i.nNumberOfLinks,
        })
    }

    /// Owner and access list as SDDL (`O:...D:...`).
    pub fn sddl(&self) -> io::Result<String> {
        let what = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
        let mut buf: Vec<u64> = vec![0; 64];
        loop {
            let bytes = (buf.len() * 8) as u32;
            let mut needed = 0u32;
            // SAFETY: `buf` is writable for `bytes` bytes and 8-byte aligned.
            let ok = unsafe { GetKernelObjectSecurity(self.0, what, buf.as_mut_ptr() as _, bytes, &mut needed) };
            if ok != 0 {
                break;
            }
            // SAFETY: reads the calling thread's last error.
            if unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER || needed <= bytes {
                return Err(io::Error::last_os_error());
            }
            buf = vec![0; (needed as usize).div_ceil(8)];
        }
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: `buf` holds the self-relative descriptor just read; `text` is freed by take_local_string.
        unsafe {
            if ConvertSecurityDescriptorToStringSecurityDescriptorW(
                buf.as_mut_ptr() as _,
                SDDL_REVISION_1,
                what,
                &mut text,
                std::ptr::null_mut(),
            ) == 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(take_local_string(text))
        }
    }

    /// Sets the owner and the (protected) access list of `sddl` on this entry
    /// alone: what is inside a folder keeps its own.
    pub fn set_sddl(&self, sddl: &str) -> io::Result<()> {
        let sd = Descriptor::from_sddl(sddl)?;
        let what = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION;
        // SAFETY: a valid handle and descriptor.
        if unsafe { SetKernelObjectSecurity(self.0, what, sd.0) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Creates the folder `path` with the descriptor `sddl` from the start;
/// `Ok(false)` when it exists already.
pub fn create_dir(path: &Path, sddl: &str) -> io::Result<bool> {
    let sd = Descriptor::from_sddl(sddl)?;
    let sa = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd.0,
        bInheritHandle: 0,
    };
    let name = wide(path.as_os_str());
    // SAFETY: `name` is NUL-terminated; `sa` points to a live descriptor.
    if unsafe { CreateDirectoryW(name.as_ptr(), &sa) } != 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(ERROR_ALREADY_EXISTS as i32) {
        return Ok(false);
    }
    Err(e)
}

fn process_token(access: u32) -> io::Result<Handle> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo handle of this process; `token` receives a handle owned by `Handle`.
    if unsafe { OpenProcessToken(GetCurrentProcess(), access, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Handle(token))
}

/// The SID of the user this process runs as (`S-1-5-18` for SYSTEM).
pub fn current_user_sid() -> io::Result<String> {
    let token = process_token(TOKEN_QUERY)?;
    let mut buf: Vec<u64> = vec![0; 16];
    loop {
        let bytes = (buf.len() * 8) as u32;
        let mut needed = 0u32;
        // SAFETY: `buf` is writable for `bytes` bytes and aligned for TOKEN_USER.
        if unsafe { GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr() as _, bytes, &mut needed) } != 0 {
            break;
        }
        if needed <= bytes {
            return Err(io::Error::last_os_error());
        }
        buf = vec![0; (needed as usize).div_ceil(8)];
    }
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `buf` starts with the TOKEN_USER just written; its SID points inside `buf`.
    unsafe {
        let user = &*(buf.as_ptr() as *const TOKEN_USER);
        if ConvertSidToStringSidW(user.User.Sid, &mut text) == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(take_local_string(text))
    }
}

/// Backup, restore and take-ownership privileges, enabled while this lives
/// (for what SYSTEM and administrators hold; silently nothing for others):
/// they let the service open and take over an entry whose access list shuts
/// it out. Dropping it puts the previous state back.
pub struct Privileges {
    token: Option<Handle>,
    previous: Vec<TOKEN_PRIVILEGES>,
}

impl Privileges {
    /// Enables what the token holds of the three.
    pub fn enable() -> Self {
        let Ok(token) = process_token(TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY) else {
            return Self { token: None, previous: Vec::new() };
        };
        let mut previous = Vec::new();
        for name in [SE_BACKUP_NAME, SE_RESTORE_NAME, SE_TAKE_OWNERSHIP_NAME] {
            let mut luid = LUID { LowPart: 0, HighPart: 0 };
            // SAFETY: `name` is a static NUL-terminated string; `luid` is writable.
            if unsafe { LookupPrivilegeValueW(std::ptr::null(), name, &mut luid) } == 0 {
                continue;
            }
            let new = TOKEN_PRIVILEGES {
                PrivilegeCount: 1,
                Privileges: [LUID_AND_ATTRIBUTES { Luid: luid, Attributes: SE_PRIVILEGE_ENABLED }],
            };
            let mut old = TOKEN_PRIVILEGES::default();
            let mut len = 0u32;
            let size = std::mem::size_of::<TOKEN_PRIVILEGES>() as u32;
            // SAFETY: `new` and `old` are TOKEN_PRIVILEGES with room for one privilege.
            if unsafe { AdjustTokenPrivileges(token.0, 0, &new, size, &mut old, &mut len) } != 0 {
                previous.push(old);
            }
        }
        Self { token: Some(token), previous }
    }
}

impl Drop for Privileges {
    fn drop(&mut self) {
        let Some(token) = &self.token else { return };
        for old in self.previous.iter().rev() {
            // SAFETY: puts back the state AdjustTokenPrivileges reported (zero or one privilege).
            unsafe { AdjustTokenPrivileges(token.0, 0, old, 0, std::ptr::null_mut(), std::ptr::null_mut()) };
        }
    }
}
