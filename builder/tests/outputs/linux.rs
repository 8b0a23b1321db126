//! The Linux outputs of the shared build (`super::built`): the gateway bundle
//! and the office-PC apps bundle of E2eWin, their rendered files, install
//! scripts, systemd units and reproducibility.

use super::built::built;
use super::common;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

const TGZ: &str = "thingate-E2eWin-1.0.0-linux-x86_64.tar.gz";
const TGZ_ARM: &str = "thingate-E2eWin-1.0.0-linux-aarch64.tar.gz";
const APPS: &str = "thinapps-E2eWin-1.0.0-linux-x86_64.tar.gz";

fn entries() -> Vec<(String, u32, Vec<u8>)> {
    entries_of(TGZ)
}

/// Every entry of an output archive: (name, mode, content) in archive order.
fn entries_of(archive: &str) -> Vec<(String, u32, Vec<u8>)> {
    let f = std::fs::File::open(built().a.join(archive)).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mode = e.header().mode().unwrap();
            assert_eq!((e.header().uid().unwrap(), e.header().gid().unwrap()), (0, 0));
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, mode, data)
        })
        .collect()
}

fn file(name: &str) -> (u32, Vec<u8>) {
    let full = format!("thingate-E2eWin-1.0.0-linux-x86_64/{name}");
    entries()
        .into_iter()
        .find(|(n, _, _)| *n == full)
        .map(|(_, m, d)| (m, d))
        .unwrap_or_else(|| panic!("{full} missing"))
}

#[test]
fn bundle_holds_the_gateway_and_its_rendered_files() {
    let (mode, bin) = file("thingate");
    assert_eq!(mode, 0o755);
    assert_eq!(&bin[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bin[18], bin[19]]), 62, "x86_64 ELF");
    let (_, ini) = file("ThinGate.ini");
    let ini = String::from_utf8(ini).unwrap();
    assert!(ini.contains(&format!("ListenPort {}\n", built().port)), "{ini}");
    assert!(ini.contains("ServerCert ThinGate.cer"));
    assert!(ini.contains("\nDatabaseFile /var/lib/thingate-e2ewin/MachineDatabase.config\n"), "{ini}");
    assert_eq!(file("ThinGate.key").0, 0o600);
    let unit = String::from_utf8(file("thingate-e2ewin.service").1).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/thingate-e2ewin/thingate run --config /opt/thingate-e2ewin/ThinGate.ini"),
        "{unit}"
    );
    assert!(unit.lines().any(|l| l == "User=thingate-e2ewin"), "{unit}");
    let (mode, users) = file("sysusers.d/thingate-e2ewin.conf");
    assert_eq!(mode, 0o644);
    let users = String::from_utf8(users).unwrap();
    assert!(
        users.contains(
            "\nu thingate-e2ewin - \"ThinGate gateway, AppId E2eWin\" /var/lib/thingate-e2ewin /usr/sbin/nologin\n"
        ),
        "{users}"
    );
    let sysctl = String::from_utf8(file("sysctl.d/90-thingate-e2ewin.conf").1).unwrap();
    for line in [
        "net.core.somaxconn = 1024",
        "fs.file-max = 1048575",
        "net.ipv4.tcp_rmem = 4096 87380 5955584",
        "kernel.sem = 65536 655360 64 655360",
        "vm.max_map_count = 262144",
    ] {
        assert!(sysctl.contains(line), "manual 5-5: {line}");
    }
    let limits = String::from_utf8(file("limits.d/90-thingate-e2ewin.conf").1).unwrap();
    assert!(limits.contains("nofile      1048575") && limits.contains("memlock     unlimited"));
    let (mode, sh) = file("install.sh");
    assert_eq!(mode, 0o755);
    assert!(String::from_utf8(sh).unwrap().starts_with("#!/bin/sh"));
}

#[test]
fn certificate_in_the_bundle_is_the_brands() {
    let (_, cer) = file("ThinGate.cer");
    let brand = built().brand.join("certs/ThinGate.cer");
    assert_eq!(cer, std::fs::read(brand).unwrap());
}

