//! Wine for the Windows end-to-end tests: one fresh test prefix per test
//! binary (with a stand-in `bcryptprimitives.dll`, see
//! `tests/fixtures/wine/bcryptprimitives.c`), child processes that are killed
//! after a deadline. The long-running children, the echo target and the proxy
//! are the harness's (`thin_e2e::procs`, `thin_e2e::net`, `thin_e2e::proxies`). Nothing here waits with a fixed sleep: every wait polls for
//! what it needs until a deadline.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Time allowed for one short Wine command (install, `reg`, `--version`).
pub const SHORT: Duration = Duration::from_secs(120);

/// The test Wine prefix of this test binary.
pub struct Wine {
    /// `WINEPREFIX`.
    pub prefix: PathBuf,
    /// The X server of every Wine process of this prefix (`DISPLAY`). Wine
    /// binds its session's desktop to the display of its first process: with
    /// none, no window can open later in the session.
    pub xvfb: super::xvfb::Xvfb,
}

/// The prefix, made on first use: an old one is stopped and removed, a new
/// one booted (`wineboot -i`), the stand-in DLL compiled and copied into its
/// `system32`, and one user program kept running for the whole test run
/// (see [`keep_a_user_program_running`]).
pub fn wine() -> &'static Wine {
    static W: OnceLock<Result<Wine, String>> = OnceLock::new();
    let r = W.get_or_init(|| {
        std::panic::catch_unwind(init)
            .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "Wine set-up panicked".into()))
    });
    r.as_ref().unwrap_or_else(|e| panic!("Wine prefix set-up failed: {e}"))
}

/// Serialises the tests that change the prefix (installs, the per-user proxy
/// setting) or need the gateway's fixed port; hold it for the whole test.
pub fn lock() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

