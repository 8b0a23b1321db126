//! The Windows glue, the only place with `unsafe` code: attaching to the
//! parent's console, the ProgramData known folder, the config folder's owner
//! and access list (with the rule that judges them, plain code in `sddl`) and
//! the service control manager, error message boxes, the home PC's state over
//! WMI (`wmi`), the screen, input and clipboard of the built-in desktop (`gdi`, `win_clip`); on Unix, the process's user and its
//! open-file limit; on Linux the allocator's tuning (`heap`). Elsewhere each
//! call does the portable thing (or nothing).
#![allow(unsafe_code)]

pub mod acl;
pub mod console;
#[cfg(windows)]
pub mod gdi;
pub mod heap;
pub mod known_folder;
pub mod limits;
pub mod message_box;
#[cfg(windows)]
pub mod rdp_policy;
pub mod sddl;
#[cfg(windows)]
mod win_clip;
#[cfg(windows)]
mod win_security;
#[cfg(windows)]
pub mod winsvc;
#[cfg(windows)]
pub mod wmi;
#[cfg(target_os = "linux")]
pub mod x11;
#[cfg(target_os = "linux")]
mod x11_clip;
