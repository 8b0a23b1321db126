//! What a stranger can do with registrations: how many, with which token, and
//! whether fresh keys can push the office PCs off a full gateway.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use thin_e2e::raw::RawServer;
use thin_e2e::*;
use thin_protocol::identity::Identity;
use thin_protocol::messages::{ErrorCode, GateToServer};

fn lo(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Registers a fresh key as `pcid` from `src`; the gateway's answer.
async fn register_from(gw: &TestGateway, src: IpAddr, pcid: &str, token: Option<&str>) -> GateToServer {
    let mut s = RawServer::login_from(src, gw.addr, gw.ca(), Identity::generate()).await;
    s.register(pcid, token).await
}

fn refused(answer: GateToServer) -> (ErrorCode, String) {
    match answer {
        GateToServer::Error { code, message } => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_renames_are_limited_per_source_and_in_total() {
    let gw = TestGateway::with_ini("RegisterLimitPerSource 4\nRegisterLimitTotal 10").await;
    // One machine registers and renames: every claim counts.
    let mut pc = RawServer::login_from(lo(2), gw.addr, gw.ca(), Identity::generate()).await;
    for name in ["desk-a", "desk-b"] {
        assert!(matches!(pc.register(name, None).await, GateToServer::Registered { .. }), "{name}");
    }
    for i in 0..2 {
        let answer = register_from(&gw, lo(2), &format!("fresh-{i}"), None).await;
        assert!(matches!(answer, GateToServer::Registered { .. }), "{answer:?}");
    }
    // The fifth claim from 127.0.0.2 within the minute, a rename or a new key alike.
    let (code, message) = refused(pc.register("desk-c", None).await);
    assert_eq!(code, ErrorCode::Busy);
    assert!(message.contains("(127.0.0.2)") && message.contains("RegisterLimitPerSource"), "{message}");
    let (code, _) = refused(register_from(&gw, lo(2), "fresh-x", None).await);
    assert_eq!(code, ErrorCode::Busy);
    assert!(!gw.gateway.registry.is_registered("fresh-x") && gw.gateway.registry.is_registered("desk-b"));
    // Other sources go on until the total of 10 a minute is spent.
    let mut ok = 4;
    for src in 3..9 {
        for i in 0..4 {
            if let GateToServer::Registered { .. } = register_from(&gw, lo(src), &format!("s{src}-{i}"), None).await {
                ok += 1;
            }
        }
    }
    assert_eq!(ok, 10, "10 a minute in total");
    let (code, message) = refused(register_from(&gw, lo(20), "late", None).await);
    assert_eq!(code, ErrorCode::Busy);
    assert!(message.contains("RegisterLimitTotal"), "{message}");
    assert_eq!(gw.gateway.registry.registered_count(), 9, "2 renames, 8 new machines");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_register_token_only_office_pcs_that_present_it_register() {
    let gw = TestGateway::with_ini("RegisterToken Acme-Reg-2024").await;
    // thinsvr without the token: refused, and told what to do.
    let e = try_register(&gw.link, "no-token", "pw").await.unwrap_err();
    assert!(e.contains("register_token in thinsvr.toml"), "{e}");
    let (code, _) = refused(register_from(&gw, lo(1), "wrong", Some("Acme-Reg-2023")).await);
    assert_eq!(code, ErrorCode::RegisterDisabled);
    assert_eq!(gw.gateway.registry.registered_count(), 0);
    // thinsvr with register_token in its thinsvr.toml registers and serves.
    let dir = tempfile::tempdir().unwrap();
    let cfg = thin_tunnel::settings::ConfigDir(dir.path().to_path_buf());
    let mut settings = cfg.settings().unwrap();
    settings.register_token = Some(thin_protocol::secret::Secret::new("Acme-Reg-2024"));
    cfg.save_settings(&settings).unwrap();
    let pcid =
        thin_tunnel::server_agent::register(&gw.link, &cfg, "With-Token", &thin_protocol::secret::Secret::new("pw"))
            .await
            .unwrap();
    assert_eq!(pcid, "with-token");
    assert!(cfg.settings().unwrap().register_token.is_some(), "the token stays in the settings");
    let pc = OfficePc::run_with(dir, &gw.link, echo_server().await, Default::default()).await;
    assert_tunnel_echo(&gw.connect("with-token", "pw").await, 100_000, 1).await;
    // A registered machine may rename without the token.
    let mut raw = RawServer::login(gw.addr, gw.ca(), pc.cfg().identity().unwrap()).await;
    assert!(matches!(raw.register("renamed", None).await, GateToServer::Registered { .. }));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_full_of_fresh_keys_still_takes_the_office_pcs_that_served_before() {
    let gw = TestGateway::with_ini("MaxServerSessions 3").await;
    let desk = gw.office_pc("desk", "pw").await;
    let laptop = gw.office_pc("laptop", "pw").await;
    // Both go offline for a moment (a restart, a network change) ...
    for pc in [&desk, &laptop] {
        pc.stop.cancel();
    }
    gw.wait_sessions("both offline", 0, Duration::from_secs(10)).await;
    // ... and a stranger fills the gateway with fresh keys.
    let mut fresh = Vec::new();
    for i in 0..3 {
        let mut s = RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
        assert!(matches!(s.register(&format!("fresh-{i}"), None).await, GateToServer::Registered { .. }));
        assert!(matches!(s.serve().await, GateToServer::Serving { .. }), "fresh-{i}");
        fresh.push(s);
    }
    let mut s = RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    assert!(matches!(s.register("fresh-3", None).await, GateToServer::Registered { .. }));
    let (code, _) = refused(s.serve().await);
    assert_eq!(code, ErrorCode::Busy, "full: a fourth fresh key is refused");
    // The office PCs come back and are online again; two fresh keys gave way.
    let desk = OfficePc::run_with(desk.dir, &gw.link, echo_server().await, Default::default()).await;
    let laptop = OfficePc::run_with(laptop.dir, &gw.link, echo_server().await, Default::default()).await;
    let mut gave_way = Vec::new();
    for (i, s) in fresh.iter_mut().enumerate() {
        if let Ok(GateToServer::Error { code, message }) =
            tokio::time::timeout(Duration::from_millis(500), s.recv()).await
        {
            assert_eq!(code, ErrorCode::Busy);
            assert!(message.contains("served here before"), "{message}");
            gave_way.push(i);
        }
    }
    assert_eq!(gave_way.len(), 2);
    let online: Vec<String> = gw.gateway.sessions.list().iter().map(|s| s.pcid.clone()).collect();
    assert!(online.contains(&"desk".into()) && online.contains(&"laptop".into()), "{online:?}");
    assert_eq!(online.len(), 3);
    assert_tunnel_echo(&gw.connect("desk", "pw").await, 100_000, 2).await;
    // A fresh key that gave way comes back: having served once, it outranks
    // the one that has not served yet, but never the office PCs registered
    // before it.
    assert_eq!(gave_way, [1, 2], "the keys registered last gave way first");
    let mut again = RawServer::login(gw.addr, gw.ca(), fresh.pop().unwrap().id).await;
    assert!(matches!(again.serve().await, GateToServer::Serving { .. }));
    let (code, _) = refused(tokio::time::timeout(Duration::from_secs(5), fresh[0].recv()).await.unwrap());
    assert_eq!(code, ErrorCode::Busy, "fresh-0 (never served before its session) gave way");
    let mut online: Vec<String> = gw.gateway.sessions.list().iter().map(|s| s.pcid.clone()).collect();
    online.sort();
    assert_eq!(online, ["desk", "fresh-2", "laptop"]);
    // The key that never served finds no room, now as before.
    let mut never = RawServer::login(gw.addr, gw.ca(), s.id).await;
    assert_eq!(refused(never.serve().await).0, ErrorCode::Busy);
    drop((desk, laptop));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_flood_holds_up_neither_keepalives_nor_relays() {
    use thingate::machine_db::{Machine, MachineDb};
    let g = GateDir::new("RegisterLimitPerSource 100000\nRegisterLimitTotal 100000\nTunnelTimeout 30000");
    // A database of 10,000 machines, so that every save takes a while.
    let mut db = MachineDb::open(&g.path("MachineDatabase.config")).unwrap();
    for i in 0..10_000 {
        db.upsert(Machine::new(format!("MSID-OLD-{i}"), format!("old-{i}")));
    }
    db.save().unwrap();
    let gw = g.start().await;
    let _pc = gw.office_pc("steady", "pw").await;
    let tunnel = gw.connect("steady", "pw").await;
    let mut probe = RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    assert!(matches!(probe.register("probe", None).await, GateToServer::Registered { .. }));
    assert!(matches!(probe.serve().await, GateToServer::Serving { .. }));
    let saves_before = gw.gateway.registry.saves();

    // 16 strangers register 300 fresh keys as fast as they can.
    let (addr, ca) = (gw.addr, gw.ca().to_string());
    let flood = tokio::spawn(async move {
        let workers: Vec<_> = (0..16)
            .map(|w| {
                let ca = ca.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    for n in (w..300).step_by(16) {
                        let mut s = RawServer::login_from(lo(2 + w as u8), addr, &ca, Identity::generate()).await;
                        let answer = s.register(&format!("flood-{n}"), None).await;
                        ok += matches!(answer, GateToServer::Registered { .. }) as usize;
                    }
                    ok
                })
            })
            .collect();
        let mut ok = 0;
        for w in workers {
            ok += w.await.unwrap();
        }
        ok
    });
    let (mut pings, mut echoes) = (Vec::new(), Vec::new());
    while !flood.is_finished() {
        pings.push(probe.ping().await);
        let t = Instant::now();
        assert_tunnel_echo(&tunnel, 16 * 1024, pings.len() as u64).await;
        echoes.push(t.elapsed());
    }
    assert_eq!(flood.await.unwrap(), 300);
    let saves = gw.gateway.registry.saves() - saves_before;
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} pings, max {:?}; {} echoes, max {:?}; {saves} saves",
        pings.len(),
        max(&pings),
        echoes.len(),
        max(&echoes)
    );
    assert!(pings.len() >= 5, "the flood was measured ({} pings)", pings.len());
    // Each save is an append to the journal now, not a rewrite of the
    // 10,000 machines; registrations that arrive together still share one.
    assert!(saves < 300, "300 registrations took {saves} saves; bursts share one");
    // Generous bounds for a shared 2-core machine: the flood's TLS handshakes
    // compete for the CPU, but nothing waits for the database.
    assert!(max(&pings) < Duration::from_secs(1), "a keepalive took {:?} during the flood", max(&pings));
    assert!(max(&echoes) < Duration::from_secs(2), "an echo took {:?} during the flood", max(&echoes));
    assert_eq!(MachineDb::open(&gw.dir.path("MachineDatabase.config")).unwrap().len(), 10_302);
    gw.shutdown().await;
}