#[test]
fn sums_and_manifest_list_every_output() {
    let b = built();
    let sums = std::fs::read_to_string(b.a.join("SHA256SUMS")).unwrap();
    let sha = |name: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(b.a.join(name)).unwrap()));
    let (hash, apps) = (sha(TGZ), sha(APPS));
    assert!(sums.lines().any(|l| l == format!("{apps}  {APPS}")), "{sums}");
    assert!(sums.lines().any(|l| l == format!("{hash}  {TGZ}")), "{sums}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.a.join("build-manifest.json")).unwrap()).unwrap();
    let listed =
        |name: &str| m["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).map(|o| o["sha256"].clone());
    assert_eq!(listed(TGZ), Some(hash.as_str().into()));
    assert_eq!(listed(APPS), Some(apps.as_str().into()));
    assert_eq!(m["app_id"], "E2eWin");
    // The brand's first build: build 1, in the file and MSI versions too.
    assert_eq!((m["version"].as_str(), m["build"].as_u64()), (Some("1.0.0"), Some(1)), "{m}");
    assert_eq!((m["file_version"].as_str(), m["msi_product_version"].as_str()), (Some("1.0.0.1"), Some("1.0.1")));
    assert_eq!(m["installers"], "separate", "the default");
    let kept = std::fs::read_to_string(b.brand.join("build-number.toml")).unwrap();
    assert!(kept.lines().any(|l| l == "last = 1"), "the rebuild with --build-number 1 keeps the counter:\n{kept}");
    assert_eq!(b.json["build"], 1, "--json names the build");
    assert!(m["brand_digest"].as_str().unwrap().len() == 64);
    assert!(m["tools"]["rustc"].as_str().unwrap().starts_with("rustc "));
    let printed: Vec<&str> =
        b.json["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert!(printed.contains(&TGZ) && printed.contains(&APPS), "--json names every output: {printed:?}");
}

#[test]
fn two_builds_give_identical_bundles() {
    let b = built();
    for name in [TGZ, APPS] {
        assert_eq!(std::fs::read(b.a.join(name)).unwrap(), std::fs::read(b.a_again.join(name)).unwrap(), "{name}");
    }
}

/// No private key or password the builds wrote (the brands' keys, the test
/// code-signing identity, the gateway bundles) was readable by anyone but its
/// owner, neither while the builds ran (most under the umask 002) nor after;
/// none was ever staged.
#[test]
fn no_private_key_is_readable_by_others_during_or_after_the_builds() {
    let b = built();
    assert!(b.scans >= 2, "the watcher scanned {} times", b.scans);
    assert!(b.exposed_during.is_empty(), "while building:\n{}", b.exposed_during.join("\n"));
    let after: Vec<String> = b.written.iter().flat_map(|d| common::key_exposures(d)).collect();
    assert!(after.is_empty(), "after building:\n{}", after.join("\n"));
    // What the scans must have looked at.
    for f in [
        "a/certs/ca.key",
        "a/certs/ThinGate.key",
        "s/certs/codesign.key",
        "s/certs/codesign.p12",
        "s/certs/codesign.password",
    ] {
        assert!(common::holds_secret(&b.brand.parent().unwrap().join(f)), "{f}");
    }
    for out in [&b.a, &b.a_again] {
        let f = std::fs::File::open(out.join(TGZ)).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        let mut keys = 0;
        for e in tar.entries().unwrap() {
            let mut data = Vec::new();
            e.unwrap().read_to_end(&mut data).unwrap();
            keys += usize::from(common::is_pem_key(&data));
        }
        assert_eq!(keys, 1, "{}: the gateway key", out.join(TGZ).display());
    }
    let stage = &b.written[1];
    let staged: Vec<_> = walkdir::WalkDir::new(stage)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && common::holds_secret(e.path()))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(stage.join("E2eWin/linux").is_dir(), "the gateway bundle was staged in {}", stage.display());
    assert!(staged.is_empty(), "keys staged: {staged:?}");
}

/// Extracts the gateway bundle into a fresh folder; returns the bundle's folder.
fn extract(into: &std::path::Path) -> PathBuf {
    extract_of(TGZ, into)
}

/// Extracts an output archive into a fresh folder; returns the bundle's folder.
fn extract_of(archive: &str, into: &std::path::Path) -> PathBuf {
    let f = std::fs::File::open(built().a.join(archive)).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(f)).unpack(into).unwrap();
    into.join(archive.trim_end_matches(".tar.gz"))
}

