//! End-to-end relay tests: gateway, office PC and home PC on loopback, driven
//! through the library entry points (the CLI tests drive the binaries).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use thin_e2e::*;
use thin_protocol::messages::ErrorCode;
use thin_protocol::secret::Secret;
use thin_tunnel::client_agent::ClientError;
use thin_tunnel::e2e::LoginError;
use thin_tunnel::link::{Link, LinkError};
use thin_tunnel::settings::ConfigDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_mib_each_way_with_sha256() {
    init_logging();
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("Desk-01", "s3cret pw").await;
    let tunnel = gw.connect("desk-01", "s3cret pw").await;
    let st = tunnel.open_stream().await.unwrap();
    let len = 64 << 20;
    // A stall (a direction whose wake-up was lost) fails rather than hangs.
    let check = tokio::time::timeout(Duration::from_secs(120), echo_check(st, len, 1));
    let (sent, got, n) = check.await.expect("the stream stalled: nothing moved for 120 s");
    assert_eq!(n, len);
    assert_eq!(sent, got, "SHA-256 of what came back differs");
    // Traffic was counted both ways by the gateway.
    let t = &gw.gateway.traffic;
    assert!(t.client_to_server.load(Relaxed) >= len as u64);
    assert!(t.server_to_client.load(Relaxed) >= len as u64);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_streams_in_one_session() {
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("multi", "pw").await;
    let tunnel = std::sync::Arc::new(gw.connect("multi", "pw").await);
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
    let gw = TestGateway::start().await;
    let _pc = gw
        .office_pc("lock", "right")
        .settings(|s| {
            s.lockout_attempts = 3;
            s.lockout_seconds = 600;
        })
        .await;

    let ok = gw.try_connect("lock", "right").await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    drop(ok);
    for _ in 0..3 {
        let r = gw.try_connect("lock", "wrong").await;
        assert!(matches!(r, Err(ClientError::Login(LoginError::WrongPassword))), "{:?}", r.err());
    }
    match gw.try_connect("lock", "right").await {
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

/// Registers `pcid` (password "pw") from the config folder `cfg`.
async fn register(link: &Link, cfg: &ConfigDir, pcid: &str) -> Result<String, String> {
    thin_tunnel::server_agent::register(link, cfg, pcid, &Secret::new("pw")).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcid_hijack_is_refused_owner_may_rename_and_disable_register() {
    let gw = TestGateway::start().await;
    let owner = tempfile::tempdir().unwrap();
    let owner_cfg = ConfigDir(owner.path().to_path_buf());
    let thief = tempfile::tempdir().unwrap();
    let thief_cfg = ConfigDir(thief.path().to_path_buf());
    assert_eq!(register(&gw.link, &owner_cfg, "Boss-PC").await.unwrap(), "boss-pc");
    let msg = register(&gw.link, &thief_cfg, "BOSS-pc").await.unwrap_err();
    assert!(msg.contains("already registered by another computer"), "{msg}");
    // The owner renames; the old name becomes free, the new one is bound.
    assert_eq!(register(&gw.link, &owner_cfg, "boss-pc-2").await.unwrap(), "boss-pc-2");
    assert!(!gw.gateway.registry.is_registered("boss-pc"));
    assert_eq!(gw.gateway.registry.registered_count(), 1);
    // An invalid ID is refused with the rule.
    let bad = register(&gw.link, &thief_cfg, "no spaces").await.unwrap_err();
    assert!(bad.contains("letters"), "{bad}");
    gw.shutdown().await;

    let gw = TestGateway::with_ini("DisableRegister 1").await;
    let r = register(&gw.link, &thief_cfg, "newbie").await.unwrap_err();
    assert!(r.contains("DisableRegister"), "{r}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pcid_and_offline_server_are_reported() {
    let gw = TestGateway::start().await;
    let r = gw.try_connect("nobody", "x").await;
    assert!(
        matches!(&r, Err(ClientError::Link(LinkError::Refused { code: ErrorCode::UnknownPcid, .. }))),
        "{:?}",
        r.err()
    );
    let _registered = gw.register("sleepy", "x").await;
    match gw.try_connect("sleepy", "x").await {
        Err(ClientError::Link(LinkError::Refused { code: ErrorCode::ServerOffline, message })) => {
            assert!(message.contains("not connected"), "{message}")
        }
        other => panic!("expected offline, got {:?}", other.err()),
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_back_within_five_seconds_of_a_gateway_restart() {
    let gw = TestGateway::start().await;
    let port = gw.addr.port();
    let target = echo_server().await;
    let pcs = [gw.office_pc("r1", "pw").target(target).await, gw.office_pc("r2", "pw").target(target).await];
    let g = gw.shutdown().await;
    for pc in &pcs {
        pc.wait_offline("office PC notices the restart", Duration::from_secs(10)).await;
    }
    // Down for a while, so the agents back off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gw = g.start_on(port).await;
    gw.wait_sessions("both servers registered and online within 5 s", 2, Duration::from_secs(5)).await;
    // And reachable end to end.
    let tunnel = gw.connect("r2", "pw").await;
    assert_tunnel_echo(&tunnel, 100_000, 9).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_another_ca_or_expired_are_refused() {
    let g = GateDir::new("");
    g.set_cert(Pki::foreign_leaf());
    let gw = g.start().await;
    let msg = gw.try_connect("x", "x").await.err().unwrap().to_string();
    assert!(msg.contains("not signed by the CA this app trusts"), "{msg}");
    let g = gw.shutdown().await;

    g.set_cert(g.pki.expired_leaf());
    let gw = g.start().await;
    let msg = try_register(&gw.link, "x", "x").await.unwrap_err();
    assert!(msg.contains("expired"), "{msg}");
    gw.shutdown().await;
}

/// The apps and the gateway agree on AES-128-GCM for the TLS legs (the
/// tunnel's content is sealed end to end with AES-256-GCM besides).
#[tokio::test]
async fn the_tls_legs_use_aes_128_gcm() {
    let gw = TestGateway::start().await;
    let s = gw.link.open().await.unwrap();
    let suite = s.get_ref().1.negotiated_cipher_suite().map(|s| s.suite());
    assert_eq!(suite, Some(tokio_rustls::rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    gw.shutdown().await;
}

/// After the login the apps take their TLS legs out of rustls and seal and
/// open each record in place (`thin_tunnel::inplace`); every tunnel test
/// here then runs through that path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_handle_their_tls_legs_in_place_after_the_login() {
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("inplace-desk", "pw").await;
    let pipe = thin_e2e::raw::logged_in(&gw.link, "inplace-desk", "pw").await;
    assert!(pipe.in_place(), "the home PC's leg is handled in place");
    gw.shutdown().await;
}
