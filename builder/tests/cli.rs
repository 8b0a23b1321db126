//! The commands that need no compilation: `new`, `check`, `ca`, `doctor`,
//! the `--toolchain msvc` preflight, `--help`; and the Linux units and the
//! gateway's `install.sh` as rendered, on a stand-in bundle.

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

/// The systemd units as rendered (no build needed): each service runs as its
/// own user, the gateway with `CAP_NET_BIND_SERVICE` alone and `thinsvr` with
/// no capability, ProtectSystem=strict and the rest of the sandbox, and
/// `systemd-analyze security` rates both at most [`common::MAX_EXPOSURE`].
/// The end-to-end tests check the built bundles' units the same way and run
/// `systemd-analyze verify` on them.
#[test]
fn rendered_units_run_as_their_own_users_in_a_sandbox() {
    let vars = serde_json::json!({"app_id": "Mikaka", "app_id_lower": "mikaka", "system_name": "Mikaka Remote",
        "install_dir": "/opt/thingate-mikaka", "gate_user": "thingate-mikaka", "gate_state_dir": "/var/lib/thingate-mikaka",
        "apps_dir": "/opt/thinapps-mikaka", "apps_state_dir": "/var/lib/thinapps-mikaka", "apps_user": "thinsvr-mikaka",
        "service_args": "service"});
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for (template, unit, user, caps, writable) in [
        (
            builder::render::SYSTEMD_UNIT,
            "thingate-mikaka.service",
            "thingate-mikaka",
            "CAP_NET_BIND_SERVICE",
            "ReadWritePaths=/opt/thingate-mikaka/gate_log",
        ),
        (builder::render::APPS_SYSTEMD_UNIT, "thinsvr-mikaka.service", "thinsvr-mikaka", "", "StateDirectoryMode=0700"),
    ] {
        let text = builder::render::render(template, &vars).unwrap();
        for line in [
            format!("User={user}"),
            format!("Group={user}"),
            format!("CapabilityBoundingSet={caps}"),
            format!("AmbientCapabilities={caps}"),
            "NoNewPrivileges=yes".into(),
            "ProtectSystem=strict".into(),
            "ProtectHome=yes".into(),
            "PrivateTmp=yes".into(),
            "SystemCallFilter=@system-service".into(),
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK".into(),
            writable.into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{unit}: no {line}:\n{text}");
        }
        std::fs::write(units.join(unit), &text).unwrap();
        let Some((level, report)) = common::systemd_exposure(tmp.path(), unit) else {
            assert!(std::env::var_os("CI").is_none(), "systemd-analyze is missing: apt-get install systemd");
            eprintln!("skipped the rating: systemd-analyze is missing (apt-get install systemd)");
            continue;
        };
        println!("{unit}: exposure {level} of 10");
        assert!(level <= common::MAX_EXPOSURE, "{unit} rates {level}:\n{report}");
        common::assert_runs_unprivileged(unit, &report, &[caps]);
    }
}