/// Every file under `root`: (path, mode, content) in order.
fn tree(root: &std::path::Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
            (e.path().strip_prefix(root).unwrap().display().to_string(), mode, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The image's files the system user made by systemd-sysusers lives in.
const USER_DB: [&str; 5] = ["etc/.pwd.lock", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"];

#[test]
fn install_sh_fills_a_system_image_and_is_idempotent() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    let bundle = extract(&tmp.path().join("x"));
    let image = tmp.path().join("image");
    // `systemctl --root` works offline; a recording stand-in keeps the test
    // independent of whether this machine has systemd.
    let fake = tmp.path().join("bin");
    let calls = tmp.path().join("calls");
    common::install_tool_stand_ins(&fake, &calls);
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let install = || install_root("sh", &bundle.join("install.sh"), &image, &path);
    let first = install();
    let dest = image.join("opt/thingate-e2ewin");
    let t1 = tree(&image);
    let names: Vec<&str> = t1.iter().map(|(n, _, _)| n.as_str()).filter(|n| !USER_DB.contains(n)).collect();
    assert_eq!(
        names,
        [
            "etc/security/limits.d/90-thingate-e2ewin.conf",
            "etc/sysctl.d/90-thingate-e2ewin.conf",
            "etc/systemd/system/thingate-e2ewin.service",
            "etc/sysusers.d/thingate-e2ewin.conf",
            "opt/thingate-e2ewin/ThinGate.cer",
            "opt/thingate-e2ewin/ThinGate.ini",
            "opt/thingate-e2ewin/ThinGate.key",
            "opt/thingate-e2ewin/thingate",
        ],
        "{first}"
    );
    // The gateway's own user, group and writable folders; the key and the
    // ini (SmtpPassword) readable by that group only, as root has it.
    let user = common::passwd_entry(&image, "thingate-e2ewin").unwrap_or_else(|| panic!("no user: {first}"));
    assert_eq!(user[6], "/usr/sbin/nologin", "{user:?}");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), user[3].parse().unwrap());
    let as_root = std::fs::metadata(&image).unwrap().uid() == 0;
    for (rel, want, owner) in [
        ("opt/thingate-e2ewin/ThinGate.key", 0o640, (0, gid)),
        ("opt/thingate-e2ewin/ThinGate.ini", 0o640, (0, gid)),
        ("opt/thingate-e2ewin/ThinGate.cer", 0o644, (0, 0)),
        ("opt/thingate-e2ewin/thingate", 0o755, (0, 0)),
        ("opt/thingate-e2ewin/gate_log", 0o750, (uid, gid)),
        ("var/lib/thingate-e2ewin", 0o750, (uid, gid)),
    ] {
        let m = std::fs::metadata(image.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}\n{first}"));
        assert_eq!(m.permissions().mode() & 0o7777, want, "{rel}");
        if as_root {
            assert_eq!((m.uid(), m.gid()), owner, "{rel}");
        }
    }
    assert_eq!(std::fs::read(dest.join("thingate")).unwrap(), file("thingate").1);
    let log = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(log, format!("systemctl --root={} enable thingate-e2ewin.service\n", image.display()));

    // Again: nothing changes, and it says so.
    let second = install();
    assert_eq!(tree(&image), t1, "{second}");
    assert!(!second.contains("installed "), "{second}");
    assert_eq!(second.matches("unchanged ").count(), 7, "{second}");

    // An admin's edit of ThinGate.ini survives; the bundle's copy goes beside it, once.
    let ini = dest.join("ThinGate.ini");
    let edited = std::fs::read_to_string(&ini).unwrap() + "SysLogHostname 127.0.0.1\n";
    std::fs::write(&ini, &edited).unwrap();
    let third = install();
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), edited, "{third}");
    assert_eq!(std::fs::read(dest.join("ThinGate.ini.new")).unwrap(), file("ThinGate.ini").1);
    let t3 = tree(&image);
    install();
    assert_eq!(tree(&image), t3, "a fourth run changes nothing either");
    assert_eq!(std::fs::metadata(dest.join("ThinGate.ini.new")).unwrap().permissions().mode() & 0o777, 0o640);

    // A new key in the bundle replaces the installed one and keeps the old as a backup.
    std::fs::write(dest.join("ThinGate.key"), b"old key\n").unwrap();
    let fifth = install();
    assert!(fifth.contains("kept old"), "{fifth}");
    let backups: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ThinGate.key.bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(std::fs::read(dest.join(&backups[0])).unwrap(), b"old key\n");
    let kept_mode = std::fs::metadata(dest.join(&backups[0])).unwrap().permissions().mode();
    assert_eq!(kept_mode & 0o007, 0, "the old key stays unreadable to others: {kept_mode:o}");
    assert_eq!(std::fs::read(dest.join("ThinGate.key")).unwrap(), file("ThinGate.key").1);

    let bad = Command::new("sh").arg(bundle.join("install.sh")).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option --bogus"));
}

