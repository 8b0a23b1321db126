//! Shared helpers for end-to-end tests: a private PKI, a gateway on loopback,
//! office-PC and home-PC agents, and a target service.
#![forbid(unsafe_code)]

pub mod https;
pub mod ocr;
pub mod pki;
pub mod procs;
pub mod smtp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thin_protocol::entry_point::EntryPoint;
use thin_protocol::secret::Secret;
use thin_tunnel::link::Link;
use thin_tunnel::settings::ConfigDir;
use thingate::{Gateway, RunningGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use pki::Pki;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
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

/// A gateway folder: ThinGate.ini, certificate and key, database.
pub struct GateDir {
    /// Temp folder holding everything.
    pub dir: tempfile::TempDir,
    /// The PKI.
    pub pki: Pki,
}

impl GateDir {
    /// Makes a folder with a fresh PKI and an ini with `extra` lines appended.
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        pki.write_gateway(dir.path());
        // Defaults for tests, unless `extra` sets the same key.
        let defaults = [
            "ListenAddress 127.0.0.1",
            "ListenPort 0",
            "ServerCert ThinGate.cer",
            "ServerKey ThinGate.key",
            "TunnelTimeout 5000",
            "TunnelKeepAlive 500",
        ];
        let mut ini = String::from("# test gateway\n");
        for d in defaults {
            let key = d.split_whitespace().next().unwrap();
            if !extra.lines().any(|l| l.split_whitespace().next() == Some(key)) {
                ini.push_str(d);
                ini.push('\n');
            }
        }
        ini.push_str(extra);
        ini.push('\n');
        std::fs::write(dir.path().join("ThinGate.ini"), ini).expect("write ini");
        Self { dir, pki }
    }

    /// Path of ThinGate.ini.
    pub fn ini(&self) -> PathBuf {
        self.dir.path().join("ThinGate.ini")
    }

    /// Rewrites `ListenPort` (to restart on the same port).
    pub fn set_port(&self, port: u16) {
        let text =
            std::fs::read_to_string(self.ini()).unwrap().replace("ListenPort 0\n", &format!("ListenPort {port}\n"));
        std::fs::write(self.ini(), text).unwrap();
    }

    /// Starts an in-process gateway.
    pub async fn start(&self) -> RunningGateway {
        let gw = Gateway::load(&self.ini()).expect("gateway loads");
        gw.start().await.expect("gateway starts")
    }

    /// Writes an EntryPoint.dat for `addr` signed by this PKI's CA and returns its path.
    pub fn entry_point(&self, addr: SocketAddr) -> PathBuf {
        let p = self.dir.path().join(format!("EntryPoint-{}.dat", addr.port()));
        let text = EntryPoint::render(&self.pki.ca_pem, &format!("https://{addr}/thingate/"), "Test System");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A link to a gateway at `addr`.
    pub fn link(&self, addr: SocketAddr) -> Link {
        let ep = EntryPoint::load(&self.entry_point(addr)).unwrap();
        Link::new(ep, None).unwrap()
    }
}

/// An office PC run in-process.
pub struct OfficePc {
    /// Its config folder.
    pub dir: tempfile::TempDir,
    /// Stops it.
    pub stop: CancellationToken,
    /// Its state.
    pub state: tokio::sync::watch::Receiver<thin_tunnel::server_agent::ServerState>,
    /// The task.
    pub task: tokio::task::JoinHandle<Result<(), thin_tunnel::server_agent::AgentError>>,
}

impl OfficePc {
    /// Registers `pcid` with `password`, then runs, forwarding to `target`.
    pub async fn start(link: &Link, pcid: &str, password: &str, target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigDir(dir.path().to_path_buf());
        thin_tunnel::server_agent::register(link, &cfg, pcid, &Secret::new(password)).await.expect("register");
        Self::run(dir, link, target).await
    }

    /// Runs an already registered config folder.
    pub async fn run(dir: tempfile::TempDir, link: &Link, target: SocketAddr) -> Self {
        Self::run_with(dir, link, target, thin_tunnel::otp::OtpPolicy::default()).await
    }

    /// Runs an already registered config folder with a one-time-password policy
    /// (e.g. a short validity).
    pub async fn run_with(
        dir: tempfile::TempDir,
        link: &Link,
        target: SocketAddr,
        otp: thin_tunnel::otp::OtpPolicy,
    ) -> Self {
        let cfg = ConfigDir(dir.path().to_path_buf());
        let stop = CancellationToken::new();
        let (tx, state) = tokio::sync::watch::channel(thin_tunnel::server_agent::ServerState::Connecting);
        let opts =
            thin_tunnel::server_agent::ServeOptions { target: Some(target.to_string()), otp, ..Default::default() };
        let task = tokio::spawn(thin_tunnel::server_agent::run_with(link.clone(), cfg, opts, stop.clone(), tx));
        let pc = Self { dir, stop, state, task };
        pc.wait_online().await;
        pc
    }

    /// Waits until the gateway lists this PC as online.
    pub async fn wait_online(&self) {
        let st = self.state.clone();
        wait_for("office PC online", Duration::from_secs(20), || {
            let online = matches!(*st.borrow(), thin_tunnel::server_agent::ServerState::Online { .. });
            async move { online.then_some(()) }
        })
        .await;
    }
}

/// A TCP echo service on loopback (stands in for the remote desktop).
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Sends `len` random bytes through `stream` while reading the echo; returns
/// (SHA-256 sent, SHA-256 received, bytes received).
pub async fn echo_check<S>(stream: S, len: usize, seed: u64) -> (String, String, usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use rand::{RngCore, SeedableRng};
    use sha2::{Digest, Sha256};
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            rng.fill_bytes(&mut buf[..n]);
            h.update(&buf[..n]);
            w.write_all(&buf[..n]).await.unwrap();
            left -= n;
        }
        w.shutdown().await.unwrap();
        hex::encode(h.finalize())
    });
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        got += n;
    }
    (writer.await.unwrap(), hex::encode(h.finalize()), got)
}

/// Reads a whole file as text, or empty.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
