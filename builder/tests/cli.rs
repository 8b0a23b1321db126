//! The commands that need no compilation: `new`, `check`, `ca`, `doctor`,
//! the `--toolchain msvc` preflight, `--help`.

mod common;
use std::path::Path;
use std::process::{Command, Output};

fn builder(args: &[&str], cwd: &Path) -> Output {
    Command::new(common::builder_bin()).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn help_lists_the_commands() {
    let o = builder(&["--help"], Path::new("."));
    assert!(o.status.success());
    insta::assert_snapshot!("help", String::from_utf8_lossy(&o.stdout));
    let o = builder(&["build", "--help"], Path::new("."));
    insta::assert_snapshot!("build_help", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn new_makes_a_valid_brand_with_private_keys_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let o = builder(
        &["new", "--app-id", "Mikaka", "--gateway-url", "https://gw.mikaka.example/thingate/", "--rpc-port", "9901"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let dir = tmp.path().join("brands/mikaka");
    for f in [
        "brand.toml",
        "strtable_ja.patch.stb",
        "strtable_en.patch.stb",
        "artwork/header.bmp",
        "artwork/icon.bmp",
        "certs/ca.cer",
        "certs/ThinGate.cer",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    #[cfg(unix)]
    for k in ["certs/ca.key", "certs/ThinGate.key"] {
        assert_eq!(mode(&dir.join(k)), 0o600, "{k}");
    }
    assert!(!text(&o).contains("PRIVATE KEY"), "a key was printed");
    assert!(text(&o).contains("next:"));
    let check = builder(&["check", "--brand", "brands/mikaka"], tmp.path());
    assert!(check.status.success(), "{}", text(&check));
    let before = std::fs::read(dir.join("brand.toml")).unwrap();
    let again = builder(&["new", "--app-id", "Mikaka"], tmp.path());
    assert!(!again.status.success());
    assert!(text(&again).contains("never overwrites"), "{}", text(&again));
    assert_eq!(std::fs::read(dir.join("brand.toml")).unwrap(), before);
}

#[test]
fn new_rejects_bad_arguments_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let o =
        builder(&["new", "--app-id", "Much-Too-Long", "--rpc-port", "3389", "--gateway-url", "http://x/"], tmp.path());
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("--app-id") && t.contains("--rpc-port") && t.contains("--gateway-url"), "{t}");
    assert!(!tmp.path().join("brands").exists());
}

#[test]
fn ca_regen_keeps_a_dated_backup_and_gateway_cert_keeps_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(builder(&["new", "--app-id", "Ca1", "--dir", "b"], tmp.path()).status.success());
    let certs = tmp.path().join("b/certs");
    let old_ca = std::fs::read(certs.join("ca.cer")).unwrap();
    let o = builder(
        &["ca", "gateway-cert", "--brand", "b", "--host", "gw2.example.org", "--host", "192.0.2.7"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the CA is unchanged"));
    assert_eq!(std::fs::read(certs.join("ca.cer")).unwrap(), old_ca);
    let o = builder(&["ca", "regen", "--brand", "b"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rebuild"), "{}", text(&o));
    assert_ne!(std::fs::read(certs.join("ca.cer")).unwrap(), old_ca);
    let backups: Vec<_> = std::fs::read_dir(&certs)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("backup-"))
        .collect();
    assert_eq!(backups.len(), 2, "one backup per command");
    let kept_ca = backups.iter().any(|b| std::fs::read(b.path().join("ca.cer")).ok().as_deref() == Some(&old_ca[..]));
    assert!(kept_ca, "the old CA is in a backup");
    #[cfg(unix)]
    for b in &backups {
        assert_eq!(mode(&b.path().join("ThinGate.key")), 0o600);
    }
    assert!(builder(&["check", "--brand", "b"], tmp.path()).status.success());
}

/// `new` (with a test code-signing identity), `ca gateway-cert` and `ca regen`
/// under the umask 000: every key, PKCS#12 and password file they write (and
/// the backups of the old ones) is 0600 in a folder only its owner may enter,
/// and the public files are exactly 0644.
#[cfg(unix)]
#[test]
fn keys_are_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = common::builder_umask_000(args, tmp.path());
        assert!(o.status.success(), "builder {args:?}: {}", text(&o));
    };
    run(&["new", "--app-id", "Um", "--dir", "b", "--self-signed-codesign"]);
    run(&["ca", "gateway-cert", "--brand", "b", "--host", "gw2.example.org"]);
    run(&["ca", "regen", "--brand", "b"]);
    let secrets: Vec<_> = walkdir::WalkDir::new(tmp.path())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && common::holds_secret(e.path()))
        .map(|e| e.path().strip_prefix(tmp.path()).unwrap().display().to_string())
        .collect();
    // ca.key, ThinGate.key, codesign.key/.p12/.password, and the backed-up
    // ThinGate.key (gateway-cert), ca.key and ThinGate.key (regen).
    assert_eq!(secrets.len(), 8, "{secrets:?}");
    let exposed = common::key_exposures(tmp.path());
    assert!(exposed.is_empty(), "readable by others:\n{}", exposed.join("\n"));
    assert_eq!(mode(&tmp.path().join("b/brand.toml")), 0o644);
    assert_eq!(mode(&tmp.path().join("b/certs/ca.cer")), 0o644);
}

#[test]
fn check_json_lists_problems_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rpc_port_reserved");
    common::copy_dir(&common::fixture("rpc_port_reserved"), &dir);
    common::write_certs(&dir, common::Certs::Good);
    let o = builder(&["--json", "check", "--brand", dir.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"][0]["field"], "rpc_port");
    assert_eq!(v["problems"][0]["line"], 7);
}

#[test]
fn msvc_toolchain_stops_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = Command::new(common::builder_bin())
        .args(["build", "--target", "windows", "--toolchain", "msvc", "--out", out.to_str().unwrap()])
        .env("LIB", "")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("--toolchain msvc needs") && t.contains("Windows SDK"), "{t}");
    assert!(!out.exists(), "nothing was made");
}

#[test]
fn doctor_lists_every_prerequisite_with_its_install_command() {
    let o = builder(&["--json", "doctor"], Path::new("."));
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["prereq"]["name"].as_str().unwrap()).collect();
    for n in ["x86_64-pc-windows-gnu", "makensis", "wixl", "osslsigncode", "aarch64-linux-gnu-gcc"] {
        assert!(names.contains(&n), "{n}");
    }
    assert!(v.as_array().unwrap().iter().all(|r| r["install"].as_str().unwrap().starts_with("apt-get install -y ")
        || r["install"].as_str().unwrap().starts_with("rustup target add ")));
}
