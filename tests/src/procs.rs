//! Running the real binaries (`thingate`, `thinsvr`, `thinclient`) built in the
//! same target folder as the tests (`cargo build --workspace --bins` first).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of a workspace binary next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` before the tests", p.display());
    p
}

/// Resident memory of process `pid`, in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// `thinsvr --entry-point EP --config-dir CFG ARGS`.
pub fn thinsvr(ep: &Path, cfg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin("thinsvr"));
    // The runner's display is not the office PC's desktop: a test that
    // wants the built-in desktop sets DISPLAY itself.
    c.arg("--entry-point").arg(ep).arg("--config-dir").arg(cfg).args(args).env_remove("DISPLAY");
    c
}

/// `thinclient --entry-point EP connect PCID --password-stdin --no-launch`.
pub fn thinclient_connect(ep: &Path, pcid: &str) -> Command {
    let mut c = Command::new(bin("thinclient"));
    c.arg("--entry-point").arg(ep).args(["connect", pcid, "--password-stdin", "--no-launch"]);
    c
}

/// A long-running child (`thingate`, `thinsvr run`, `thinclient connect`, an
/// app under Wine): stdout read line by line, stderr kept for messages;
/// killed on drop. Every wait polls with a deadline and, when it fails, panics
/// with what the child printed.
pub struct Proc {
    /// The child.
    pub child: Child,
    name: String,
    lines: mpsc::Receiver<String>,
    /// Lines read so far.
    pub seen: Vec<String>,
    /// Stderr so far (empty when it goes elsewhere).
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Starts `cmd` (named `name` in messages), writes `stdin` to it and closes it.
    pub fn start(name: &str, cmd: &mut Command, stdin: Option<&[u8]>) -> Self {
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let _ = pipe.write_all(data);
        }
        let lines = stdout_lines(&mut child);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (mut err, keep) = (child.stderr.take().unwrap(), stderr.clone());
        let stderr_done = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                keep.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, name: name.to_string(), lines, seen: Vec::new(), stderr, stderr_done: Some(stderr_done) }
    }

    /// Spawns `cmd`; writes `stdin` and closes it.
    pub fn spawn(mut cmd: Command, stdin: Option<&str>) -> Self {
        let name = cmd.get_program().to_string_lossy().into_owned();
        Self::start(&name, &mut cmd, Some(stdin.unwrap_or("").as_bytes()))
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
        let name = cmd.get_program().to_string_lossy().into_owned();
        let p = Self { child, name, lines, seen: Vec::new(), stderr: Default::default(), stderr_done: None };
        (p, input)
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Stderr so far without the terminal's colours (`tracing` colours a
    /// log's field names and `=`), so that `field=value` can be matched.
    pub fn stderr_plain(&self) -> String {
        let text = self.stderr();
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // ESC [ parameters m: skip through the final `m`.
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// What it printed so far and whether it still runs, for messages.
    pub fn report(&mut self) -> String {
        let state = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited ({s})"),
            _ => "still running".into(),
        };
        self.seen.extend(self.lines.try_iter());
        format!("{} {state}\nstdout:\n{}\nstderr:\n{}", self.name, self.seen.join("\n"), self.stderr())
    }

    /// Waits for a stdout line starting with `prefix` (also among the lines
    /// already read); returns the rest of it.
    pub fn wait_line(&mut self, prefix: &str, within: Duration) -> String {
        self.try_wait_line(prefix, within).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Proc::wait_line`], with what went wrong (it exited, or the time
    /// passed) as an error rather than a panic, for callers that retry.
    pub fn try_wait_line(&mut self, prefix: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
                return Ok(l[prefix.len()..].trim().to_string());
            }
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("no `{prefix}` line within {} s: {}", within.as_secs(), self.report()))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Let stderr arrive before reporting.
                    let end = Instant::now() + Duration::from_secs(2);
                    while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    return Err(format!("no `{prefix}` line before stdout closed: {}", self.report()));
                }
            }
        }
    }

    /// Waits until its stderr contains `text` (a GUI app's `thin-gui: ready`);
    /// panics with its output if it exits first or after `within`.
    pub fn wait_stderr(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.stderr().contains(text) {
                return;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                // Let the rest of stderr arrive before reporting.
                std::thread::sleep(Duration::from_millis(200));
                if self.stderr().contains(text) {
                    return;
                }
                panic!("no `{text}` on stderr before it exited: {}", self.report());
            }
            if Instant::now() >= deadline {
                panic!("no `{text}` on stderr within {} s: {}", within.as_secs(), self.report());
            }
            std::thread::sleep(Duration::from_millis(10));
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
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // All of stderr, unless a grandchild still holds the pipe.
                if let Some(h) = self.stderr_done.take() {
                    let end = Instant::now() + Duration::from_secs(5);
                    while !h.is_finished() && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return (st, self.stderr());
            }
            assert!(Instant::now() < deadline, "process did not exit within {within:?}: {}", self.report());
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
