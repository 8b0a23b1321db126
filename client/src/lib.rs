//! The apps: `thinsvr` on the office PC and `thinclient` on the home PC.
#![deny(unsafe_code)] // allowed only in `console`, `known_folder`, `winacl` and `winsvc` (Windows calls).

pub mod admin_rpc;
pub mod brand;
pub mod cli_help;
pub mod client_agent;
pub mod console;
pub mod control;
pub mod decouple;
pub mod e2e;
pub mod entry;
#[cfg(feature = "gui")]
pub mod gui;
pub mod known_folder;
pub mod link;
pub mod lockout;
pub mod mux;
pub mod otp;
pub mod otp_mail;
pub mod proxy;
pub mod server_agent;
pub mod server_tunnel;
pub mod service;
pub mod settings;
pub mod strings;
pub mod viewer;
pub mod winacl;
#[cfg(windows)]
pub mod winsvc;
