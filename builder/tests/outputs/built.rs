//! The one real build every end-to-end test reads, made once per test run:
//! `builder new` and a cold `builder build --target all` (Windows installers,
//! separate ThinClient and ThinServer ones by default; the Linux gateway
//! bundles for x86_64 and aarch64 and the apps bundle) of E2eWin, its build 1; a warm, signed rebrand (E2eSig,
//! `--target windows --sign --installers both`, its build 1); E2eWin built
//! again with `--build-number 1`, which must give the same bytes; and E2eSig's
//! build 2 (the same version, only the build number changed), which the
//! upgrade tests install over build 1. The Linux packaging tests reuse E2eWin's outputs instead of
//! compiling a brand of their own. The brands are made, and the last two
//! builds run, under the permissive umask 002, and a watcher scans every folder
//! the builder writes while they run, for a private key others could read.

use super::common::{self, wine};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// What the shared build made.
pub struct Built {
    /// E2eWin's brand folder (`builder new`'s, with the patch below).
    pub brand: PathBuf,
    /// E2eWin's outputs.
    pub a: PathBuf,
    /// E2eWin built again into another folder.
    pub a_again: PathBuf,
    /// E2eSig's signed outputs.
    pub signed: PathBuf,
    /// E2eSig's brand folder.
    pub signed_brand: PathBuf,
    /// E2eSig's build 2 (unsigned, separate installers).
    pub next: PathBuf,
    /// Seconds E2eSig's build 2 took (warm: only the apps' crate is rebuilt).
    pub next_secs: f64,
    /// The gateway port compiled into E2eWin (`https://127.0.0.1:PORT/thingate/`).
    pub port: u16,
    /// What `builder --json build` printed for E2eWin.
    pub json: serde_json::Value,
    /// Folders the builds wrote: the brands and outputs, and the builder's stage.
    pub written: Vec<PathBuf>,
    /// Private keys others could read, seen while the builds ran (see `common::key_exposures`).
    pub exposed_during: Vec<String>,
    /// How many scans the watcher made while the builds ran.
    pub scans: usize,
}

/// The texts the E2eWin brand's English patch gives `APP_WELCOME` (shown in
/// ThinClient's window) and `APP_VERSION_LINE`.
pub const PATCHED_WELCOME: &str = "This welcome text comes from the brand patch";
/// E2eWin's system name.
pub const SYSTEM: &str = "E2E Wine System";
const PATCHED_VERSION: &str = "APP_VERSION_LINE\tE2E-PATCHED %PRODUCT% {0} build {1} [%APPID% / %SYSTEM%]\n";

fn builder(root: &Path, args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    builder_umask(root, args, envs, None)
}

/// `builder ARGS`, under `umask` when given (a file the builder does not
/// create with its mode from the start then comes out readable by others).
fn builder_umask(root: &Path, args: &[&str], envs: &[(&str, String)], umask: Option<&str>) -> std::process::Output {
    let mut cmd = match umask {
        Some(u) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("umask {u} && exec \"$0\" \"$@\"")).arg(common::builder_bin());
            c
        }
        None => Command::new(common::builder_bin()),
    };
    let o = cmd.args(args).current_dir(root).envs(envs.iter().cloned()).output().unwrap();
    assert!(
        o.status.success(),
        "builder {args:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The shared build; a failed build fails every test without being retried.
pub fn built() -> &'static Built {
    static B: OnceLock<Result<Built, String>> = OnceLock::new();
    let r = B.get_or_init(|| {
        std::panic::catch_unwind(make)
            .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "the build panicked".into()))
    });
    r.as_ref().unwrap_or_else(|e| panic!("shared build failed: {e}"))
}

/// Scans `dirs` for exposed private keys until dropped; keeps what it saw.
struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Vec<String>, usize)>>,
}