#[test]
fn apps_bundle_holds_the_apps_unit_and_installer() {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(built().a.join(APPS)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "no key inside: a plain download");
    let all = entries_of(APPS);
    let d = "thinapps-E2eWin-1.0.0-linux-x86_64";
    let listed: Vec<(String, u32)> = all.iter().map(|(n, m, _)| (n.clone(), *m)).collect();
    let want: Vec<(String, u32)> = [
        ("/", 0o755),
        ("/sysusers.d/", 0o755),
        ("/install.sh", 0o755),
        ("/sysusers.d/thinsvr-e2ewin.conf", 0o644),
        ("/thinclient", 0o755),
        ("/thinsvr", 0o755),
        ("/thinsvr-e2ewin.service", 0o644),
    ]
    .into_iter()
    .map(|(f, m)| (format!("{d}{f}"), m))
    .collect();
    assert_eq!(listed, want);
    let get = |f: &str| all.iter().find(|(n, _, _)| *n == format!("{d}/{f}")).unwrap().2.clone();
    for bin in ["thinsvr", "thinclient"] {
        let b = get(bin);
        assert_eq!(&b[..4], b"\x7fELF", "{bin}");
        assert_eq!(u16::from_le_bytes([b[18], b[19]]), 62, "{bin}: x86_64 ELF");
    }
    let unit = String::from_utf8(get("thinsvr-e2ewin.service")).unwrap();
    for line in [
        "ExecStart=/opt/thinapps-e2ewin/thinsvr --config-dir /var/lib/thinapps-e2ewin service",
        "StateDirectory=thinapps-e2ewin",
        "StateDirectoryMode=0700",
        "User=thinsvr-e2ewin",
        "Restart=always",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
    }
    assert!(unit.contains("AppId E2eWin"), "{unit}");
    assert!(String::from_utf8(get("install.sh")).unwrap().starts_with("#!/bin/bash\n"));
    // The Linux apps name their build too.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bundle = extract_of(APPS, tmp.path());
    for bin in ["thinsvr", "thinclient"] {
        let o = Command::new(bundle.join(bin)).arg("--version").env("THIN_LANG", "en").output().unwrap();
        let v = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && v.contains("E2E-PATCHED E2eWin Telework 1.0.0 build 1 ["), "{bin}: {v}");
    }
}

/// Kills the child when a test fails half-way.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, at most `secs` seconds.
fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

