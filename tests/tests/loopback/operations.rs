//! Gateway operations: `/metrics`, and certificate rotation with SIGHUP.

use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal::{SIGHUP, SIGTERM};
use thin_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sessions_registrations_and_bytes() {
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("metered", "pw").await;
    let t = gw.connect("metered", "pw").await;
    assert_tunnel_echo(&t, 1_000_000, 5).await;
    let (status, body) = gw.get("/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {body}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("thingate_server_sessions"), 1);
    assert_eq!(value("thingate_registered_machines"), 1);
    assert_eq!(value("thingate_registrations_total"), 1);
    assert_eq!(value("thingate_client_sessions"), 1);
    assert!(value("thingate_relayed_bytes_client_to_server_total") >= 1_000_000);
    assert!(value("thingate_relayed_bytes_server_to_client_total") >= 1_000_000);
    assert!(value("thingate_connections_total") >= 4);
    assert!(body.contains("# TYPE thingate_connections_total counter"));
    let req = thin_protocol::http::Request { method: "GET".into(), target: "/metrics".into(), headers: vec![] };
    let far: SocketAddr = "198.51.100.9:1234".parse().unwrap();
    assert_eq!(thingate::thinstat::page(&gw.gateway.figures(), &req, far).0, 403);
    gw.shutdown().await;
}

async fn served_cert(addr: SocketAddr, ca: &str) -> Vec<u8> {
    let s = https::tls_connect(addr, ca).await;
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_sessions_and_refuses_a_bad_one() {
    let g = GateDir::new("");
    let (gw, addr) = g.spawn(&[]);
    let link = g.link(addr);
    let pc = OfficePc::start(&link, "rotating", "pw", echo_server().await).await;
    let session_before = pc.session_id();
    let tunnel = connect(&link, "rotating", "pw").await;
    let old = served_cert(addr, &g.pki.ca_pem).await;
    assert_eq!(old, thin_protocol::tls::load_certs(&g.path("ThinGate.cer")).unwrap()[0].to_vec());

    // A renewal from the same CA.
    let other_key = thin_e2e::Pki::new().key_pem;
    let renewed = g.pki.renewed_leaf();
    g.set_cert(renewed);
    gw.signal(SIGHUP);
    let ca = g.pki.ca_pem.clone();
    let new = wait_for("new certificate served", Duration::from_secs(10), || {
        let ca = ca.clone();
        let old = old.clone();
        async move {
            let c = served_cert(addr, &ca).await;
            (c != old).then_some(c)
        }
    })
    .await;
    // The established session and tunnel are untouched.
    assert_tunnel_echo(&tunnel, 200_000, 7).await;
    assert_eq!(pc.session_id(), session_before, "the session was not dropped");

    // A bad certificate (key of another certificate) is refused; the current one stays.
    std::fs::write(g.path("ThinGate.key"), &other_key).unwrap();
    gw.signal(SIGHUP);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_cert(addr, &g.pki.ca_pem).await, new, "the old (current) certificate stays in use");
    gw.signal(SIGTERM);
    let (st, err) = gw.finish(Duration::from_secs(15));
    assert!(st.success());
    assert!(err.contains("new certificate refused, the old one stays in use"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_daily_files_and_syslog_and_never_hold_a_secret() {
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let g = GateDir::new(&format!(
        "SaveLog 1\nSysLogHostname 127.0.0.1\nSysLogPort {}",
        syslog.local_addr().unwrap().port()
    ));
    let (gw, addr) = g.spawn(&[("RUST_LOG", "debug")]);
    let link = g.link(addr);
    let password = "Pw-Very-Secret-4711";
    let pc = OfficePc::start(&link, "logged", password, echo_server().await).await;
    let _ok = connect(&link, "logged", password).await;
    let _bad = try_connect(&link, "logged", "Wrong-Guess-0815").await;
    gw.signal(SIGTERM);
    let (_, stderr) = gw.finish(Duration::from_secs(15));

    let logdir = g.path("gate_log");
    let files: Vec<_> = std::fs::read_dir(&logdir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(name, format!("thingate.log.{today}"), "daily file name");
    let file_log = std::fs::read_to_string(&files[0]).unwrap();
    assert!(file_log.contains("registered") && file_log.contains("tunnel paired"), "{file_log}");
    let mut sys = String::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = syslog.recv(&mut buf) {
        sys.push_str(&String::from_utf8_lossy(&buf[..n]));
        sys.push('\n');
    }
    assert!(sys.contains("<134>thingate[") && sys.contains("registered"), "{sys}");
    let key = std::fs::read_to_string(g.path("ThinGate.key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    let server_key = std::fs::read_to_string(pc.dir.path().join("server.key")).unwrap();
    for (what, log) in [("file", &file_log), ("syslog", &sys), ("stderr", &stderr)] {
        for secret in [password, "Wrong-Guess-0815", key_body, server_key.lines().nth(1).unwrap()] {
            assert!(!log.contains(secret), "{what} log contains a secret");
        }
    }
}

/// One POST as an HTTP receiver sees it: the peer's address, the head, the body.
struct Posted {
    at: std::time::Instant,
    from: SocketAddr,
    head: String,
    json: serde_json::Value,
}

/// A small HTTP/1.1 receiver on 127.0.0.1: reads each request's head and its
/// `Content-Length` body, answers 500 to the first and 200 to the others.
async fn stat_receiver() -> (u16, tokio::sync::mpsc::Receiver<Posted>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        for n in 1.. {
            let (s, from) = l.accept().await.unwrap();
            let mut s = BufReader::new(s);
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                assert!(s.read_line(&mut head).await.unwrap() > 0 && head.len() < 8192, "{head}");
            }
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).expect("Content-Length").parse().unwrap();
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.unwrap();
            let status = if n == 1 { "500 Internal Server Error" } else { "200 OK" };
            s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await.unwrap();
            let json = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
            let _ = tx.send(Posted { at: std::time::Instant::now(), from, head, json }).await;
        }
    });
    (port, rx)
}

/// The statistics poster sends the fields the manual lists (gateway ID, IP
/// address, host name, OS version, version, counts), each with a value this
/// test knows, so nothing about a user or an office PC; it backs off after a
/// failed post; without `StatPostUrl` nothing is posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_carry_the_manuals_fields_only_back_off_and_are_off_by_default() {
    let (port, mut rx) = stat_receiver().await;
    let gw = TestGateway::with_ini(&format!("StatPostUrl http://127.0.0.1:{port}/stat\nStatPostInterval 1000")).await;
    let pc = gw.office_pc("secret-pcid", "pw").await;
    let t = gw.connect("secret-pcid", "pw").await;
    assert_tunnel_echo(&t, 10_000, 1).await;
    let within = Duration::from_secs(10);
    let first = tokio::time::timeout(within, rx.recv()).await.expect("a post within 10 s").unwrap();
    let second = tokio::time::timeout(within, rx.recv()).await.expect("a post within 10 s").unwrap();
    assert!(first.head.starts_with("POST /stat HTTP/1.1\r\n"), "{}", first.head);
    assert!(first.head.contains("\r\nContent-Type: application/json\r\n"), "{}", first.head);
    // After the failed first post the interval doubled (2 s +-20 %).
    assert!(second.at - first.at >= Duration::from_millis(1500), "{:?}", second.at - first.at);

    let j = &second.json;
    let mut keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = thingate::stats_post::FIELDS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "the exact field set: {j}");
    let cert = std::fs::read(gw.dir.path("ThinGate.cer")).unwrap();
    let id = {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(&cert)[..8])
    };
    let (host, os_version) = thingate::stats_post::host_facts();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(!host.is_empty() && os_version.contains(kernel.trim()), "{host:?} {os_version:?}");
    assert_eq!(j["gateway_id"], id);
    assert_eq!(j["ip_address"], second.from.ip().to_string(), "the address the gateway posts from");
    assert_eq!(j["host_name"], host);
    assert_eq!(j["os"], "linux");
    assert_eq!(j["os_version"], os_version);
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    assert!(j["uptime_seconds"].as_u64().is_some_and(|s| s < 60), "{j}");
    for (key, value) in
        [("server_sessions", 1), ("registered_machines", 1), ("client_sessions", 1), ("client_sessions_total", 1)]
    {
        assert_eq!(j[key], value, "{key}: {j}");
    }
    for key in ["bytes_client_to_server", "bytes_server_to_client"] {
        assert!(j[key].as_u64().is_some_and(|b| b >= 10_000), "{key}: {j}");
    }
    let body = j.to_string();
    let msid = gw.state().sessions.get("secret-pcid").unwrap().msid.clone();
    // The office PC's DNS name (127.0.0.1: localhost) is not sent, unless it is this host's own.
    let pc_name = if host == "localhost" { "secret-pcid" } else { "localhost" };
    for leak in ["secret-pcid", &msid, &pc.session_id(), pc_name] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
    drop(t);
    gw.shutdown().await;

    // Without StatPostUrl nothing is posted.
    let gw = TestGateway::with_ini("StatPostInterval 1000").await;
    assert!(tokio::time::timeout(Duration::from_millis(2500), rx.recv()).await.is_err(), "nothing posted");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_policy_at_once_and_a_bad_file_leaves_the_rules_in_force() {
    let g = GateDir::new("");
    g.write_policy("SERVER_MESSAGE first\n");
    let (gw, addr) = g.spawn(&[("RUST_LOG", "info")]);
    let pc = OfficePc::start(&g.link(addr), "hup-desk", "pw", echo_server().await).await;
    wait_for("the first rules at the office PC", Duration::from_secs(15), || {
        let m = pc.policy.get().server_message;
        async move { (m.as_deref() == Some("first")).then_some(()) }
    })
    .await;

    // A bad file: refused once by the poll; each SIGHUP re-reads it at once,
    // refuses it again (the same bytes, which the poll would not re-read), and
    // the rules in force stay.
    g.write_policy("SERVER_MESSAGE second\nIDLE_TIMEOUT soon\n");
    let refusals = |gw: &procs::Proc| gw.stderr().matches("new policy refused").count();
    wait_for("the poll to refuse the bad file", Duration::from_secs(15), || {
        let n = refusals(&gw);
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let before = refusals(&gw);
    gw.signal(SIGHUP);
    wait_for("SIGHUP to refuse it again", Duration::from_secs(15), || {
        let n = refusals(&gw);
        async move { (n > before).then_some(()) }
    })
    .await;
    assert_eq!(pc.policy.get().server_message.as_deref(), Some("first"), "the rules in force stay");

    // Fixed: the office PC holds the new rules without a restart.
    g.write_policy("SERVER_MESSAGE second\n");
    gw.signal(SIGHUP);
    wait_for("the new rules at the office PC", Duration::from_secs(15), || {
        let m = pc.policy.get().server_message;
        async move { (m.as_deref() == Some("second")).then_some(()) }
    })
    .await;
    gw.signal(SIGTERM);
    let (st, _) = gw.finish(Duration::from_secs(15));
    assert!(st.success());
}
