//! A real `etcd` (Debian's `etcd-server`) for tests: free ports found by
//! binding port 0 (etcd cannot take port 0 itself), a temp data dir,
//! readiness polled on `/health` with a deadline, killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer `/health`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A single-member etcd cluster on loopback.
pub struct EtcdServer {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`, for `ClusterEtcdEndpoints`.
    pub url: String,
}

impl EtcdServer {
    /// Starts etcd and waits until it is healthy; retries with other ports when
    /// one was taken between finding it and etcd binding it.
    pub fn start() -> EtcdServer {
        let bin = std::env::var_os("THIN_ETCD").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/etcd".into());
        assert!(
            bin.exists(),
            "{} not found: install Debian's etcd-server (scripts/setup.sh), or set THIN_ETCD",
            bin.display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            let (client, peer) = (free_port(), free_port());
            let dir = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
            let (curl, purl) = (format!("http://127.0.0.1:{client}"), format!("http://127.0.0.1:{peer}"));
            let child = Command::new(&bin)
                .args(["--name", "t", "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &curl, "--advertise-client-urls", &curl])
                .args(["--listen-peer-urls", &purl, "--initial-advertise-peer-urls", &purl])
                .args(["--initial-cluster", &format!("t={purl}"), "--initial-cluster-state", "new"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut server = EtcdServer { child, dir, url: curl };
            match server.wait_healthy(client) {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start: {last}");
    }

    fn wait_healthy(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("etcd exited ({status}): {}", self.log()));
            }
            if health(port).is_some_and(|body| body.contains("\"health\":\"true\"")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no healthy answer within {READY_WITHIN:?}: {}", self.log()))
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The process id (to stop and continue it).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The body of `GET /health`, if etcd answers.
fn health(port: u16) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