impl Watcher {
    fn start(dirs: Vec<PathBuf>) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut seen, mut scans) = (std::collections::BTreeSet::new(), 0);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for d in &dirs {
                    seen.extend(common::key_exposures(d));
                }
                scans += 1;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            (seen.into_iter().collect(), scans)
        });
        Self { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> (Vec<String>, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().expect("running").join().expect("the watcher does not panic")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // A failed build: stop scanning.
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `target/builder-timings.log`: what the shared build's steps took, which
/// `scripts/test.sh` prints after the tests (libtest keeps a passing test's
/// output to itself).
fn timings_log() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("builder-timings.log")
}

/// One line of [`timings_log`], also on stderr.
fn timing(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(timings_log());
    if let Ok(mut f) = log {
        let _ = writeln!(f, "{line}");
    }
}

fn make() -> Built {
    let _ = std::fs::remove_file(timings_log());
    // The Wine prefix boots while the apps compile.
    std::thread::spawn(|| std::panic::catch_unwind(wine::wine));
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-windows");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let builder_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("builder");
    let written = vec![root.clone(), builder_dir.join("stage"), builder_dir.join("codesign")];
    let watcher = Watcher::start(written.clone());
    // The gateway URL is compiled into the apps, so its port is chosen now and
    // the gateway bundle listens there later.
    let port = thin_e2e::free_port();
    let url = format!("https://127.0.0.1:{port}/thingate/");
    let new_a = ["new", "--app-id", "E2eWin", "--dir", "a", "--rpc-port", "9911", "--system-name", SYSTEM];
    builder_umask(&root, &[&new_a[..], &["--gateway-url", &url]].concat(), &[], Some("002"));
    std::fs::write(
        root.join("a/strtable_en.patch.stb"),
        format!("# e2e patch\nAPP_TITLE_CLIENT\t%PRODUCT% Home\nAPP_WELCOME\t{PATCHED_WELCOME}\n{PATCHED_VERSION}"),
    )
    .unwrap();
    let all = ["build", "--brand", "a", "--target", "all", "--linux-arch", "x86_64,aarch64", "--out"];
    let t = Instant::now();
    let o = builder(&root, &[&["--json"][..], &all, &["out-a"]].concat(), &[]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("builder --json prints JSON");
    timing(&format!("build --target all (E2eWin): {:.0} s", t.elapsed().as_secs_f64()));
    // Each step's time, for CI's log (what each compile costs).
    for step in json["steps"].as_array().into_iter().flatten() {
        timing(&format!("  {:>7.1} s  {}", step[1].as_f64().unwrap_or(0.0), step[0].as_str().unwrap_or("?")));
    }
    let new_s = ["new", "--app-id", "E2eSig", "--dir", "s", "--rpc-port", "9912", "--self-signed-codesign"];
    builder_umask(&root, &new_s, &[], Some("002"));
    let pw = std::fs::read_to_string(root.join("s/certs/codesign.password")).unwrap();
    let t = Instant::now();
    builder_umask(
        &root,
        &["build", "--brand", "s", "--target", "windows", "--sign", "--installers", "both", "--out", "out-s"],
        &[("THIN_CODESIGN_PASSWORD_E2ESIG", pw)],
        Some("002"),
    );
    timing(&format!("warm rebrand, signed (E2eSig): {:.0} s", t.elapsed().as_secs_f64()));
    builder_umask(&root, &[&all[..], &["out-a2", "--build-number", "1"]].concat(), &[], Some("002"));
    let t = Instant::now();
    builder_umask(&root, &["build", "--brand", "s", "--target", "windows", "--out", "out-s2"], &[], Some("002"));
    let next_secs = t.elapsed().as_secs_f64();
    timing(&format!("build 2 of the same version, warm (E2eSig): {next_secs:.0} s"));
    let (exposed_during, scans) = watcher.finish();
    Built {
        brand: root.join("a"),
        a: root.join("out-a"),
        a_again: root.join("out-a2"),
        signed: root.join("out-s"),
        signed_brand: root.join("s"),
        next: root.join("out-s2"),
        next_secs,
        port,
        json,
        written,
        exposed_during,
        scans,
    }
}
