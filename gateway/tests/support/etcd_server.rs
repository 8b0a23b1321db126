//! A real `etcd` (Debian's `etcd-server`) for tests: free ports found by
//! binding port 0 (etcd cannot take port 0 itself), a temp data dir,
//! readiness polled on `/health` with a deadline, killed on drop. One member
//! ([`EtcdServer`]) or a three-member cluster ([`EtcdCluster`]) whose leader
//! the tests find and kill.
//!
//! A port found free can be taken by another test's etcd before this one
//! binds it; the etcd that lost the race exits, but the one that won answers
//! `/health` on that port. So every etcd gets names no other test uses, and
//! readiness also asks the member list for them: an answer from someone
//! else's etcd is not this one being ready.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long etcd may take to answer `/health`.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A single-member etcd cluster on loopback.
pub struct EtcdServer {
    child: Child,
    dir: tempfile::TempDir,
    /// The member's name, unique to this etcd.
    name: String,
    /// `http://127.0.0.1:PORT`, for `ClusterEtcdEndpoints`.
    pub url: String,
}

impl EtcdServer {
    /// Starts etcd and waits until it is healthy; retries with other ports when
    /// one was taken between finding it and etcd binding it.
    pub fn start() -> EtcdServer {
        let bin = etcd_bin();
        let mut last = String::new();
        for _ in 0..3 {
            let (client, peer) = (free_port(), free_port());
            let dir = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
            let (curl, purl) = (format!("http://127.0.0.1:{client}"), format!("http://127.0.0.1:{peer}"));
            let tag = unique_tag();
            let name = format!("t-{tag}");
            let child = Command::new(&bin)
                .args(["--name", &name, "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &curl, "--advertise-client-urls", &curl])
                .args(["--listen-peer-urls", &purl, "--initial-advertise-peer-urls", &purl])
                .args(["--initial-cluster", &format!("{name}={purl}"), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &format!("thin-test-{tag}")])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut server = EtcdServer { child, dir, name, url: curl };
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
            if healthy_and_named(port, &self.name) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no healthy answer within {READY_WITHIN:?}: {}", self.log()))
    }

    /// Whether the etcd answering at `url` (`http://127.0.0.1:PORT`) is this
    /// one: healthy, with this one's member name.
    pub fn answers_at(&self, url: &str) -> bool {
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("http://127.0.0.1:PORT");
        healthy_and_named(port, &self.name)
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Stops etcd (SIGSTOP) and returns once every thread of it is stopped.
    pub fn pause(&self) {
        pause(self.pid());
    }

    /// Lets a paused etcd run again (SIGCONT).
    pub fn resume(&self) {
        resume(self.pid());
    }

    /// Its data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The etcd binary: `THIN_ETCD`, or Debian's.
fn etcd_bin() -> PathBuf {
    let bin = std::env::var_os("THIN_ETCD").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/etcd".into());
    assert!(
        bin.exists(),
        "{} not found: install Debian's etcd-server (scripts/setup.sh), or set THIN_ETCD",
        bin.display()
    );
    bin
}

/// One member of an [`EtcdCluster`].
struct Member {
    child: Option<Child>,
    client_port: u16,
    /// Its name, unique to this cluster.
    name: String,
    log: PathBuf,
}

/// A three-member etcd cluster on loopback (Raft with quorum 2), in one temp dir.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts three members and waits until each answers `/health` (which
    /// needs a leader); retries with other ports when one was taken.
    pub fn start() -> EtcdCluster {
        let bin = etcd_bin();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
            let tag = unique_tag();
            let names: Vec<String> = (0..3).map(|i| format!("m{i}-{tag}")).collect();
            let peers: Vec<String> =
                ports.iter().zip(&names).map(|((_, p), name)| format!("{name}=http://127.0.0.1:{p}")).collect();
            let members = ports
                .iter()
                .enumerate()
                .map(|(i, (client, peer))| {
                    let log = dir.path().join(format!("etcd-m{i}.log"));
                    let out = std::fs::File::create(&log).unwrap();
                    let (curl, purl) = (format!("http://127.0.0.1:{client}"), format!("http://127.0.0.1:{peer}"));
                    let child = Command::new(&bin)
                        .args(["--name", &names[i], "--data-dir"])
                        .arg(dir.path().join(format!("data-m{i}")))
                        .args(["--listen-client-urls", &curl, "--advertise-client-urls", &curl])
                        .args(["--listen-peer-urls", &purl, "--initial-advertise-peer-urls", &purl])
                        .args(["--initial-cluster", &peers.join(","), "--initial-cluster-state", "new"])
                        .args(["--initial-cluster-token", &format!("thin-test-{tag}")])
                        .args(["--logger", "zap", "--log-level", "warn"])
                        .stdin(Stdio::null())
                        .stdout(out.try_clone().unwrap())
                        .stderr(out)
                        .spawn()
                        .unwrap();
                    Member { child: Some(child), client_port: *client, name: names[i].clone(), log }
                })
                .collect();
            let mut cluster = EtcdCluster { members, dir };
            match cluster.wait_healthy() {
                Ok(()) => return cluster,
                Err(e) => last = e,
            }
        }
        panic!("the etcd cluster did not start: {last}");
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            for m in &mut self.members {
                if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                    return Err(format!("a member exited ({status}): {}", self.logs()));
                }
            }
            let healthy = self.members.iter().all(|m| healthy_and_named(m.client_port, &m.name));
            if healthy {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("no healthy cluster within {READY_WITHIN:?}: {}", self.logs()))
    }

    /// Every member's client URL, comma-separated (`ClusterEtcdEndpoints`).
    pub fn endpoints(&self) -> String {
        let urls: Vec<String> = self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client_port)).collect();
        urls.join(",")
    }