#[test]
fn bundled_thinsvr_runs_as_a_service_and_stops_on_sigterm() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bundle = extract_of(APPS, &tmp.path().join("x"));
    let cfg = tmp.path().join("state");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = tmp.path().join("thinsvr.log");
    let start = |log: &std::path::Path| {
        let out = std::fs::File::create(log).unwrap();
        Command::new(bundle.join("thinsvr"))
            .arg("--config-dir")
            .arg(&cfg)
            .args(["--rpc-port", &port.to_string(), "service"])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap()
    };
    let mut svc = Running(start(&log));
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();

    // The admin port's first frame: 4-byte big-endian length, then a JSON challenge.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let frame = loop {
        if let Some(st) = svc.0.try_wait().unwrap() {
            panic!("thinsvr exited early ({st}):\n{}", logged());
        }
        assert!(std::time::Instant::now() < deadline, "no admin port on {port}:\n{}", logged());
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        };
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        break serde_json::from_slice::<serde_json::Value>(&body).unwrap();
    };
    assert_eq!(frame["t"], "challenge", "{frame}");
    assert_eq!(frame["version"], 1, "{frame}");
    assert!(!frame["nonce"].as_str().unwrap().is_empty(), "{frame}");
    let secret = std::fs::metadata(cfg.join("admin.secret")).unwrap();
    assert_eq!(secret.permissions().mode() & 0o777, 0o600);

    // A second service of the brand on the same port refuses and says why.
    let log2 = tmp.path().join("second.log");
    let mut second = Running(start(&log2));
    let st = wait_exit(&mut second.0, 30).expect("a second thinsvr on a taken port must exit");
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(!st.success(), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");

    let kill = Command::new("kill").args(["-TERM", &svc.0.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let st = wait_exit(&mut svc.0, 30).unwrap_or_else(|| panic!("thinsvr ignored SIGTERM:\n{}", logged()));
    assert_eq!(st.code(), Some(0), "{st}:\n{}", logged());
}

#[test]
fn apps_install_sh_fills_a_system_image_and_is_idempotent() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bundle = extract_of(APPS, &tmp.path().join("x"));
    let image = tmp.path().join("image");
    // The real `systemctl --root` works offline; without systemd, a stand-in
    // makes the same symlink (and one makes the user, see install_tool_stand_ins).
    let real = Command::new("systemctl").arg("--version").output().is_ok_and(|o| o.status.success());
    let fake = tmp.path().join("bin");
    common::install_tool_stand_ins(&fake, &tmp.path().join("calls"));
    std::fs::remove_file(fake.join("systemctl")).unwrap();
    if !real {
        let p = fake.join("systemctl");
        let script = "#!/bin/sh\nr=${1#--root=}; w=\"$r/etc/systemd/system/multi-user.target.wants\"\n\
                      mkdir -p \"$w\" && ln -sfn \"/etc/systemd/system/$3\" \"$w/$3\"\n";
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let install = || install_root("bash", &bundle.join("install.sh"), &image, &path);
    let links = || -> Vec<(String, PathBuf)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(&image)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.path_is_symlink())
            .map(|e| {
                (e.path().strip_prefix(&image).unwrap().display().to_string(), std::fs::read_link(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let first = install();
    let t1 = tree(&image);
    let names: Vec<(&str, u32)> =
        t1.iter().filter(|(n, _, _)| !USER_DB.contains(&n.as_str())).map(|(n, m, _)| (n.as_str(), *m)).collect();
    let user = common::passwd_entry(&image, "thinsvr-e2ewin").unwrap_or_else(|| panic!("no user: {first}"));
    assert_eq!((user[5].as_str(), user[6].as_str()), ("/var/lib/thinapps-e2ewin", "/usr/sbin/nologin"));
    assert_ne!(user[2], "0");
    assert_eq!(
        names,
        [
            ("etc/systemd/system/thinsvr-e2ewin.service", 0o644),
            ("etc/sysusers.d/thinsvr-e2ewin.conf", 0o644),
            ("opt/thinapps-e2ewin/thinclient", 0o755),
            ("opt/thinapps-e2ewin/thinsvr", 0o755),
        ],
        "{first}"
    );
    assert_eq!(std::fs::read(image.join("opt/thinapps-e2ewin/thinsvr")).unwrap(), {
        let b = extract_of(APPS, &tmp.path().join("y"));
        std::fs::read(b.join("thinsvr")).unwrap()
    });
    let l1 = links();
    assert_eq!(
        l1,
        [(
            "etc/systemd/system/multi-user.target.wants/thinsvr-e2ewin.service".to_string(),
            PathBuf::from("/etc/systemd/system/thinsvr-e2ewin.service")
        )],
        "{first}"
    );

    // Again: nothing changes, and it says so.
    let second = install();
    assert_eq!(tree(&image), t1, "{second}");
    assert_eq!(links(), l1, "{second}");
    assert!(!second.contains("installed "), "{second}");
    assert_eq!(second.matches("unchanged ").count(), 3, "{second}");

    let bad = Command::new("bash").arg(bundle.join("install.sh")).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option --bogus"));
    let help = Command::new("bash").arg(bundle.join("install.sh")).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--root DIR"));
}

/// Runs `SHELL INSTALL_SH --root IMAGE` with `PATH`; asserts success and returns its output.
fn install_root(shell: &str, script: &std::path::Path, image: &std::path::Path, path: &str) -> String {
    let o = Command::new(shell).arg(script).arg("--root").arg(image).env("PATH", path).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    text
}

/// Both systemd units pass `systemd-analyze verify` without a warning inside a
/// system image holding the bundles' binaries where the units run them, and
/// `systemd-analyze security` rates their sandboxes OK: exposure at most
/// [`common::MAX_EXPOSURE`] of 10 (an unsandboxed root service rates 9.6),
/// each service as its own user with no capability but the gateway's
/// `CAP_NET_BIND_SERVICE`. No test starts them under a live systemd: CI
/// machines have none running.
#[test]
fn systemd_units_verify_and_are_sandboxed() {
    let has = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has {
        assert!(std::env::var_os("CI").is_none(), "systemd-analyze is missing: apt-get install systemd");
        eprintln!("skipped: systemd-analyze is missing (apt-get install systemd)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (archive, unit, bin, dest, caps) in [
        (TGZ, "thingate-e2ewin.service", "thingate", "opt/thingate-e2ewin/thingate", "CAP_NET_BIND_SERVICE"),
        (APPS, "thinsvr-e2ewin.service", "thinsvr", "opt/thinapps-e2ewin/thinsvr", ""),
    ] {
        let bundle = extract_of(archive, &tmp.path().join(format!("x-{unit}")));
        let image = tmp.path().join(unit);
        let units = image.join("etc/systemd/system");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::create_dir_all(image.join(dest).parent().unwrap()).unwrap();
        std::fs::create_dir_all(image.join("usr/lib/systemd")).unwrap();
        std::fs::copy(bundle.join(unit), units.join(unit)).unwrap();
        std::fs::copy(bundle.join(bin), image.join(dest)).unwrap();
        // The targets the units name (multi-user.target, network-online.target, ...).
        let cp =
            Command::new("cp").arg("-a").arg("/usr/lib/systemd/system").arg(image.join("usr/lib/systemd")).status();
        assert!(cp.unwrap().success());
        let root = format!("--root={}", image.display());
        let path = format!("/etc/systemd/system/{unit}");
        let v = Command::new("systemd-analyze").args(["verify", "--man=no", &root, &path]).output().unwrap();
        let said = String::from_utf8_lossy(&v.stdout).into_owned() + &String::from_utf8_lossy(&v.stderr);
        assert!(v.status.success() && said.trim().is_empty(), "systemd-analyze verify {unit}:\n{said}");
        let (level, report) = common::systemd_exposure(&image, unit).expect("systemd-analyze");
        println!("{unit}: exposure {level} of 10");
        assert!(level <= common::MAX_EXPOSURE, "{unit} rates {level}:\n{report}");
        common::assert_runs_unprivileged(unit, &report, &[caps]);
    }
}

/// `readelf ARGS FILE` (binutils' readelf reads every architecture's ELF).
fn readelf(args: &[&str], file: &std::path::Path) -> String {
    let o = Command::new("readelf").args(args).arg(file).output().expect("readelf (apt-get install binutils)");
    assert!(o.status.success(), "readelf {args:?} {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A static executable: no program interpreter (`ld.so`) and no shared
/// library needed, so it runs without any libc on the host.
fn assert_static(file: &std::path::Path) {
    let segments = readelf(&["-lW"], file);
    assert!(segments.contains("Program Headers:"), "{}: {segments}", file.display());
    assert!(!segments.contains("INTERP"), "{} asks for a program interpreter:\n{segments}", file.display());
    let dynamic = readelf(&["-dW"], file);
    assert!(!dynamic.contains("(NEEDED)"), "{} needs shared libraries:\n{dynamic}", file.display());
}

/// The gateway bundle's `thingate` is a static musl binary: it needs no
/// libc, so it runs on any Linux of the last ten years whatever glibc it has.
/// Shown for real: the extracted bundle's folder, holding nothing but the
/// bundle's files, becomes the root file system (`chroot`; in an
/// unprivileged user namespace when not root), and the gateway starts there
/// from its own `ThinGate.ini`, listens, and answers `/thingate/` over TLS.
#[test]
fn bundled_gateway_is_static_and_serves_from_a_root_holding_only_the_bundle() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = extract(&tmp.path().join("x"));
    assert_static(&root.join("thingate"));
    let mut listed: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    listed.sort();
    assert!(!listed.iter().any(|n| ["lib", "lib64", "usr", "etc"].contains(&n.as_str())), "{listed:?}");
    // Its own ini, on a port of its own (the Wine tests use the compiled-in
    // one), with the database beside it instead of /var/lib.
    let ini = root.join("ThinGate.ini");
    let port = thin_e2e::free_port();
    let text = std::fs::read_to_string(&ini)
        .unwrap()
        .replace(&format!("ListenPort {}\n", built().port), &format!("ListenPort {port}\n"))
        .replace("DatabaseFile /var/lib/thingate-e2ewin/", "DatabaseFile /");
    assert!(text.contains(&format!("ListenPort {port}\n")) && text.contains("DatabaseFile /MachineDatabase"));
    std::fs::write(&ini, text + "ListenAddress 127.0.0.1\n").unwrap();
    let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut cmd = if as_root {
        Command::new("chroot")
    } else {
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-root-user", "chroot"]);
        c
    };
    cmd.arg(&root).args(["/thingate", "run", "--config", "/ThinGate.ini"]);
    if !as_root {
        let probe = Command::new("unshare").args(["--user", "--map-root-user", "true"]).status();
        if !probe.is_ok_and(|s| s.success()) {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root: chroot is available there");
            eprintln!("skipped the chroot run: not root, and no unprivileged user namespaces");
            return;
        }
    }
    let mut gw = thin_e2e::procs::Proc::start("thingate in a bare root", &mut cmd, None);
    assert_eq!(gw.wait_line("listening on ", std::time::Duration::from_secs(30)), format!("127.0.0.1:{port}"));
    // The alive check, through TLS with the brand's CA (curl is the client).
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(built().brand.join("certs/ca.cer"))
        .args(["--resolve", &format!("127.0.0.1:{port}:127.0.0.1"), &format!("https://127.0.0.1:{port}/thingate/")])
        .output()
        .expect("curl (apt-get install curl)");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && said.starts_with("PACK"),
        "/thingate/ from the gateway in a bare root: {said}{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        gw.report()
    );
}

/// The newest `GLIBC_x.y` symbol version `objdump -T` lists for `file`, and
/// how many symbols carry one.
fn newest_glibc(file: &std::path::Path) -> ((u32, u32), usize) {
    let o = Command::new("objdump").arg("-T").arg(file).output().expect("objdump (apt-get install binutils)");
    assert!(o.status.success(), "objdump -T {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let versions: Vec<(u32, u32)> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
            Some((it.next()??, it.next().flatten().unwrap_or(0)))
        })
        .collect();
    (versions.iter().copied().max().unwrap_or((0, 0)), versions.len())
}

/// The Linux apps are linked against the glibc baseline the README states
/// (`builder::build::linux_apps::GLIBC_BASELINE`): `objdump -T` shows no symbol
/// version newer, so they start on any glibc since (RHEL 7, Ubuntu 14.04).
/// They stay dynamic (their windows `dlopen` the system's OpenGL and X
/// libraries): the check reads real symbol versions, not an empty table.
#[test]
fn linux_apps_use_no_glibc_symbol_newer_than_the_baseline() {
    let baseline = builder::build::linux_apps::GLIBC_BASELINE;
    let (major, minor) = baseline.split_once('.').unwrap();
    let baseline = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap());
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bundle = extract_of(APPS, tmp.path());
    for bin in ["thinsvr", "thinclient"] {
        let (newest, count) = newest_glibc(&bundle.join(bin));
        assert!(count > 10, "{bin}: only {count} versioned glibc symbols; is it dynamic?");
        assert!(
            newest <= baseline,
            "{bin} needs GLIBC_{}.{}, newer than the baseline {baseline:?}",
            newest.0,
            newest.1
        );
        println!("{bin}: newest glibc symbol version {}.{} ({count} symbols)", newest.0, newest.1);
    }
}

/// The aarch64 gateway bundle's `thingate` is a static musl binary for
/// aarch64 too (no machine here runs it: no interpreter and no library to
/// find on an ARM server is what matters), with the same files beside it.
#[test]
fn aarch64_gateway_bundle_is_static_too() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let arm = extract_of(TGZ_ARM, tmp.path());
    let bin = std::fs::read(arm.join("thingate")).unwrap();
    assert_eq!(&bin[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bin[18], bin[19]]), 183, "aarch64 ELF");
    assert_static(&arm.join("thingate"));
    let x86 = extract(&tmp.path().join("x"));
    for f in ["ThinGate.ini", "ThinGate.cer", "install.sh", "thingate-e2ewin.service"] {
        assert_eq!(std::fs::read(arm.join(f)).unwrap(), std::fs::read(x86.join(f)).unwrap(), "{f}");
    }
}
