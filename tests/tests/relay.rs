//! End-to-end relay tests: gateway, office PC and home PC on loopback, driven
//! through the library entry points (the CLI tests drive the binaries).

use std::time::Duration;

use thin_e2e::*;
use thin_protocol::messages::ErrorCode;
use thin_protocol::secret::Secret;
use thin_tunnel::client_agent::{self, ClientError};
use thin_tunnel::e2e::LoginError;
use thin_tunnel::link::LinkError;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_mib_each_way_with_sha256() {
    init_logging();
    let g = GateDir::new("");
    let gw = g.start().await;
    let link = g.link(gw.addr);
    let target = echo_server().await;
    let _pc = OfficePc::start(&link, "Desk-01", "s3cret pw", target).await;
    let tunnel = client_agent::connect(&link, "desk-01", &Secret::new("s3cret pw")).await.unwrap();
    let st = tunnel.open_stream().await.unwrap();
    let len = 64 << 20;
    let (sent, got, n) = echo_check(st, len, 1).await;
    assert_eq!(n, len);
    assert_eq!(sent, got, "SHA-256 of what came back differs");
    // Traffic was counted both ways by the gateway.
    let t = &gw.gateway.traffic;
    assert!(t.client_to_server.load(std::sync::atomic::Ordering::Relaxed) >= len as u64);
    assert!(t.server_to_client.load(std::sync::atomic::Ordering::Relaxed) >= len as u64);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_streams_in_one_session() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let link = g.link(gw.addr);
    let target = echo_server().await;
    let _pc = OfficePc::start(&link, "multi", "pw", target).await;
    let tunnel = std::sync::Arc::new(client_agent::connect(&link, "multi", &Secret::new("pw")).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let t = tunnel.clone();
        tasks.push(tokio::spawn(async move {
            let st = t.open_stream().await.unwrap();
            echo_check(st, 64 * 1024 + i as usize * 97, i).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (sent, got, n) = t.await.unwrap();
        assert_eq!(n, 64 * 1024 + i * 97, "stream {i} length");
        assert_eq!(sent, got, "stream {i} content");
    }
    // One tunnel at the gateway carried all 200 streams.
    let rows = thingate::thinstat::rows(&gw.gateway.sessions);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].num_clients, 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_password_is_refused_and_repeated_failures_lock_out() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let link = g.link(gw.addr);
    let target = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = thin_tunnel::settings::ConfigDir(dir.path().to_path_buf());
    thin_tunnel::server_agent::register(&link, &cfg, "lock", &Secret::new("right")).await.unwrap();
    let mut s = cfg.settings().unwrap();
    s.lockout_attempts = 3;
    s.lockout_seconds = 600;
    cfg.save_settings(&s).unwrap();
    let _pc = OfficePc::run(dir, &link, target).await;

    let ok = client_agent::connect(&link, "lock", &Secret::new("right")).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    drop(ok);
    for _ in 0..3 {
        let r = client_agent::connect(&link, "lock", &Secret::new("wrong")).await;
        assert!(matches!(r, Err(ClientError::Login(LoginError::WrongPassword))), "{:?}", r.err());
    }
    let r = client_agent::connect(&link, "lock", &Secret::new("right")).await;
    match r {
        Err(ClientError::Login(LoginError::Refused {
            code: ErrorCode::LockedOut,
            retry_after_s: Some(s),
            message,
        })) => {
            assert!(s > 500, "{s}");
            assert!(message.contains("too many wrong passwords"), "{message}");
        }
        other => panic!("expected a lockout, got {:?}", other.err()),
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcid_hijack_is_refused_owner_may_rename_and_disable_register() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let link = g.link(gw.addr);
    let owner = tempfile::tempdir().unwrap();
    let owner_cfg = thin_tunnel::settings::ConfigDir(owner.path().to_path_buf());
    let thief = tempfile::tempdir().unwrap();
    let thief_cfg = thin_tunnel::settings::ConfigDir(thief.path().to_path_buf());
    let pw = Secret::new("pw");
    assert_eq!(thin_tunnel::server_agent::register(&link, &owner_cfg, "Boss-PC", &pw).await.unwrap(), "boss-pc");
    let r = thin_tunnel::server_agent::register(&link, &thief_cfg, "BOSS-pc", &pw).await;
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("already registered by another computer"), "{msg}");
    // The owner renames; the old name becomes free, the new one is bound.
    assert_eq!(thin_tunnel::server_agent::register(&link, &owner_cfg, "boss-pc-2", &pw).await.unwrap(), "boss-pc-2");
    assert!(!gw.gateway.registry.is_registered("boss-pc"));
    assert_eq!(gw.gateway.registry.registered_count(), 1);
    // An invalid ID is refused with the rule.
    let bad = thin_tunnel::server_agent::register(&link, &thief_cfg, "no spaces", &pw).await.unwrap_err().to_string();
    assert!(bad.contains("letters"), "{bad}");
    gw.shutdown().await;

    let g2 = GateDir::new("DisableRegister 1");
    let gw2 = g2.start().await;
    let link2 = g2.link(gw2.addr);
    let r = thin_tunnel::server_agent::register(&link2, &thief_cfg, "newbie", &pw).await.unwrap_err().to_string();
    assert!(r.contains("DisableRegister"), "{r}");
    gw2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pcid_and_offline_server_are_reported() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let link = g.link(gw.addr);
    let r = client_agent::connect(&link, "nobody", &Secret::new("x")).await;
    assert!(
        matches!(&r, Err(ClientError::Link(LinkError::Refused { code: ErrorCode::UnknownPcid, .. }))),
        "{:?}",
        r.err()
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = thin_tunnel::settings::ConfigDir(dir.path().to_path_buf());
    thin_tunnel::server_agent::register(&link, &cfg, "sleepy", &Secret::new("x")).await.unwrap();
    let r = client_agent::connect(&link, "sleepy", &Secret::new("x")).await;
    match r {
        Err(ClientError::Link(LinkError::Refused { code: ErrorCode::ServerOffline, message })) => {
            assert!(message.contains("not connected"), "{message}")
        }
        other => panic!("expected offline, got {:?}", other.err()),
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_back_within_five_seconds_of_a_gateway_restart() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let port = gw.addr.port();
    let link = g.link(gw.addr);
    let target = echo_server().await;
    let pcs = [OfficePc::start(&link, "r1", "pw", target).await, OfficePc::start(&link, "r2", "pw", target).await];
    gw.shutdown().await;
    for pc in &pcs {
        let st = pc.state.clone();
        wait_for("office PC notices the restart", Duration::from_secs(10), || {
            let off = !matches!(*st.borrow(), thin_tunnel::server_agent::ServerState::Online { .. });
            async move { off.then_some(()) }
        })
        .await;
    }
    // Down for a while, so the agents back off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    g.set_port(port);
    let gw = g.start().await;
    assert_eq!(gw.addr.port(), port);
    let gwc = gw.gateway.clone();
    wait_for("both servers registered and online within 5 s", Duration::from_secs(5), || {
        let n = thingate::thinstat::rows(&gwc.sessions).len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    // And reachable end to end.
    let tunnel = client_agent::connect(&link, "r2", &Secret::new("pw")).await.unwrap();
    let (a, b, n) = echo_check(tunnel.open_stream().await.unwrap(), 100_000, 9).await;
    assert_eq!((a, n), (b, 100_000));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_another_ca_or_expired_are_refused() {
    let g = GateDir::new("");
    let (cert, key) = thin_e2e::Pki::foreign_leaf();
    std::fs::write(g.dir.path().join("ThinGate.cer"), cert).unwrap();
    std::fs::write(g.dir.path().join("ThinGate.key"), key).unwrap();
    let gw = g.start().await;
    let r = client_agent::connect(&g.link(gw.addr), "x", &Secret::new("x")).await;
    let msg = r.err().unwrap().to_string();
    assert!(msg.contains("not signed by the CA this app trusts"), "{msg}");
    gw.shutdown().await;

    let (cert, key) = g.pki.expired_leaf();
    std::fs::write(g.dir.path().join("ThinGate.cer"), cert).unwrap();
    std::fs::write(g.dir.path().join("ThinGate.key"), key).unwrap();
    let gw = g.start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = thin_tunnel::settings::ConfigDir(dir.path().to_path_buf());
    let msg = thin_tunnel::server_agent::register(&g.link(gw.addr), &cfg, "x", &Secret::new("x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("expired"), "{msg}");
    gw.shutdown().await;
}
