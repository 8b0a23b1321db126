//! `thingate`: the relay gateway a company runs on one Linux host.
//!
//! One TLS port carries everything. Each connection starts with an HTTP/1.1
//! request: `GET /thingate/` (alive check), `GET /thinstat/` (session list,
//! loopback only), the admin console at `/thinadmin/` ([`admin`], loopback
//! only), or an `Upgrade` to the framed protocol, where office PCs keep
//! control sessions ([`control`]), clients ask for a computer ID, and the
//! gateway pairs a client connection with a data connection from the server
//! and copies bytes ([`tunnel`], [`pairing`], [`relay`]). Office PCs that ask
//! for a one-time password have it mailed by the gateway ([`otp_mail`]); they
//! check it themselves. The company's rules ([`policy`], `ThinGatePolicy.ini`)
//! go to office PCs over their control sessions; office PCs in one wake group
//! may wake one another ([`wake`]).
//!
//! The state ([`Gateway`]: registry, sessions, waiting tunnels, counters) is
//! separate from the server ([`run`]); each handler gets only the parts it uses.
#![forbid(unsafe_code)]

pub mod admin;
pub mod certs;
pub mod config;
pub mod conn;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod host_names;
pub mod limits;
pub mod live;
pub mod logging;
pub mod machine_db;
pub mod metrics;
pub mod otp_mail;
pub mod pairing;
pub mod policy;
pub mod proxy_protocol;
pub mod rate;
pub mod registry;
pub mod relay;
pub mod server;
pub mod sessions;
pub mod source;
pub mod state;
pub mod stats_post;
pub mod status;
pub mod stream;
pub mod thinstat;
pub mod tunnel;
pub mod wake;

pub use registry::{FileRegistry, MachineRegistry};
pub use server::{run, RunningGateway};
pub use state::{Gateway, StartError};
