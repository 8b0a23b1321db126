//! The end-to-end test harness: a gateway in a temp dir ([`TestGateway`],
//! [`GateDir`]), office PCs serving an echo target ([`OfficePc`], built by
//! `gw.office_pc("pcid", "pw")`), connected clients (`gw.connect`), the
//! binaries as child processes ([`procs`]), a private PKI, an SMTP server,
//! and the loopback helpers ([`net`]). Each helper exists once here.
//!
//! ```ignore
//! let gw = TestGateway::start().await; // or TestGateway::with_ini("DisableRegister 1")
//! let _pc = gw.office_pc("desk-01", "pw").settings(|s| s.lockout_attempts = 3).await;
//! let tunnel = gw.connect("desk-01", "pw").await;
//! assert_tunnel_echo(&tunnel, 1 << 20, 1).await;
//! gw.shutdown().await;
//! ```
#![forbid(unsafe_code)]

pub mod bench;
pub mod etcd;
pub mod gateway;
pub mod https;
pub mod logs;
pub mod net;
pub mod ocr;
pub mod office;
pub mod pki;
pub mod procs;
pub mod proxies;
pub mod raw;
pub mod smtp;

use std::path::Path;
use std::time::{Duration, Instant};

pub use gateway::{connect, echo_works, try_connect, GateDir, TestGateway};
pub use net::{
    assert_echo, assert_tcp_echo, assert_tunnel_echo, echo_check, echo_server, free_port, tcp_direction_capacity,
};
pub use office::{try_register, OfficePc, RegisteredPc};
pub use pki::Pki;

/// Logs to the test output when `RUST_LOG` is set (and captures every log
/// line, see [`logs`]).
pub fn init_logging() {
    logs::init();
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `f` to its end on a two-worker runtime, for test crates that do not
/// depend on tokio themselves (the builder's).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime").block_on(f)
}

/// Reads a whole file as text, or empty.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
