//! A gateway in a temp dir: its folder ([`GateDir`]: ini, PKI, database) and
//! the gateway running in-process on it ([`TestGateway`]), with the links,
//! office PCs and clients that talk to it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use thin_protocol::entry_point::EntryPoint;
use thin_protocol::secret::Secret;
use thin_tunnel::client_agent::{ClientError, ClientTunnel};
use thin_tunnel::link::Link;
use thin_tunnel::proxy::ProxySetting;
use thingate::{Gateway, RunningGateway};

use crate::office::{OfficePcBuilder, RegisteredPc};
use crate::procs::{bin, Proc};
use crate::Pki;

/// A gateway folder: ThinGate.ini, certificate and key, database.
pub struct GateDir {
    /// Temp folder holding everything.
    pub dir: tempfile::TempDir,
    /// The PKI (shared by the members of a cluster).
    pub pki: Arc<Pki>,
}

impl GateDir {
    /// Makes a folder with a fresh PKI and an ini with `extra` lines appended.
    pub fn new(extra: &str) -> Self {
        Self::with_pki(Arc::new(Pki::new()), extra)
    }

    /// Makes a folder with the certificate of `pki` (the members of a
    /// cluster share the CA and the certificate) and an ini with `extra`.
    pub fn with_pki(pki: Arc<Pki>, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
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

    /// Writes `ThinGatePolicy.ini` beside the ini (a running gateway picks it up).
    pub fn write_policy(&self, text: &str) {
        std::fs::write(self.path(thingate::policy::POLICY_NAME), text).expect("write policy");
    }

    /// Path of a file in the folder (`MachineDatabase.config`, `gate_log`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the gateway's certificate and key (PEM).
    pub fn set_cert(&self, (cert, key): (String, String)) {
        std::fs::write(self.path("ThinGate.cer"), cert).unwrap();
        std::fs::write(self.path("ThinGate.key"), key).unwrap();
    }

    /// Rewrites `ListenPort` (to restart on the same port).
    pub fn set_port(&self, port: u16) {
        let text =
            std::fs::read_to_string(self.ini()).unwrap().replace("ListenPort 0\n", &format!("ListenPort {port}\n"));
        std::fs::write(self.ini(), text).unwrap();
    }

    /// The error `Gateway::load` reports for this folder (it must fail).
    pub fn load_error(&self) -> String {
        match Gateway::load(&self.ini()) {
            Ok(_) => panic!("the gateway loaded; it should have refused"),
            Err(e) => e.to_string(),
        }
    }

    /// Starts an in-process gateway on this folder (a cluster member joins
    /// its cluster first).
    pub async fn start(self) -> TestGateway {
        let cfg = thingate::config::GateConfig::load(&self.ini()).expect("ThinGate.ini loads");
        let gw = Gateway::open_at(cfg, &self.ini()).await.expect("gateway loads");
        let running = gw.start().await.expect("gateway starts");
        TestGateway { link: self.link(running.addr), running, dir: self }
    }

    /// Starts an in-process gateway on this folder at `port` (a restart where it was).
    pub async fn start_on(self, port: u16) -> TestGateway {
        self.set_port(port);
        let gw = self.start().await;
        assert_eq!(gw.addr.port(), port);
        gw
    }

    /// Runs `thingate run` on this folder with `env`; returns it once it
    /// listens, and its address.
    pub fn spawn(&self, env: &[(&str, &str)]) -> (Proc, SocketAddr) {
        let mut p = Proc::spawn(self.run_command(env), None);
        let addr: SocketAddr = p.wait_line("listening on ", Duration::from_secs(20)).parse().unwrap();
        (p, addr)
    }

    /// The command `thingate run --config ThinGate.ini` with `env`.
    pub fn run_command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(bin("thingate"));
        cmd.arg("run").arg("--config").arg(self.ini()).envs(env.iter().copied());
        cmd
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

    /// A link to a gateway at `addr` through the proxy `proxy` (`http://...`, `socks5://...`).
    pub fn link_via(&self, addr: SocketAddr, proxy: &str) -> Link {
        let ep = EntryPoint::load(&self.entry_point(addr)).unwrap();
        Link::new(ep, Some(ProxySetting::parse(proxy).unwrap())).unwrap()
    }
}

/// A gateway running in-process on a [`GateDir`], with a link to it. Derefs
/// to the [`RunningGateway`] (`addr`, `gateway`).
pub struct TestGateway {
    /// Its folder.
    pub dir: GateDir,
    /// A direct link to it.
    pub link: Link,
    running: RunningGateway,
}

impl std::ops::Deref for TestGateway {
    type Target = RunningGateway;
    fn deref(&self) -> &RunningGateway {
        &self.running
    }
}

impl TestGateway {
    /// A gateway with the test defaults (see [`GateDir::new`]).
    pub async fn start() -> Self {
        GateDir::new("").start().await
    }

