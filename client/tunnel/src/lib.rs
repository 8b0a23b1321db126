//! The tunnel core of the apps (`thinsvr` on the office PC, `thinclient` on
//! the home PC): the link to the gateway (TLS, proxies), the multiplexer, the
//! end-to-end login, the agents, the service and its admin port. No windows,
//! no command line and no texts: those are `thin-ui`'s.
#![deny(unsafe_code)] // allowed only in `platform` (Windows calls).

pub mod admin_rpc;
pub mod brand;
pub mod check;
pub mod client_agent;
pub mod control;
pub mod decouple;
pub mod desktop;
pub mod device;
pub mod e2e;
pub mod entry;
pub mod inplace;
pub mod inspection;
pub mod link;
pub mod lockout;
pub mod mux;
pub mod otp;
pub mod otp_mail;
pub mod password_policy;
pub mod platform;
pub mod policy;
pub mod proxy;
pub mod runtime;
pub mod seal;
pub mod server_agent;
pub mod server_tunnel;
pub mod service;
pub mod settings;
pub mod share_policy;
pub mod tls_failure;
pub mod wake;