fn init() -> Wine {
    for (tool, pkg) in
        [("wine", "wine wine64"), ("wineserver", "wine wine64"), ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64")]
    {
        assert!(
            thin_e2e::procs::on_path(tool),
            "{tool} is not on PATH; the Windows e2e tests need it: apt-get install {pkg}"
        );
    }
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-wine");
    let w = Wine { prefix: root.join("prefix"), xvfb: super::xvfb::Xvfb::start() };
    if w.prefix.exists() {
        let _ = output(w.cmd("wineserver").arg("-k"), None, Duration::from_secs(30));
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&w.prefix).unwrap();
    let t = Instant::now();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wine");
    let dll = root.join("bcryptprimitives.dll");
    let o = output(
        Command::new("x86_64-w64-mingw32-gcc")
            .args(["-O2", "-shared", "-s", "-o"])
            .arg(&dll)
            .arg(fixtures.join("bcryptprimitives.c"))
            .arg(fixtures.join("bcryptprimitives.def"))
            .arg("-lbcrypt"),
        None,
        SHORT,
    );
    assert!(o.status.success(), "compiling the stand-in bcryptprimitives.dll: {}", text(&o));
    let o = output(w.cmd("wineboot").arg("-i"), None, Duration::from_secs(300));
    let system32 = w.prefix.join("drive_c/windows/system32");
    assert!(system32.join("kernel32.dll").exists(), "wineboot -i made no prefix: {}", text(&o));
    std::fs::copy(&dll, system32.join("bcryptprimitives.dll")).unwrap();
    // End the boot's session before the tests' one starts: a program started
    // while it winds down gets a second services.exe in the same session,
    // and then every StartService fails (ERROR_SERVICE_DATABASE_LOCKED).
    let _ = output(w.cmd("wineserver").arg("-k"), None, SHORT);
    let _ = output(w.cmd("wineserver").arg("-w"), None, SHORT);
    keep_a_user_program_running(&w, &fixtures, &root);
    stop_wine_when_this_process_ends(&w);
    eprintln!("Wine prefix ready in {:.0} s", t.elapsed().as_secs_f64());
    w
}

/// Starts `keepalive.exe` (`tests/fixtures/wine/keepalive.c`), which waits
/// forever, as the first program of a fresh session: with one user program
/// always running, the Wine session and the services it started live as long
/// as the tests, as they would on a PC with a user logged on. Without it the
/// session ends soon after the last `wine` command, and the next one starts
/// and stops every auto-start service of the prefix, so a service may be down
/// when a test looks for it, or restarted by each `wine sc query` (a service
/// then seems to run but never answers). The watcher's `wineserver -k` ends
/// it with the tests.
fn keep_a_user_program_running(w: &Wine, fixtures: &Path, root: &Path) {
    let exe = root.join("keepalive.exe");
    let o = output(
        Command::new("x86_64-w64-mingw32-gcc").args(["-O2", "-s", "-o"]).arg(&exe).arg(fixtures.join("keepalive.c")),
        None,
        SHORT,
    );
    assert!(o.status.success(), "compiling keepalive.exe: {}", text(&o));
    let spawned =
        w.wine(&[&exe.to_string_lossy()]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let mut child = spawned.unwrap_or_else(|e| panic!("cannot start keepalive.exe under Wine: {e}"));
    // It must still be running a moment later (a missing DLL ends it at once).
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("keepalive.exe ended at once under Wine: {s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Reaped by nobody: it lives until `wineserver -k` when the tests end.
    std::mem::forget(child);
    // The session's service manager answers once it has started its services.
    w.wait_until("the service manager of the tests' Wine session", SHORT, || {
        w.run(&["sc", "query", "PlugPlay"]).status.success()
    });
}

/// The installed ThinServer services keep the prefix's wineserver alive after
/// the tests; a small watcher stops it once this test process has exited.
fn stop_wine_when_this_process_ends(w: &Wine) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {}; exec wineserver -k",
        std::process::id(),
        w.xvfb.pid()
    );
    let spawned =
        w.cmd("sh").arg("-c").arg(script).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    if let Err(e) = spawned {
        eprintln!("cannot start the wineserver watcher: {e}");
    }
}

impl Wine {
    /// `program` (`wine`, `wineserver`, `wineboot`) with the prefix's
    /// environment: quiet, no Gecko/Mono prompts, its own X server, English, and
    /// no proxy variables (they would outrank the Internet Options).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("LANG", "en_US.UTF-8")
            .env("LC_ALL", "en_US.UTF-8")
            .env("DISPLAY", &self.xvfb.display)
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("THIN_LANG")
            .env_remove("RUST_LOG");
        for v in
            ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"]
        {
            c.env_remove(v);
        }
        c
    }

    /// `wine ARGS...`, ready to run.
    pub fn wine(&self, args: &[&str]) -> Command {
        let mut c = self.cmd("wine");
        c.args(args);
        c
    }

    /// Runs `wine ARGS...` to its end (killed after [`SHORT`]).
    pub fn run(&self, args: &[&str]) -> Output {
        output(&mut self.wine(args), None, SHORT)
    }

    /// Runs `wine ARGS...` and asserts exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "wine {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A path under the prefix's `C:` drive (`"Program Files/E2eWin"`).
    pub fn c(&self, rel: &str) -> PathBuf {
        self.prefix.join("drive_c").join(rel)
    }

    /// `reg query KEY` output, or `None` when the key does not exist. A `reg`
    /// that fails any other way (a Wine process that dies at start on a
    /// loaded machine) is run again, and after three tries is a panic: it
    /// must not read as "the key is absent".
    pub fn reg_query(&self, key: &str) -> Option<String> {
        let mut last = String::new();
        for _ in 0..3 {
            let o = self.run(&["reg", "query", key]);
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            if o.status.success() {
                return Some(out);
            }
            if out.contains("Unable to find the specified registry key") {
                return None;
            }
            last = text(&o);
        }
        panic!("reg query {key} failed three times: {last}")
    }

    /// Polls `done` (every 100 ms) until it holds; panics with `what` after `limit`.
    pub fn wait_until(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {} s", limit.as_secs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// stdout and stderr of an output, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn drain(r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut r = r;
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `cmd` to its end with `stdin` written to it; kills it and panics
/// with what it printed if it takes longer than `limit`.
pub fn output(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(data);
    }
    let (out, err) = (drain(child.stdout.take().unwrap()), drain(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let o = Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
            panic!("{cmd:?} did not end within {} s, killed: {}", limit.as_secs(), text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A grandchild (wineserver) may hold the pipes; do not wait for it.
    let take = |h: std::thread::JoinHandle<Vec<u8>>| {
        let end = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap()
        } else {
            Vec::new()
        }
    };
    Output { status, stdout: take(out), stderr: take(err) }
}
