//! A real etcd for the cluster edition's tests. The helper itself lives with
//! the gateway's registry tests (`gateway/tests/support/etcd_server.rs`) and
//! is compiled here too, so there is one copy of it. [`GatewayCluster`] adds
//! gateways: `thingate run` processes, members of one cluster on a
//! three-member etcd, sharing one CA, each at `https://127.0.0.1:PORT/`.

#[path = "../../gateway/tests/support/etcd_server.rs"]
mod etcd_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use etcd_server::{EtcdCluster, EtcdServer};
use thin_protocol::entry_point::EntryPoint;
use thin_tunnel::link::Link;

use crate::gateway::GateDir;
use crate::procs::Proc;
use crate::Pki;

/// The value of the line `key value` of a `/thinstat/` text body.
pub fn stat_field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

/// The gateway URL `/thinstat/`'s cluster lines give for computer `pcid`.
pub fn stat_gateway_of<'a>(body: &'a str, pcid: &str) -> Option<&'a str> {
    let i = body.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (v == pcid).then_some(k.strip_prefix("ClusterOnlinePcid")?)
    })?;
    stat_field(body, &format!("ClusterOnlineGateway{i}"))
}

/// `ThinGate.ini` lines that make a gateway a member of cluster `name` on
/// `etcd`, reached at `https://gwN.test/`.
pub fn member_ini(etcd: &EtcdServer, name: &str, n: usize) -> String {
    format!(
        "StandaloneMode 0\nClusterEtcdEndpoints {}\nClusterPublicUrl https://gw{n}.test/\nClusterName {name}\n\
         ClusterLeaseTtl 2000\nClusterEtcdTimeout 1000",
        etcd.url
    )
}

/// One member gateway of a [`GatewayCluster`]: its folder and process.
pub struct Member {
    /// Its folder (ini, certificate, logs).
    pub dir: GateDir,
    /// The running `thingate run`, until killed.
    pub proc: Option<Proc>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Member {
    /// Its `ClusterPublicUrl`.
    pub fn url(&self) -> String {
        format!("https://{}/thingate/", self.addr)
    }
}

/// Gateways that are members of one cluster on a three-member etcd.
pub struct GatewayCluster {
    /// The etcd members.
    pub etcd: EtcdCluster,
    /// The CA and the certificate every member serves.
    pub pki: Arc<Pki>,
    /// The gateways.
    pub members: Vec<Member>,
    /// Entry point files for the binaries.
    files: tempfile::TempDir,
}

impl GatewayCluster {
    /// Starts a three-member etcd and `n` gateways in cluster `name`.
    pub fn start(name: &str, n: usize) -> GatewayCluster {
        let etcd = EtcdCluster::start();
        let pki = Arc::new(Pki::new());
        let members = (0..n).map(|_| start_member(&etcd, &pki, name)).collect();
        GatewayCluster { etcd, pki, members, files: tempfile::tempdir().unwrap() }
    }

    /// A link whose entry point lists the gateways `order` in that order.
    pub fn link(&self, order: &[usize]) -> Link {
        let urls: Vec<String> = order.iter().map(|i| self.members[*i].url()).collect();
        let text = EntryPoint::render(&self.pki.ca_pem, &urls.join(", "), "Cluster Test");
        let ep = EntryPoint::parse(&text, "cluster EntryPoint.dat").unwrap();
        Link::new(ep, None).unwrap()
    }

    /// An `EntryPoint.dat` for the binaries listing the gateways `order`, one
    /// URL per line.
    pub fn entry_point(&self, order: &[usize]) -> std::path::PathBuf {
        let urls: Vec<String> = order.iter().map(|i| self.members[*i].url()).collect();
        let name: String = order.iter().map(|i| i.to_string()).collect();
        let p = self.files.path().join(format!("EntryPoint-{name}.dat"));
        std::fs::write(&p, EntryPoint::render(&self.pki.ca_pem, &urls.join("\n"), "Cluster Test")).unwrap();
        p
    }

    /// Kills gateway `i` (SIGKILL: no goodbye to etcd or to the office PCs).
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.members[i].proc.take() {
            p.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = p.finish(Duration::from_secs(10));
        }
    }

    /// `GET /metrics` of gateway `i`: the value of counter `name`.
    pub async fn counter(&self, i: usize, name: &str) -> u64 {
        let (status, body) = crate::https::get(self.members[i].addr, &self.pki.ca_pem, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics: {body}"))
    }

    /// `GET /thinstat/` (with `query`, e.g. `?format=json`) of gateway `i`: the body.
    pub async fn thinstat(&self, i: usize, query: &str) -> String {
        let (status, body) =
            crate::https::get(self.members[i].addr, &self.pki.ca_pem, &format!("/thinstat/{query}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `thingate status --config` gateway `i`'s ini: (exit code, stdout and stderr).
    pub async fn status(&self, i: usize) -> (Option<i32>, String) {
        let ini = self.members[i].dir.ini();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::procs::bin("thingate"))
                .arg("status")
                .arg("--config")
                .arg(ini)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    }

    /// What gateway `i` printed, for messages.
    pub fn report(&mut self, i: usize) -> String {
        self.members[i].proc.as_mut().map(|p| p.report()).unwrap_or_else(|| "killed".into())
    }
}

/// Starts one member on a free port (found by binding port 0, because its
/// public URL names the port); another port when that one was taken meanwhile.
fn start_member(etcd: &EtcdCluster, pki: &Arc<Pki>, name: &str) -> Member {
    let mut last = String::new();
    for _ in 0..3 {
        let port = crate::free_port();
        let ini = format!(
            "ListenPort {port}\nStandaloneMode 0\nClusterEtcdEndpoints {}\n\
             ClusterPublicUrl https://127.0.0.1:{port}/thingate/\nClusterName {name}\n\
             ClusterLeaseTtl 3000\nClusterEtcdTimeout 3000",
            etcd.endpoints()
        );
        let dir = GateDir::with_pki(pki.clone(), &ini);
        let mut proc = Proc::spawn(dir.run_command(&[("RUST_LOG", "info")]), None);
        match proc.try_wait_line("listening on ", Duration::from_secs(30)) {
            Ok(addr) => {
                let addr: SocketAddr = addr.parse().unwrap();
                assert_eq!(addr.port(), port);
                return Member { dir, proc: Some(proc), addr };
            }
            Err(e) => last = e,
        }
    }
    panic!("a cluster member did not start: {last}");
}
