//! Helpers shared by the builder's tests: certificates made at test time (no
//! private key is committed), fixture copies, the builder binary.
#![allow(dead_code)]

/// Tesseract OCR of screenshots, from the end-to-end test harness.
#[allow(unused_imports)] // only the e2e tests read screenshots
pub use thin_e2e::ocr;
pub mod wine;
pub mod xvfb;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What to do to the certificates of a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certs {
    /// A valid CA and gateway certificate for gw.example.org.
    Good,
    /// The gateway certificate expired a year ago.
    Expired,
    /// Valid for another host.
    WrongHost,
    /// Signed by a different CA.
    OtherCa,
    /// The key belongs to another certificate.
    KeyMismatch,
}

fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn ca() -> (CertificateParams, KeyPair, String) {
    let k = key();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Fixture CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = p.self_signed(&k).unwrap().pem();
    (p, k, pem)
}

fn gateway(issuer: &Issuer<'_, KeyPair>, host: &str, expired: bool) -> (String, KeyPair) {
    let k = key();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, host);
    p.subject_alt_names = vec![SanType::DnsName(host.to_string().try_into().unwrap())];
    if expired {
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(730);
        p.not_after = now - Duration::days(365);
    }
    (p.signed_by(&k, issuer).unwrap().pem(), k)
}

/// Writes `certs/` of a brand folder.
pub fn write_certs(dir: &Path, what: Certs) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (p, k, ca_pem) = ca();
    let ca_key = k.serialize_pem();
    let issuer = Issuer::new(p, k);
    let host = if what == Certs::WrongHost { "other.example.org" } else { "gw.example.org" };
    let (gw_pem, mut gw_key) = if what == Certs::OtherCa {
        let (p2, k2, _) = ca();
        gateway(&Issuer::new(p2, k2), host, false)
    } else {
        gateway(&issuer, host, what == Certs::Expired)
    };
    if what == Certs::KeyMismatch {
        gw_key = key();
    }
    std::fs::write(certs.join("ca.cer"), ca_pem).unwrap();
    write_0600(&certs.join("ca.key"), &ca_key);
    std::fs::write(certs.join("ThinGate.cer"), gw_pem).unwrap();
    write_0600(&certs.join("ThinGate.key"), &gw_key.serialize_pem());
}

fn write_0600(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The fixture folder `name` under `tests/fixtures/invalid`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid").join(name)
}

/// The builder binary.
pub fn builder_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_builder"))
}

/// Whether `data` is a PEM private key: it starts with `-----BEGIN` and
/// holds `PRIVATE KEY-----` (a program that merely parses PEM, and names the
/// label somewhere in its bytes, is not one).
pub fn is_pem_key(data: &[u8]) -> bool {
    data.trim_ascii_start().starts_with(b"-----BEGIN ") && data.windows(16).any(|w| w == b"PRIVATE KEY-----")
}

/// Whether a file holds a private key or a password: by name (`*.key`,
/// `*.p12`, `*.pass`, `*.password`) or a PEM private key ([`is_pem_key`]).
#[cfg(unix)]
pub fn holds_secret(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if [".key", ".p12", ".pass", ".password"].iter().any(|s| name.ends_with(s)) {
        return true;
    }
    let small = std::fs::symlink_metadata(path).is_ok_and(|m| m.len() <= 1 << 20);
    small && std::fs::read(path).is_ok_and(|d| is_pem_key(&d))
}

/// Every way a private key or password under `root` can be read by others
/// than its owner: a file holding one ([`holds_secret`]) whose mode is not
/// 0600 or whose folder others may enter, a `.tar.gz` holding a PEM key whose
/// own mode lets others read it or whose member is not 0600. Files that vanish
/// while looked at (a build is running) are skipped. Empty: nothing exposed.
#[cfg(unix)]
pub fn key_exposures(root: &Path) -> Vec<String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| m.permissions().mode() & 0o7777);
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(root).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let p = e.path();
        if p.to_string_lossy().ends_with(".tar.gz") {
            let Ok(f) = std::fs::File::open(p) else { continue };
            let Some(archive_mode) = mode(p) else { continue };
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            let Ok(entries) = tar.entries() else { continue };
            for m in entries.filter_map(|m| m.ok()) {
                let mut m = m;
                let member_mode = m.header().mode().unwrap_or(0o777);
                let name = m.path().map(|n| n.display().to_string()).unwrap_or_default();
                let mut data = Vec::new();
                if m.read_to_end(&mut data).is_err() || !is_pem_key(&data) {
                    continue;
                }
                if member_mode != 0o600 {
                    found.push(format!("{} member {name}: mode {member_mode:o}", p.display()));
                }
                if archive_mode & 0o077 != 0 {
                    found.push(format!("{}: holds {name} but is mode {archive_mode:o}", p.display()));
                }
            }
            continue;
        }
        if !holds_secret(p) {
            continue;
        }
        match mode(p) {
            Some(m) if m != 0o600 => found.push(format!("{}: mode {m:o}", p.display())),
            _ => {}
        }
        let dir = p.parent().unwrap();
        match mode(dir) {
            Some(m) if m & 0o077 != 0 => found.push(format!("{}: in {} of mode {m:o}", p.display(), dir.display())),
            _ => {}
        }
    }
    found
}

