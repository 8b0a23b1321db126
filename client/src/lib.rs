//! The apps: `thinsvr` on the office PC and `thinclient` on the home PC.
#![forbid(unsafe_code)]

pub mod admin_rpc;
pub mod brand;
pub mod client_agent;
pub mod decouple;
pub mod e2e;
pub mod entry;
#[cfg(feature = "gui")]
pub mod gui;
pub mod link;
pub mod lockout;
pub mod mux;
pub mod otp;
pub mod otp_mail;
pub mod proxy;
pub mod server_agent;
pub mod server_tunnel;
pub mod settings;
pub mod strings;
pub mod viewer;
