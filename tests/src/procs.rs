//! Running the real binaries (`thingate`, `thinsvr`, `thinclient`) built in the
//! same target folder as the tests (`cargo build --workspace --bins` first).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of a workspace binary next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` before the tests", p.display());
    p
}

/// `thinsvr --entry-point EP --config-dir CFG ARGS`.
pub fn thinsvr(ep: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin("thinsvr"));
    c.arg("--entry-point").arg(ep).arg("--config-dir").arg(cfg).args(args);
    c
}

/// `thinclient --entry-point EP connect PCID --password-stdin --no-launch`.
pub fn thinclient_connect(ep: &Path, pcid: &str) -> Command {
    let mut c = Command::new(bin("thinclient"));
    c.arg("--entry-point").arg(ep).args(["connect", pcid, "--password-stdin", "--no-launch"]);
    c
}

/// A child process whose stdout lines are collected in the background; killed on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines read so far.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with piped stdin/stdout; writes `stdin` and closes it.
    pub fn spawn(mut cmd: Command, stdin: Option<&str>) -> Self {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let lines = stdout_lines(&mut child);
        Self { child, lines, seen: Vec::new() }
    }

    /// Spawns `cmd` with stdout lines collected, stderr appended to
    /// `stderr_file` (so that a chatty child never blocks on a full pipe), and
    /// stdin left open for the caller.
    pub fn spawn_interactive(mut cmd: Command, stderr_file: &std::path::Path) -> (Self, std::process::ChildStdin) {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(stderr_file).expect("stderr file");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::from(err));
        let mut child = cmd.spawn().expect("spawn");
        let input = child.stdin.take().unwrap();
        let lines = stdout_lines(&mut child);
        (Self { child, lines, seen: Vec::new() }, input)
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub fn wait_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
                return l[prefix.len()..].trim().to_string();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    let out = self.child.wait_with_output_lossy();
                    panic!(
                        "no line starting with {prefix:?} within {within:?}; stdout: {:?}; stderr: {out}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Collects the stdout lines that arrive within `wait` (at least one wait).
    pub fn poll_lines(&mut self, wait: Duration) {
        if let Ok(l) = self.lines.recv_timeout(wait) {
            self.seen.push(l);
            self.seen.extend(self.lines.try_iter());
        }
    }

    /// Sends `sig` (SIGTERM, SIGHUP, SIGKILL, ...).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for exit; returns (status, stderr).
    pub fn finish(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let err = self.child.wait_with_output_lossy();
                return (st, err);
            }
            assert!(std::time::Instant::now() < deadline, "process did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Collects the child's stdout lines on a thread of their own.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    lines
}

trait StderrLossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl StderrLossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when `tool` is a program on PATH.
pub fn on_path(tool: &str) -> bool {
    which::which(tool).is_ok()
}