/// `builder ARGS` in `cwd` under the umask 000, so that a file the builder
/// does not create with its mode from the start comes out readable by all.
#[cfg(unix)]
pub fn builder_umask_000(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(builder_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Runs `systemd-analyze security --offline=yes` on the unit `unit` installed
/// in the system image `image` (`/etc/systemd/system/UNIT`); returns its
/// overall exposure (0 to 10) and the whole report. `None` when this machine
/// has no `systemd-analyze` (`apt-get install systemd`).
pub fn systemd_exposure(image: &Path, unit: &str) -> Option<(f64, String)> {
    let has = std::process::Command::new("systemd-analyze").arg("--version").output();
    if !has.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let root = format!("--root={}", image.display());
    let path = format!("/etc/systemd/system/{unit}");
    let s = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", &root, &path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&s.stdout).into_owned() + &String::from_utf8_lossy(&s.stderr);
    let marker = format!("Overall exposure level for {unit}:");
    let level = text
        .lines()
        .find_map(|l| l.split_once(&marker).and_then(|(_, r)| r.split_whitespace().next()?.parse().ok()))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    Some((level, text))
}

/// The most `systemd-analyze security` may rate the two units (an unsandboxed
/// root service rates 9.6; they rated 2.3 and 2.0 when they ran as root).
pub const MAX_EXPOSURE: f64 = 1.5;

/// Checks a `systemd-analyze security` report of a unit that must run as its
/// own user, with no capability but `caps`: every such line is a pass (✓).
pub fn assert_runs_unprivileged(unit: &str, report: &str, caps: &[&str]) {
    let line = |name: &str| report.lines().find(|l| l.split_whitespace().nth(1) == Some(name));
    for name in [
        "User=/DynamicUser=",
        "NoNewPrivileges=",
        "ProtectSystem=",
        "ProtectHome=",
        "PrivateTmp=",
        "SystemCallFilter=~@privileged",
        "SystemCallFilter=~@resources",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)",
    ] {
        let l = line(name).unwrap_or_else(|| panic!("{unit}: no {name} line in:\n{report}"));
        assert!(l.starts_with('✓'), "{unit}: {l}");
    }
    let bind = line("CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)").expect("network capability line");
    assert_eq!(bind.starts_with('✓'), !caps.contains(&"CAP_NET_BIND_SERVICE"), "{unit}: {bind}");
}

/// Writes stand-ins for the tools `install.sh` runs into `bin` (put it first
/// on PATH): `systemctl` and `sysctl` record their arguments in `calls` (the
/// tests never start a service), and `systemd-sysusers`, when this machine
/// has none, adds the `u` user of the file it gets to the image's passwd and
/// group (the real one works offline with `--root` and is used when present).
#[cfg(unix)]
pub fn install_tool_stand_ins(bin: &Path, calls: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin).unwrap();
    let mut tools = vec![];
    for tool in ["systemctl", "sysctl"] {
        tools.push((tool, format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\n", calls.display())));
    }
    if !thin_e2e::procs::on_path("systemd-sysusers") {
        let script = "#!/bin/sh\nr=; for a; do case $a in --root=*) r=${a#--root=} ;; *) f=$a ;; esac; done\n\
                      u=$(awk '$1 == \"u\" { print $2 }' \"$f\"); mkdir -p \"$r/etc\"\n\
                      grep -q \"^$u:\" \"$r/etc/passwd\" 2>/dev/null && exit 0\n\
                      echo \"$u:x:990:990::/nonexistent:/usr/sbin/nologin\" >> \"$r/etc/passwd\"\n\
                      echo \"$u:x:990:\" >> \"$r/etc/group\"\n";
        tools.push(("systemd-sysusers", script.to_string()));
    }
    for (tool, script) in tools {
        let p = bin.join(tool);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `user`'s line in the image's passwd, split at `:`.
pub fn passwd_entry(image: &Path, user: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(image.join("etc/passwd")).ok()?;
    text.lines().map(|l| l.split(':').map(String::from).collect::<Vec<_>>()).find(|f| f[0] == user)
}
