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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_are_posted_only_when_configured_with_backoff_and_no_personal_data() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A receiver that fails the first post and accepts the next ones.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(std::time::Instant, String)>(8);
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut b = [0u8; 4096];
            while !String::from_utf8_lossy(&buf).contains("}") {
                let k = s.read(&mut b).await.unwrap();
                if k == 0 {
                    break;
                }
                buf.extend_from_slice(&b[..k]);
            }
            n += 1;
            let status = if n == 1 { "500 Internal Server Error" } else { "200 OK" };
            s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await.unwrap();
            let _ = tx.send((std::time::Instant::now(), String::from_utf8_lossy(&buf).into_owned())).await;
        }
    });
    let gw = TestGateway::with_ini(&format!("StatPostUrl http://127.0.0.1:{port}/stat\nStatPostInterval 1000")).await;
    let _pc = gw.office_pc("secret-pcid", "pw").await;
    let (t1, first) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    let (t2, second) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    assert!(first.starts_with("POST /stat HTTP/1.1"), "{first}");
    // After the failed first post the interval doubled (2 s +-20 %).
    assert!(t2 - t1 >= Duration::from_millis(1500), "{:?}", t2 - t1);
    let json: serde_json::Value = serde_json::from_str(second.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["server_sessions"], 1);
    assert_eq!(json["registered_machines"], 1);
    assert!(json["gateway_id"].as_str().unwrap().len() == 16);
    for leak in ["secret-pcid", "127.0.0.1", "MSID", "pw"] {
        assert!(!second.split("\r\n\r\n").nth(1).unwrap().contains(leak), "{leak} in {second}");
    }
    gw.shutdown().await;

    // Without StatPostUrl nothing is posted.
    let gw = TestGateway::with_ini("StatPostInterval 1000").await;
    assert!(tokio::time::timeout(Duration::from_millis(2500), rx.recv()).await.is_err(), "nothing posted");
    gw.shutdown().await;
}