/// A stand-in gateway bundle in `dir/bundle` (rendered templates, a fake
/// binary and key) and a PATH with stand-ins for the system tools.
#[cfg(unix)]
fn stand_in_gateway_bundle(dir: &Path) -> (std::path::PathBuf, String) {
    let vars = serde_json::json!({"app_id": "Mikaka", "app_id_lower": "mikaka", "system_name": "Mikaka Remote",
        "version": "1.2.3", "listen_port": 443, "install_dir": "/opt/thingate-mikaka", "gate_user": "thingate-mikaka",
        "gate_state_dir": "/var/lib/thingate-mikaka", "user": "thingate-mikaka", "description": "ThinGate gateway, AppId Mikaka",
        "home": "/var/lib/thingate-mikaka"});
    let bundle = dir.join("bundle");
    let conf = "90-thingate-mikaka.conf";
    let r = |t| builder::render::render(t, &vars).unwrap().into_bytes();
    for (name, data) in [
        ("install.sh".to_string(), r(builder::render::INSTALL_SH)),
        ("ThinGate.ini".into(), r(builder::render::THINGATE_INI)),
        ("thingate-mikaka.service".into(), r(builder::render::SYSTEMD_UNIT)),
        ("sysusers.d/thingate-mikaka.conf".into(), r(builder::render::SYSUSERS)),
        (format!("sysctl.d/{conf}"), b"# sysctl\n".to_vec()),
        (format!("limits.d/{conf}"), b"# limits\n".to_vec()),
        ("thingate".into(), b"#!/bin/sh\n".to_vec()),
        ("ThinGate.cer".into(), b"certificate\n".to_vec()),
        ("ThinGate.key".into(), b"-----BEGIN PRIVATE KEY-----\n".to_vec()),
    ] {
        let p = bundle.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let bin = dir.join("bin");
    common::install_tool_stand_ins(&bin, &dir.join("calls"));
    (bundle, format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
}

/// `install.sh --cluster-name ... --public-url ... --etcd ...` installs a
/// cluster member: ThinGate.ini with StandaloneMode 0 and the Cluster* keys,
/// the etcd TLS files beside it (the key 0640), a unit ordered after the
/// network; half the options, or a plain http public URL, are refused
/// before anything is installed; a second run changes nothing.
#[cfg(unix)]
#[test]
fn gateway_install_sh_makes_a_cluster_member() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    let (bundle, path) = stand_in_gateway_bundle(tmp.path());
    for (f, body) in [("ca.pem", "etcd ca\n"), ("gw.cer", "client cert\n"), ("gw.key", "client key\n")] {
        std::fs::write(tmp.path().join(f), body).unwrap();
    }
    let run = |args: &[&str]| {
        Command::new("sh")
            .arg(bundle.join("install.sh"))
            .arg("--root")
            .arg(&image)
            .args(args)
            .current_dir(tmp.path())
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let etcd = "https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379";
    for (bad, says) in [
        (vec!["--cluster-name", "prod"], "needs --cluster-name, --public-url and --etcd together"),
        (vec!["--cluster-name", "prod", "--public-url", "http://gw2/", "--etcd", etcd], "--public-url http://gw2/"),
        (vec!["--cluster-name", "p r", "--public-url", "https://gw2/", "--etcd", etcd], "letters, digits"),
        (
            vec!["--cluster-name", "prod", "--public-url", "https://gw2/", "--etcd", etcd, "--etcd-cert", "gw.cer"],
            "--etcd-cert and --etcd-key go together",
        ),
    ] {
        let o = run(&bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{bad:?}: {}", text(&o));
        assert!(!image.join("opt/thingate-mikaka").exists(), "{bad:?} installed something");
    }
    let args = [
        "--cluster-name",
        "prod",
        "--public-url",
        "https://gw2.mikaka.example/thingate/",
        "--etcd",
        etcd,
        "--etcd-ca",
        "ca.pem",
        "--etcd-cert",
        "gw.cer",
        "--etcd-key",
        "gw.key",
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let dest = image.join("opt/thingate-mikaka");
    let ini = std::fs::read_to_string(dest.join("ThinGate.ini")).unwrap();
    for line in [
        "StandaloneMode 0",
        "ClusterName prod",
        "ClusterPublicUrl https://gw2.mikaka.example/thingate/",
        &format!("ClusterEtcdEndpoints {etcd}"),
        "ClusterEtcdCaFile /opt/thingate-mikaka/etcd-ca.pem",
        "ClusterEtcdCertFile /opt/thingate-mikaka/etcd-client.cer",
        "ClusterEtcdKeyFile /opt/thingate-mikaka/etcd-client.key",
    ] {
        assert!(ini.lines().any(|l| l == line), "no {line:?} in {ini}");
    }
    assert!(!ini.lines().any(|l| l == "StandaloneMode 1"), "{ini}");
    assert_eq!(std::fs::read_to_string(dest.join("etcd-client.key")).unwrap(), "client key\n");
    assert_eq!(mode(&dest.join("etcd-client.key")), 0o640);
    assert_eq!(mode(&dest.join("etcd-ca.pem")), 0o644);
    let unit = std::fs::read_to_string(image.join("etc/systemd/system/thingate-mikaka.service")).unwrap();
    assert!(unit.contains("After=network-online.target") && unit.contains("Wants=network-online.target"), "{unit}");
    let again = run(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(!text(&again).contains("installed "), "{}", text(&again));
}

/// The gateway's `install.sh --root` on a stand-in bundle (rendered
/// templates, a fake binary and key): it makes the system user with
/// systemd-sysusers (no login shell), installs ThinGate.ini and ThinGate.key
/// 0640 and, as root, owned by root and that user's group; the state and log
/// folders 0750 and the user's. Upgrading an install whose ThinGate.ini keeps
/// the database beside it moves the database to the state folder and points
/// the (kept, edited) ini there; a run after that changes nothing.
#[cfg(unix)]
#[test]
fn gateway_install_sh_runs_the_gateway_as_its_own_user() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    let (bundle, path) = stand_in_gateway_bundle(tmp.path());
    let install = || {
        let o = Command::new("sh")
            .arg(bundle.join("install.sh"))
            .arg("--root")
            .arg(&image)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(o.status.success(), "install.sh: {}", text(&o));
        text(&o)
    };
    let first = install();
    let user = common::passwd_entry(&image, "thingate-mikaka").unwrap_or_else(|| panic!("no user: {first}"));
    assert_eq!(user[6], "/usr/sbin/nologin", "{user:?}");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), user[3].parse().unwrap());
    assert!(uid != 0 && gid != 0, "{user:?}");
    let dest = image.join("opt/thingate-mikaka");
    let state = image.join("var/lib/thingate-mikaka");
    let as_root = std::fs::metadata(&image).unwrap().uid() == 0;
    for (path, want_mode, owner) in [
        (dest.join("ThinGate.ini"), 0o640, (0, gid)),
        (dest.join("ThinGate.key"), 0o640, (0, gid)),
        (dest.join("ThinGate.cer"), 0o644, (0, 0)),
        (dest.join("thingate"), 0o755, (0, 0)),
        (dest.join("gate_log"), 0o750, (uid, gid)),
        (state.clone(), 0o750, (uid, gid)),
        (dest.clone(), 0o755, (0, 0)),
    ] {
        let m = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}\n{first}", path.display()));
        assert_eq!(mode(&path), want_mode, "{}", path.display());
        if as_root {
            assert_eq!((m.uid(), m.gid()), owner, "{}", path.display());
        }
    }
    if !as_root {
        assert!(first.contains("not root"), "{first}");
    }
    let ini = std::fs::read_to_string(dest.join("ThinGate.ini")).unwrap();
    assert!(ini.lines().any(|l| l == "DatabaseFile /var/lib/thingate-mikaka/MachineDatabase.config"), "{ini}");

    // An older install: the database beside an edited ini that does not name it.
    let old_ini: String = ini.lines().filter(|l| !l.starts_with("DatabaseFile")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dest.join("ThinGate.ini"), format!("{old_ini}SysLogHostname 127.0.0.1\n")).unwrap();
    std::fs::write(dest.join("MachineDatabase.config"), b"machines").unwrap();
    std::fs::create_dir_all(dest.join("backup.MachineDatabase.config")).unwrap();
    std::fs::write(dest.join("backup.MachineDatabase.config/MachineDatabase_1.config"), b"older").unwrap();
    let upgrade = install();
    assert!(upgrade.contains("moved ") && upgrade.contains("added "), "{upgrade}");
    assert_eq!(std::fs::read(state.join("MachineDatabase.config")).unwrap(), b"machines");
    assert_eq!(std::fs::read(state.join("backup.MachineDatabase.config/MachineDatabase_1.config")).unwrap(), b"older");
    assert!(!dest.join("MachineDatabase.config").exists());
    let kept = std::fs::read_to_string(dest.join("ThinGate.ini")).unwrap();
    assert!(kept.contains("SysLogHostname 127.0.0.1\n"), "the edit is kept: {kept}");
    assert!(kept.ends_with("DatabaseFile /var/lib/thingate-mikaka/MachineDatabase.config\n"), "{kept}");
    assert_eq!(mode(&dest.join("ThinGate.ini")), 0o640);
    if as_root {
        assert_eq!(std::fs::metadata(state.join("MachineDatabase.config")).unwrap().uid(), uid);
    }
    let again = install();
    for word in ["installed ", "moved ", "added "] {
        assert!(!again.contains(word), "{again}");
    }
}

/// The order a newcomer types: `new --app-id Mikaka`, then `check`, `ca` and
/// `build` without `--brand`: they work on Mikaka, the only brand under
/// `brands/`, and say so; with a second brand they ask for `--brand` and list
/// both; with none they use the embedded default brand and say so.
#[test]
fn without_brand_the_only_brand_under_brands_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let o = builder(&["check"], tmp.path());
    assert!(stderr(&o).contains("note: no brand under brands/: using the embedded default brand"), "{}", text(&o));

    let o = builder(&["new", "--app-id", "Mikaka", "--gateway-url", "https://gw.mikaka.example/thingate/"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = builder(&["check"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("note: using the brand in brands/mikaka (the only one under brands/)"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("brand Mikaka is valid"), "{}", text(&o));

    let gw = tmp.path().join("brands/mikaka/certs/ThinGate.cer");
    let before = std::fs::read(&gw).unwrap();
    let o = builder(&["ca", "gateway-cert", "--host", "gw2.mikaka.example"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("using the brand in brands/mikaka"), "{}", text(&o));
    assert_ne!(std::fs::read(&gw).unwrap(), before, "Mikaka's gateway certificate was re-issued");
    assert!(text(&o).contains("brands/mikaka/certs/ThinGate.cer"), "{}", text(&o));

    // `build` picks Mikaka before any work: the msvc preflight stops it...
    let out = tmp.path().join("out");
    let o = Command::new(common::builder_bin())
        .args(["build", "--target", "windows", "--toolchain", "msvc", "--out", out.to_str().unwrap()])
        .current_dir(tmp.path())
        .env("LIB", "")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("note: using the brand in brands/mikaka"), "{}", text(&o));
    // ...and it checks Mikaka, not the default brand: a fault in Mikaka's
    // manifest stops it (before compiling anything).
    let manifest = tmp.path().join("brands/mikaka/brand.toml");
    let good = std::fs::read_to_string(&manifest).unwrap();
    let port = good.lines().find(|l| l.starts_with("rpc_port")).unwrap().to_string();
    std::fs::write(&manifest, good.replace(&port, "rpc_port = 3389")).unwrap();
    let o =
        builder(&["build", "--target", "linux", "--linux-arch", "x86_64", "--out", out.to_str().unwrap()], tmp.path());
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("the brand in brands/mikaka is not valid") && t.contains("[rpc_port]"), "{t}");
    assert!(!out.exists(), "nothing was made");
    std::fs::write(&manifest, &good).unwrap();

    // A second brand: every command asks which, lists both, and changes nothing.
    assert!(builder(&["new", "--app-id", "Acme"], tmp.path()).status.success());
    let before = std::fs::read(&gw).unwrap();
    for args in [
        &["check"][..],
        &["ca", "regen"],
        &["ca", "gateway-cert", "--host", "x.example"],
        &["build", "--target", "windows"],
    ] {
        let o = builder(args, tmp.path());
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        let t = text(&o);
        assert!(t.contains("there are 2 brands under brands/: brands/acme, brands/mikaka"), "{args:?}: {t}");
        assert!(t.contains("--brand"), "{args:?}: {t}");
    }
    assert_eq!(std::fs::read(&gw).unwrap(), before, "nothing changed");
    assert!(!out.exists());
    let o = builder(&["check", "--brand", "brands/acme"], tmp.path());
    assert!(o.status.success() && !stderr(&o).contains("note:"), "{}", text(&o));
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
    for n in [
        "x86_64-pc-windows-gnu",
        "makensis",
        "wixl",
        "osslsigncode",
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "cargo-zigbuild",
        "zig",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    assert!(v.as_array().unwrap().iter().all(|r| {
        let i = r["install"].as_str().unwrap();
        ["apt-get install -y ", "rustup target add ", "cargo install --locked ", "scripts/setup.sh "]
            .iter()
            .any(|p| i.starts_with(p))
    }));
}
