//! The apps: `thinsvr` on the office PC and `thinclient` on the home PC.
#![forbid(unsafe_code)]

pub mod brand;
pub mod client_agent;
pub mod decouple;
pub mod e2e;
pub mod entry;
pub mod link;
pub mod lockout;
pub mod mux;
pub mod proxy;
pub mod server_agent;
pub mod server_tunnel;
pub mod settings;
pub mod strings;
pub mod viewer;
