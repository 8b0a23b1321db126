//! `thingate`: the relay gateway a company runs on one Linux host.
//!
//! One TLS port carries everything. Each connection starts with an HTTP/1.1
//! request: `GET /thingate/` (alive check), `GET /thinstat/` (session list,
//! loopback only), or an `Upgrade` to the framed protocol, where office PCs keep
//! control sessions, clients ask for a computer ID, and the gateway pairs a
//! client connection with a data connection from the server and copies bytes.
//! Office PCs that ask for a one-time password have it mailed by the gateway
//! ([`otp_mail`]); they check it themselves.
#![forbid(unsafe_code)]

pub mod config;
pub mod conn;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod limits;
pub mod logging;
pub mod machine_db;
pub mod metrics;
pub mod otp_mail;
pub mod proxy_protocol;
pub mod registry;
pub mod relay;
pub mod server;
pub mod stats_post;
pub mod status;
pub mod thinstat;

pub use server::{Gateway, RunningGateway};
