//! Gateway operations: `/metrics`, and certificate rotation with SIGHUP.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use thin_e2e::procs::{bin, Proc};
use thin_e2e::*;
use thin_protocol::secret::Secret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sessions_registrations_and_bytes() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let link = g.link(gw.addr);
    let target = echo_server().await;
    let _pc = OfficePc::start(&link, "metered", "pw", target).await;
    let t = thin_client::client_agent::connect(&link, "metered", &Secret::new("pw")).await.unwrap();
    let (a, b, n) = echo_check(t.open_stream().await.unwrap(), 1_000_000, 5).await;
    assert_eq!((a, n), (b, 1_000_000));
    let (status, body) = https::get(gw.addr, &g.pki.ca_pem, "/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str| -> u64 {
        body.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {body}")).parse().unwrap()
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
    assert_eq!(thingate::thinstat::page(&gw.gateway, &req, far).0, 403);
    gw.shutdown().await;
}

async fn served_cert(addr: SocketAddr, ca: &str) -> Vec<u8> {
    let s = https::tls_connect(addr, ca).await;
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_sessions_and_refuses_a_bad_one() {
    let g = GateDir::new("");
    let mut cmd = Command::new(bin("thingate"));
    cmd.arg("run").arg("--config").arg(g.ini());
    let mut gw = Proc::spawn(cmd, None);
    let addr: SocketAddr = gw.wait_line("listening on ", Duration::from_secs(20)).parse().unwrap();
    let link = g.link(addr);
    let target = echo_server().await;
    let pc = OfficePc::start(&link, "rotating", "pw", target).await;
    let session_before = match &*pc.state.borrow() {
        thin_client::server_agent::ServerState::Online { session_id, .. } => session_id.clone(),
        other => panic!("{other:?}"),
    };
    let tunnel = thin_client::client_agent::connect(&link, "rotating", &Secret::new("pw")).await.unwrap();
    let old = served_cert(addr, &g.pki.ca_pem).await;
    assert_eq!(old, thin_protocol::tls::load_certs(&g.dir.path().join("ThinGate.cer")).unwrap()[0].to_vec());

    // A renewal from the same CA.
    let other_key = thin_e2e::Pki::new().key_pem;
    let renewed = g.pki.renewed_leaf();
    std::fs::write(g.dir.path().join("ThinGate.cer"), &renewed.0).unwrap();
    std::fs::write(g.dir.path().join("ThinGate.key"), &renewed.1).unwrap();
    let pid = nix::unistd::Pid::from_raw(gw.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
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
    let (a, b, n) = echo_check(tunnel.open_stream().await.unwrap(), 200_000, 7).await;
    assert_eq!((a, n), (b, 200_000));
    match &*pc.state.borrow() {
        thin_client::server_agent::ServerState::Online { session_id, .. } => assert_eq!(session_id, &session_before),
        other => panic!("session dropped: {other:?}"),
    }

    // A bad certificate (key of another certificate) is refused; the current one stays.
    std::fs::write(g.dir.path().join("ThinGate.key"), &other_key).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_cert(addr, &g.pki.ca_pem).await, new, "the old (current) certificate stays in use");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let (st, err) = gw.finish(Duration::from_secs(15));
    assert!(st.success());
    assert!(err.contains("new certificate refused, the old one stays in use"), "{err}");
}
