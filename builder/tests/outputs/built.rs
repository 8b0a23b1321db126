//! The one real build every end-to-end test reads, made once per test run:
//! `builder new` and a cold `builder build --target all` (Windows installers,
//! the Linux gateway and apps bundles) of E2eWin; a warm, signed rebrand
//! (E2eSig, `--target windows --sign`); and E2eWin built again, which must give
//! the same bytes. The Linux packaging tests reuse E2eWin's outputs instead of
//! compiling a brand of their own.

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
    /// The gateway port compiled into E2eWin (`https://127.0.0.1:PORT/thingate/`).
    pub port: u16,
    /// What `builder --json build` printed for E2eWin.
    pub json: serde_json::Value,
}

/// The texts the E2eWin brand's English patch gives `APP_WELCOME` (shown in
/// ThinClient's window) and `APP_VERSION_LINE`.
pub const PATCHED_WELCOME: &str = "This welcome text comes from the brand patch";
/// E2eWin's system name.
pub const SYSTEM: &str = "E2E Wine System";
const PATCHED_VERSION: &str = "APP_VERSION_LINE\tE2E-PATCHED %PRODUCT% {0} [%APPID% / %SYSTEM%]\n";

fn builder(root: &Path, args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let o =
        Command::new(common::builder_bin()).args(args).current_dir(root).envs(envs.iter().cloned()).output().unwrap();
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

fn make() -> Built {
    // The Wine prefix boots while the apps compile.
    std::thread::spawn(|| std::panic::catch_unwind(wine::wine));
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-windows");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // The gateway URL is compiled into the apps, so its port is chosen now and
    // the gateway bundle listens there later.
    let port = thin_e2e::free_port();
    let url = format!("https://127.0.0.1:{port}/thingate/");
    let new_a = ["new", "--app-id", "E2eWin", "--dir", "a", "--rpc-port", "9911", "--system-name", SYSTEM];
    builder(&root, &[&new_a[..], &["--gateway-url", &url]].concat(), &[]);
    std::fs::write(
        root.join("a/strtable_en.patch.stb"),
        format!("# e2e patch\nAPP_TITLE_CLIENT\t%PRODUCT% Home\nAPP_WELCOME\t{PATCHED_WELCOME}\n{PATCHED_VERSION}"),
    )
    .unwrap();
    let all = ["build", "--brand", "a", "--target", "all", "--linux-arch", "x86_64", "--out"];
    let t = Instant::now();
    let o = builder(&root, &[&["--json"][..], &all, &["out-a"]].concat(), &[]);
    let json = serde_json::from_slice(&o.stdout).expect("builder --json prints JSON");
    eprintln!("build --target all (E2eWin): {:.0} s", t.elapsed().as_secs_f64());
    builder(&root, &["new", "--app-id", "E2eSig", "--dir", "s", "--rpc-port", "9912", "--self-signed-codesign"], &[]);
    let pw = std::fs::read_to_string(root.join("s/certs/codesign.password")).unwrap();
    let t = Instant::now();
    builder(
        &root,
        &["build", "--brand", "s", "--target", "windows", "--sign", "--out", "out-s"],
        &[("THIN_CODESIGN_PASSWORD_E2ESIG", pw)],
    );
    eprintln!("warm rebrand, signed (E2eSig): {:.0} s", t.elapsed().as_secs_f64());
    builder(&root, &[&all[..], &["out-a2"]].concat(), &[]);
    Built {
        brand: root.join("a"),
        a: root.join("out-a"),
        a_again: root.join("out-a2"),
        signed: root.join("out-s"),
        signed_brand: root.join("s"),
        port,
        json,
    }
}