    /// A gateway with `extra` lines in its ThinGate.ini.
    pub async fn with_ini(extra: &str) -> Self {
        GateDir::new(extra).start().await
    }

    /// The gateway's state, for counters and registries.
    pub fn state(&self) -> Arc<Gateway> {
        self.running.gateway.clone()
    }

    /// Its CA certificate (PEM), for HTTPS requests.
    pub fn ca(&self) -> &str {
        &self.dir.pki.ca_pem
    }

    /// `GET path` over HTTPS; (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        crate::https::get(self.addr, self.ca(), path).await
    }

    /// Path of EntryPoint.dat for this gateway (for the binaries).
    pub fn entry_point(&self) -> PathBuf {
        self.dir.entry_point(self.addr)
    }

    /// A link to this gateway through `proxy`.
    pub fn link_via(&self, proxy: &str) -> Link {
        self.dir.link_via(self.addr, proxy)
    }

    /// Office PCs online at the gateway now (rows of `/thinstat/`).
    pub fn sessions(&self) -> usize {
        thingate::thinstat::rows(&self.running.gateway.sessions).len()
    }

    /// Waits until `n` office PCs are online.
    pub async fn wait_sessions(&self, what: &str, n: usize, within: Duration) {
        let gw = self.state();
        crate::wait_for(what, within, || {
            let now = thingate::thinstat::rows(&gw.sessions).len();
            async move { (now == n).then_some(()) }
        })
        .await;
    }

    /// Waits (up to 5 s) until the gateway counts `n` connections from `ip`.
    pub async fn wait_connections_from(&self, what: &str, ip: std::net::IpAddr, n: usize) {
        let gw = self.state();
        crate::wait_for(what, Duration::from_secs(5), || {
            let now = gw.limits.connections_from(ip);
            async move { (now == n).then_some(()) }
        })
        .await;
    }

    /// An office PC registered as `pcid` with `password` and serving an echo
    /// target; options on the builder, then `.await`.
    pub fn office_pc(&self, pcid: &str, password: &str) -> OfficePcBuilder {
        OfficePcBuilder::new(self.link.clone(), pcid, password)
    }

    /// Registers `pcid` with `password` from a new config folder (not serving).
    pub async fn register(&self, pcid: &str, password: &str) -> RegisteredPc {
        RegisteredPc::register(&self.link, pcid, password).await
    }

    /// A client connected to `pcid` with `password` (it must succeed).
    pub async fn connect(&self, pcid: &str, password: &str) -> ClientTunnel {
        connect(&self.link, pcid, password).await
    }

    /// A client's attempt to connect to `pcid` with `password`.
    pub async fn try_connect(&self, pcid: &str, password: &str) -> Result<ClientTunnel, ClientError> {
        try_connect(&self.link, pcid, password).await
    }

    /// Stops it (connections closed, database saved); the folder stays for a restart.
    pub async fn shutdown(self) -> GateDir {
        self.running.shutdown().await;
        self.dir
    }

    /// Stops it and starts it again on the same port.
    pub async fn restart(self) -> Self {
        let port = self.addr.port();
        self.shutdown().await.start_on(port).await
    }
}

/// A client connected through `link` to `pcid` with `password` (it must succeed).
pub async fn connect(link: &Link, pcid: &str, password: &str) -> ClientTunnel {
    try_connect(link, pcid, password).await.unwrap_or_else(|e| panic!("connect to {pcid}: {e}"))
}

/// A client's attempt to connect through `link` to `pcid` with `password`.
pub async fn try_connect(link: &Link, pcid: &str, password: &str) -> Result<ClientTunnel, ClientError> {
    thin_tunnel::client_agent::connect(link, pcid, &Secret::new(password)).await
}

/// Echoes through a new stream of `t` (to an echo target); false when the
/// tunnel does not carry it within 10 s.
pub async fn echo_works(t: &ClientTunnel) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut st = t.open_stream().await.ok()?;
        st.write_all(b"hello through the tunnel").await.ok()?;
        let mut back = [0u8; 24];
        st.read_exact(&mut back).await.ok()?;
        Some(&back == b"hello through the tunnel")
    };
    matches!(tokio::time::timeout(Duration::from_secs(10), attempt).await, Ok(Some(true)))
}
