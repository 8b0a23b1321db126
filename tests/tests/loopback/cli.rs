//! The three binaries driven as an admin and the users would: the command-line
//! contract, the daemon, bad configuration, kill -9 during registrations.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal::{SIGKILL, SIGTERM};
use thin_e2e::procs::{bin, thinclient_connect, thinsvr, Proc};
use thin_e2e::*;

/// `thingate run` on `g`, checking that its first line says where it listens.
fn gateway_proc(g: &GateDir) -> (Proc, SocketAddr) {
    let (p, addr) = g.spawn(&[]);
    assert!(p.seen[0].starts_with("listening on "), "first line: {:?}", p.seen);
    (p, addr)
}

#[test]
fn every_binary_has_version_and_help() {
    for b in ["thingate", "thinsvr", "thinclient"] {
        for flag in ["--version", "--help"] {
            let out = Command::new(bin(b)).arg(flag).output().unwrap();
            assert!(out.status.success(), "{b} {flag}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(b) || flag == "--help", "{b} {flag}: {text}");
            if flag == "--version" && b != "thingate" {
                // The apps name their brand (default brand here), from the string tables.
                assert!(text.contains("AppId Private") && text.contains("Thin Telework"), "{b}: {text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thingate_run_answers_pack_and_thinstat_and_stops_on_sigterm() {
    let g = GateDir::new("");
    let (p, addr) = gateway_proc(&g);
    let get = |path| https::get(addr, &g.pki.ca_pem, path);
    let (status, body) = get("/thingate/").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("PACK"), "{body}");
    assert_eq!(body.lines().count(), 1);
    let (status, body) = get("/thinstat/").await;
    assert_eq!((status, body.lines().next()), (200, Some("NumSession 0")));
    let (status, _) = get("/other").await;
    assert_eq!(status, 404);
    p.signal(SIGTERM);
    let (st, _) = p.finish(Duration::from_secs(15));
    assert!(st.success(), "{st}");
}

#[test]
fn a_bad_ini_value_stops_the_start_and_names_the_line() {
    let g = GateDir::new("DosProtection_MaxConnectionsPerIp lots");
    let out = Command::new(bin("thingate")).arg("run").arg("--config").arg(g.ini()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ThinGate.ini:8") && err.contains("DosProtection_MaxConnectionsPerIp"), "{err}");
    assert!(out.stdout.is_empty(), "nothing listened");
}

/// `StandaloneMode 0` without the cluster keys: refused with the line, the
/// keys it needs and the fix; nothing is written.
#[test]
fn standalone_mode_0_without_the_cluster_keys_is_refused_naming_them() {
    let g = GateDir::new("StandaloneMode 0");
    let out = Command::new(bin("thingate")).arg("run").arg("--config").arg(g.ini()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ThinGate.ini:8: ClusterEtcdEndpoints: unset, but StandaloneMode 0"), "{err}");
    for key in ["ClusterEtcdEndpoints", "ClusterPublicUrl", "ClusterName", "set \"StandaloneMode 1\""] {
        assert!(err.contains(key), "{key} is not named: {err}");
    }
    assert!(out.stdout.is_empty(), "nothing listened");
    assert!(!g.path("MachineDatabase.config").exists() && !g.path("gate_log").exists(), "nothing written");
}

/// The manual's sequence with a bundle folder (the binary beside its
/// ThinGate.ini): `thingate` alone prints the banner and the usage;
/// `/path/thingate start` from another folder (whose own ThinGate.ini would
/// not even parse) starts the gateway of the binary's folder; an rc.local
/// line does the same from `/`; `./thingate stop` in the folder stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thingate_reads_the_ini_beside_itself_from_any_folder() {
    let g = GateDir::new("");
    let exe = g.path("thingate");
    if std::fs::hard_link(bin("thingate"), &exe).is_err() {
        std::fs::copy(bin("thingate"), &exe).unwrap();
    }
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("ThinGate.ini"), "ListenPort not-a-port\n").unwrap();
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let in_dir = |dir: &std::path::Path, prog: &std::path::Path, arg: Option<&str>| {
        Command::new(prog).args(arg).current_dir(dir).output().unwrap()
    };

    let banner = in_dir(elsewhere.path(), &exe, None);
    let said = text(&banner);
    assert!(banner.status.success(), "{said}");
    for want in [
        format!("ThinGate service program, version {}", env!("CARGO_PKG_VERSION")),
        "thingate start".into(),
        "thingate stop".into(),
        g.ini().canonicalize().unwrap().display().to_string(),
    ] {
        assert!(said.contains(&want), "{want:?} missing from the banner:\n{said}");
    }

    let start = in_dir(elsewhere.path(), &exe, Some("start"));
    let said = text(&start);
    assert!(start.status.success(), "{said}");
    assert!(said.contains("The ThinGate service has been started."), "{said}");
    let addr: SocketAddr = said.lines().find_map(|l| l.strip_prefix("listening on ")).unwrap().parse().unwrap();
    let (status, body) = https::get(addr, &g.pki.ca_pem, "/thingate/").await;
    assert!(status == 200 && body.starts_with("PACK"), "{body}");
    assert!(g.path("thingate.pid").exists() && !elsewhere.path().join("thingate.pid").exists());
    let status = in_dir(std::path::Path::new("/"), &exe, Some("status"));
    assert!(status.status.success(), "{}", text(&status));

    let stop = in_dir(g.dir.path(), std::path::Path::new("./thingate"), Some("stop"));
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(text(&stop).contains("ThinGate service has been stopped."));
    assert!(!g.path("thingate.pid").exists());

    // rc.local runs its lines from `/` as root; here as this user.
    let rc_local = elsewhere.path().join("rc.local");
    std::fs::write(&rc_local, format!("#!/bin/sh\n{} start\n", exe.display())).unwrap();
    let boot = Command::new("sh").arg(&rc_local).current_dir("/").output().unwrap();
    assert!(boot.status.success(), "{}", text(&boot));
    let addr: SocketAddr = text(&boot).lines().find_map(|l| l.strip_prefix("listening on ")).unwrap().parse().unwrap();
    let (status, _) = https::get(addr, &g.pki.ca_pem, "/thingate/").await;
    assert_eq!(status, 200);
    let stop = in_dir(std::path::Path::new("/"), &exe, Some("stop"));
    assert!(stop.status.success(), "{}", text(&stop));

    // Without an ini beside it, the error names the path and the fix.
    std::fs::remove_file(g.ini()).unwrap();
    let start = in_dir(elsewhere.path(), &exe, Some("run"));
    let said = text(&start);
    assert_eq!(start.status.code(), Some(2), "{said}");
    let beside = g.dir.path().canonicalize().unwrap().join("ThinGate.ini");
    assert!(said.contains(&format!("cannot read {}", beside.display())), "{said}");
    assert!(said.contains("--config"), "{said}");
}

#[test]
fn a_malformed_database_stops_the_start_and_is_not_overwritten() {
    let g = GateDir::new("");
    let db = g.path("MachineDatabase.config");
    let bad =
        "declare root\r\n{\r\n\tuint Revision 5\r\n\tdeclare Machines\r\n\t{\r\n\t\tbogus line here\r\n\t}\r\n}\r\n";
    std::fs::write(&db, bad).unwrap();
    let out = Command::new(bin("thingate")).arg("run").arg("--config").arg(g.ini()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MachineDatabase.config:6"), "{err}");
    assert_eq!(std::fs::read_to_string(&db).unwrap(), bad);
}

#[test]
fn daemon_start_status_stop() {
    let g = GateDir::new("");
    let ini = g.ini();
    let run = |what: &str| Command::new(bin("thingate")).arg(what).arg("--config").arg(&ini).output().unwrap();
    let st = run("status");
    assert_eq!(st.status.code(), Some(3), "not running yet");
    let start = run("start");
    assert!(start.status.success(), "{}", String::from_utf8_lossy(&start.stderr));
    assert!(String::from_utf8_lossy(&start.stdout).starts_with("listening on 127.0.0.1:"));
    assert!(!run("start").status.success(), "a second start is refused");
    // `status` reads the running gateway's /metrics; its own connection shows
    // in the next answer, so the figures are live, not read from a file.
    let accepted = |out: &std::process::Output| -> u64 {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(text.contains("is running (pid "), "{text}");
        assert!(text.contains("office PCs online       0 (registered 0)"), "{text}");
        assert!(text.contains("relayed                 0 B client -> server"), "{text}");
        let line = text.lines().find(|l| l.trim_start().starts_with("connections ")).expect("connections line");
        let n = line.split(", ").nth(1).and_then(|p| p.split_whitespace().next()).and_then(|n| n.parse().ok());
        n.unwrap_or_else(|| panic!("accepted count in {line:?}"))
    };
    let first = accepted(&run("status"));
    let second = accepted(&run("status"));
    assert!(second > first, "live figures: {first} then {second}");
    let stop = run("stop");
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(!g.path("thingate.pid").exists());
    assert_eq!(run("status").status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_binaries_carry_a_tcp_service_end_to_end() {
    let g = GateDir::new("");
    let (_gw, addr) = gateway_proc(&g);
    let ep = g.entry_point(addr);
    let target = echo_server().await;
    let cfg = tempfile::tempdir().unwrap();
    // A weak password is refused before anything is registered.
    for (weak, says) in [("sesame", "at least 10 characters"), ("cli-desk-2024", "too easy to guess")] {
        let reg = thinsvr(&ep, cfg.path(), &["register", "--pcid", "CLI-Desk", "--password-stdin"]);
        let (st, err) = Proc::spawn(reg, Some(&format!("{weak}\n"))).finish(Duration::from_secs(30));
        assert!(!st.success() && err.contains(says), "{weak}: {err}");
        assert!(!cfg.path().join("password.json").exists());
    }
    let reg = thinsvr(&ep, cfg.path(), &["register", "--pcid", "CLI-Desk", "--password-stdin"]);
    let (st, err) = Proc::spawn(reg, Some("open sesame, kind tortoise\n")).finish(Duration::from_secs(30));
    assert!(st.success(), "{err}");
    let key = cfg.path().join("password.json");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777, 0o600);
    assert!(!std::fs::read_to_string(&key).unwrap().contains("open sesame, kind tortoise"));

    let mut svr = Proc::spawn(thinsvr(&ep, cfg.path(), &["run", "--target", &target.to_string()]), None);
    svr.wait_line("online as cli-desk", Duration::from_secs(20));

    let mut cli = Proc::spawn(thinclient_connect(&ep, "cli-desk"), Some("open sesame, kind tortoise\n"));
    let local: SocketAddr = cli.wait_line("listening on ", Duration::from_secs(30)).parse().unwrap();
    for seed in 0..3 {
        assert_tcp_echo(local, 1 << 20, seed).await;
    }

    let (st, err) = Proc::spawn(thinclient_connect(&ep, "cli-desk"), Some("guess\n")).finish(Duration::from_secs(30));
    assert!(!st.success());
    assert!(err.contains("wrong password"), "{err}");
    assert!(!err.contains("guess"), "the password is never echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_registrations_leaves_a_readable_database() {
    let g = GateDir::new("");
    let db = g.path("MachineDatabase.config");
    let mut registered_total = 0;
    for round in 0..4u64 {
        let (gw, addr) = gateway_proc(&g);
        let link = g.link(addr);
        let mut tasks = Vec::new();
        for i in 0..12u64 {
            let link = link.clone();
            tasks.push(tokio::spawn(async move { try_register(&link, &format!("k{round}-{i}"), "pw").await.is_ok() }));
        }
        // Kill while registrations are in flight (after some have landed).
        let dbc = db.clone();
        wait_for("first registration saved", Duration::from_secs(30), || {
            let n = read(&dbc).matches("declare MSID").count();
            async move { (n > registered_total).then_some(()) }
        })
        .await;
        gw.signal(SIGKILL);
        drop(gw);
        for t in tasks {
            let _ = t.await;
        }
        let opened = thingate::machine_db::MachineDb::open(&db).expect("database readable after kill -9");
        assert!(opened.len() > registered_total, "round {round}: some registrations survived");
        registered_total = opened.len();
        g.set_port(0);
    }
}

#[test]
fn thingate_doctor_compares_the_host_with_the_recommended_settings() {
    let out = Command::new(bin("thingate")).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    assert!(text.contains(&format!("net.core.somaxconn = {} (wanted 1024)", somaxconn.trim())), "{text}");
    assert!(text.contains("nofile"), "{text}");
    let diffs = text.matches("DIFF").count();
    assert_eq!(out.status.success(), diffs == 0, "{text}");
    if diffs > 0 {
        assert!(text.contains("fix: "), "{text}");
    }
    // The sizing, from this host's cores, memory and open-file limit.
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(text.contains(&format!("this host: {cores} cores, ")), "{text}");
    let sessions: u64 = text
        .split("office PCs connected at once: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no session count: {text}"));
    assert!(sessions > 0, "{text}");
    assert!(text.contains(" Gbit/s (unless the network is slower), about "), "{text}");

    // With a ThinGate.ini: its keepalive is used, and a MaxServerSessions
    // beyond what the host holds is pointed out.
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("ThinGate.ini");
    std::fs::write(&ini, "TunnelKeepAlive 20000\nTunnelTimeout 60000\nMaxServerSessions 4000000000\n").unwrap();
    let out = Command::new(bin("thingate")).arg("doctor").arg("--config").arg(&ini).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive every 20000 ms"), "{text}");
    assert!(text.contains("note: MaxServerSessions 4000000000 is more than this host holds"), "{text}");
    // A broken ini is named, and nothing is sized from it.
    std::fs::write(&ini, "MaxServerSessions lots\n").unwrap();
    let out = Command::new(bin("thingate")).arg("doctor").arg("--config").arg(&ini).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ThinGate.ini") && err.contains("MaxServerSessions"), "{err}");
}

#[test]
fn the_apps_speak_the_users_language_on_the_command_line_too() {
    let cfg = tempfile::tempdir().unwrap();
    let run = |lang: &str, args: &[&str]| {
        let o = Command::new(bin("thinsvr"))
            .arg("--config-dir")
            .arg(cfg.path())
            .args(args)
            .env("THIN_LANG", lang)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, _) = run("ja", &["otp", "--email", "alice@example.org"]);
    assert!(ok && out.contains("ワンタイムパスワードを有効にしました") && out.contains("alice@example.org"), "{out}");
    let (ok, out, _) = run("en", &["otp", "--disable"]);
    assert!(ok && out.trim() == "one-time passwords off", "{out}");
    let (ok, _, err) = run("ja", &["otp", "--email", "not-an-address"]);
    assert!(!ok && err.starts_with("thinsvr: エラー: "), "{err}");
}

#[test]
fn the_apps_help_is_in_the_users_language() {
    let help = |app: &str, lang: &str, args: &[&str]| {
        let o = Command::new(bin(app)).args(args).arg("--help").env("THIN_LANG", lang).output().unwrap();
        assert!(o.status.success(), "{app} {args:?} --help");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let ja = help("thinclient", "ja", &["connect"]);
    for want in [
        "使い方:",
        "引数:",
        "オプション:",
        "会社の PC のコンピューター ID",
        "[既定値: 127.0.0.1:0]",
        "ヘルプを表示します",
    ] {
        assert!(ja.contains(want), "no {want:?} in:\n{ja}");
    }
    for english in ["Usage:", "Options:", "Computer ID of the office PC", "[default:", "Print help", "false"] {
        assert!(!ja.contains(english), "{english:?} left in:\n{ja}");
    }
    let en = help("thinclient", "en", &["connect"]);
    assert!(
        en.contains("Usage:") && en.contains("Computer ID of the office PC") && en.contains("[default: 127.0.0.1:0]"),
        "{en}"
    );
    let ja = help("thinsvr", "ja", &[]);
    for want in [
        "コマンド:",
        "コンピューター ID を取得 (または変更) し、パスワードを設定します",
        "サービスのローカル管理ポート",
    ] {
        assert!(ja.contains(want), "no {want:?} in:\n{ja}");
    }
    let ja = help("thinsvr", "ja", &["otp"]);
    assert!(ja.contains("ワンタイムパスワードを受け取るメールアドレス"), "{ja}");
}

#[test]
fn command_line_mistakes_are_told_in_the_users_language() {
    let run = |app: &str, lang: &str, args: &[&str]| {
        let o = Command::new(bin(app))
            .args(args)
            .env("THIN_LANG", lang)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let cases: [(&str, &[&str], &str); 5] = [
        ("thinclient", &["--bogus"], "thinclient: エラー: 予期しない引数 '--bogus' があります"),
        ("thinclient", &["conect"], "thinclient: エラー: 'conect' というコマンドはありません"),
        (
            "thinclient",
            &["connect", "desk-01", "--password-stdin", "--listen", "nope"],
            "'--listen <LISTEN>' の値 'nope' は使えません",
        ),
        ("thinclient", &["connect", "desk-01"], "次の指定がありません: --password-stdin"),
        (
            "thinsvr",
            &["otp", "--email", "a@example.org", "--disable"],
            "'--email <ADDR>' と '--disable' は同時に指定できません",
        ),
    ];
    for (app, args, want) in cases {
        let (code, err) = run(app, "ja", args);
        assert_eq!(code, Some(2), "{app} {args:?}: {err}");
        assert!(err.contains(want), "{app} {args:?}: want {want:?} in:\n{err}");
        assert!(err.contains(&format!("詳しくは '{app} --help' を実行してください。")), "{err}");
        assert!(!err.contains("error:") && !err.contains("Usage"), "English left in:\n{err}");
    }
    let (code, err) = run("thinclient", "en", &["--bogus"]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with(
            "thinclient: error: unexpected argument '--bogus'\nFor more information, try 'thinclient --help'."
        ),
        "{err}"
    );
}

/// A cluster member whose etcd does not answer exits at start with the
/// endpoints named and the fix, within its `ClusterEtcdTimeout`.
#[test]
fn a_cluster_member_without_etcd_exits_naming_the_endpoints() {
    let port = thin_e2e::free_port();
    let g = GateDir::new(&format!(
        "StandaloneMode 0\nClusterEtcdEndpoints http://127.0.0.1:{port}\nClusterPublicUrl https://gw1.test/\n\
         ClusterName c\nClusterEtcdTimeout 300"
    ));
    let t = std::time::Instant::now();
    let out = Command::new(bin("thingate")).arg("run").arg("--config").arg(g.ini()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "took {:?}", t.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster edition (StandaloneMode 0): cannot connect to etcd at"), "{err}");
    assert!(err.contains(&format!("http://127.0.0.1:{port}")) && err.contains("ClusterEtcdEndpoints"), "{err}");
    assert!(out.stdout.is_empty(), "nothing listened");
}
