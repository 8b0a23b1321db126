//! The Windows glue, the only place with `unsafe` code: attaching to the
//! parent's console, the ProgramData known folder, the config folder's ACL and
//! the service control manager. Elsewhere each call does the portable thing
//! (or nothing).
#![allow(unsafe_code)]

pub mod acl;
pub mod console;
pub mod known_folder;
#[cfg(windows)]
pub mod winsvc;