    /// The members' logs so far.
    pub fn logs(&self) -> String {
        let _ = &self.dir;
        self.members.iter().map(|m| std::fs::read_to_string(&m.log).unwrap_or_default()).collect::<Vec<_>>().join("\n")
    }

    /// The index of the member that is the Raft leader now, as the running
    /// members say (`/v3/maintenance/status`), polled until they agree.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            let status: Vec<Option<(String, String)>> =
                self.members.iter().map(|m| m.child.as_ref().and_then(|_| member_status(m.client_port))).collect();
            let leaders: Vec<&String> = status.iter().flatten().map(|(_, leader)| leader).collect();
            if let Some(first) = leaders.first().filter(|l| leaders.iter().all(|x| x == *l)) {
                if let Some(i) = status.iter().position(|s| s.as_ref().is_some_and(|(id, _)| id == *first)) {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the etcd members do not agree on a leader: {}", self.logs());
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process ids of the running members.
    pub fn pids(&self) -> Vec<i32> {
        self.members.iter().filter_map(|m| m.child.as_ref()).map(|c| c.id() as i32).collect()
    }

    /// Stops every running member (see [`pause`]).
    pub fn pause_all(&self) {
        self.pids().into_iter().for_each(pause);
    }

    /// Lets every running member run again.
    pub fn resume_all(&self) {
        self.pids().into_iter().for_each(resume);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Sends SIGSTOP to `pid` and waits until each of its threads is stopped.
///
/// `kill` returns before the process stops: the kernel wakes one thread to
/// take the signal and stop the others, and on a busy machine another etcd
/// thread, woken by a request, can serve it first (CI once saw a claim
/// succeed right after the SIGSTOP).
pub fn pause(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let deadline = Instant::now() + READY_WITHIN;
    while !all_threads_stopped(pid) {
        assert!(Instant::now() < deadline, "etcd {pid} did not stop within {READY_WITHIN:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGCONT to `pid`.
pub fn resume(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGCONT).unwrap();
}

/// Whether every thread of `pid` is in state `T` (stopped by a signal), from
/// `/proc/PID/task/*/stat`.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("T")
    })
}

/// A member's (id, leader id) from `POST /v3/maintenance/status`.
fn member_status(port: u16) -> Option<(String, String)> {
    let json = post_empty(port, "/v3/maintenance/status")?;
    let id = json["header"]["member_id"].as_str()?.to_string();
    let leader = json["leader"].as_str().filter(|l| *l != "0")?.to_string();
    Some((id, leader))
}

/// A tag no other etcd of this machine's tests has: the process and a count.
fn unique_tag() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed))
}

/// Whether the etcd on `port` is healthy and has a member named `name`
/// (`POST /v3/cluster/member/list`): it is the one this test started.
fn healthy_and_named(port: u16, name: &str) -> bool {
    if !health(port).is_some_and(|body| body.contains("\"health\":\"true\"")) {
        return false;
    }
    let members = post_empty(port, "/v3/cluster/member/list");
    members.is_some_and(|json| json["members"].as_array().is_some_and(|ms| ms.iter().any(|m| m["name"] == name)))
}

/// The JSON etcd answers to `POST path` with an empty request (`{}`).
fn post_empty(port: u16, path: &str) -> Option<serde_json::Value> {
    let req = format!("POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{{}}");
    let answer = http(port, &req)?;
    serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The body of `GET /health`, if etcd answers.
fn health(port: u16) -> Option<String> {
    http(port, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
}

/// etcd's whole answer to `request`, if it answers within 2 s.
fn http(port: u16, request: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
