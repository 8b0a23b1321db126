//! The cluster edition on loopback: gateways that are members of one cluster
//! on a real etcd share the registry and announce their office PCs.

use std::time::Duration;

use thin_e2e::etcd::{member_ini, stat_field, stat_gateway_of, EtcdServer};
use thin_e2e::raw::RawServer;
use thin_e2e::*;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::identity::Identity;
use thin_protocol::messages::{ErrorCode, GateToServer, GateToTunnel, Hello};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_computer_ids_and_announce_where_each_office_pc_is() {
    let etcd = EtcdServer::start();
    let a = TestGateway::with_ini(&member_ini(&etcd, "e2e", 1)).await;
    let b = TestGateway::with_ini(&member_ini(&etcd, "e2e", 2)).await;
    // An office PC serves at A, through the real agent, and a client there
    // gets its bytes back unchanged.
    let target = echo_server().await;
    let pc = a.office_pc("desk-01", "pw one").target(target).await;
    assert_tunnel_echo(&a.connect("desk-01", "pw one").await, 256 * 1024, 7).await;
    // B knows the ID is taken and where its office PC is online.
    let mut other = RawServer::login(b.addr, b.ca(), Identity::generate()).await;
    match other.register("Desk-01", None).await {
        GateToServer::Error { code, message } => assert_eq!(code, ErrorCode::PcidTaken, "{message}"),
        answer => panic!("a computer ID held through A was given out by B: {answer:?}"),
    }
    let at = b.state().directory.locate("desk-01").await.unwrap().expect("announced");
    assert_eq!((at.gateway.as_str(), at.session), ("https://gw1.test/", pc.session_id()));
    // B's /thinstat/ shows the whole cluster, read from etcd: the members,
    // where each office PC is, sessions per member; loopback only, as always.
    let req = |t: &str| thin_protocol::http::Request { method: "GET".into(), target: t.into(), headers: vec![] };
    let far: std::net::SocketAddr = "203.0.113.7:50000".parse().unwrap();
    let near: std::net::SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let figures = b.state().figures();
    assert_eq!(thingate::thinstat::answer(&figures, &req("/thinstat/"), far).await.0, 403);
    let (status, _, _, stat) = thingate::thinstat::answer(&figures, &req("/thinstat/"), near).await;
    assert_eq!(status, 200, "{stat}");
    for (key, value) in [
        ("NumSession", "0"),
        ("ClusterName", "e2e"),
        ("ClusterSelf", "https://gw2.test/"),
        ("ClusterView", "ok"),
        ("ClusterRegistered", "1"),
        ("ClusterNumMember", "2"),
        ("ClusterMemberUrl[0]", "https://gw1.test/"),
        ("ClusterMemberSessions[0]", "1"),
        ("ClusterMemberUrl[1]", "https://gw2.test/"),
        ("ClusterMemberSessions[1]", "0"),
        ("ClusterNumOnline", "1"),
    ] {
        assert_eq!(stat_field(&stat, key), Some(value), "{key}: {stat}");
    }
    assert_eq!(stat_gateway_of(&stat, "desk-01"), Some("https://gw1.test/"), "{stat}");
    let json = thingate::thinstat::answer(&figures, &req("/thinstat/?format=json"), near).await.3;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = &json["Cluster"];
    assert_eq!((c["Available"].as_bool(), c["Members"][0]["Sessions"].as_u64()), (Some(true), Some(1)), "{json}");
    assert_eq!(c["Online"][0]["Pcid"], "desk-01", "{json}");
    assert_eq!(c["Online"][0]["Gateway"], "https://gw1.test/", "{json}");
    // A client at B is sent to A; an app that does not follow redirects is
    // told where the computer is instead.
    let mut s = thin_e2e::raw::client_connect_following(b.addr, b.ca(), "DESK-01").await;
    match read_frame::<GateToTunnel, _>(&mut s).await.unwrap() {
        GateToTunnel::Redirect { gateway } => assert_eq!(gateway, "https://gw1.test/"),
        other => panic!("not redirected: {other:?}"),
    }
    let mut s = thin_e2e::raw::client_connect(b.addr, b.ca(), "desk-01").await;
    match read_frame::<GateToTunnel, _>(&mut s).await.unwrap() {
        GateToTunnel::Error { code: ErrorCode::ServerOffline, message } => {
            assert!(message.contains("connected to another gateway of the cluster (https://gw1.test/)"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A machine registered at B is known at A.
    assert!(matches!(other.register("desk-02", None).await, GateToServer::Registered { .. }));
    wait_for("A's registry sees desk-02", Duration::from_secs(5), || {
        let seen = a.state().registry.is_registered("desk-02");
        async move { seen.then_some(()) }
    })
    .await;
    // The office PC goes away: its announcement is withdrawn.
    pc.stop.cancel();
    wait_for("desk-01 withdrawn", Duration::from_secs(10), || {
        let dir = b.state().directory.clone();
        async move { dir.locate("desk-01").await.unwrap().is_none().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_stopped_registrations_fail_clearly_and_established_tunnels_keep_working() {
    let etcd = EtcdServer::start();
    let gw = TestGateway::with_ini(&member_ini(&etcd, "down", 1)).await;
    let target = echo_server().await;
    let _pc = gw.office_pc("desk-01", "pw").target(target).await;
    let tunnel = gw.connect("desk-01", "pw").await;
    etcd.pause();
    assert_tunnel_echo(&tunnel, 64 * 1024, 1).await;
    let mut fresh = RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    let answer = fresh.register("desk-02", None).await;
    etcd.resume();
    match answer {
        GateToServer::Error { code, message } => {
            assert_eq!(code, ErrorCode::Internal);
            assert_eq!(message, "the gateway cannot save its database; try again later");
        }
        other => panic!("registered with etcd stopped: {other:?}"),
    }
    assert_tunnel_echo(&tunnel, 64 * 1024, 2).await;
    assert!(matches!(fresh.register("desk-02", None).await, GateToServer::Registered { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_disabled_or_removed_at_one_member_is_ended_and_refused_at_every_member() {
    let etcd = EtcdServer::start();
    let a = TestGateway::with_ini(&member_ini(&etcd, "admin", 1)).await;
    let b = TestGateway::with_ini(&member_ini(&etcd, "admin", 2)).await;
    let pc = a.office_pc("desk-07", "pw").await;
    let id = pc.cfg().identity().unwrap();
    let msid = id.msid();
    // B's admin disables it in B's console; it serves at A.
    let (status, body) = crate::admin::change_through_console(&b, "disable", "desk-07").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"session_ended\":false"), "not online at B: {body}");
    let ended = tokio::time::timeout(Duration::from_secs(20), pc.task).await.expect("A ends the session").unwrap();
    let why = ended.expect_err("told why").to_string();
    assert!(why.contains("disabled this computer") && why.contains("desk-07"), "{why}");
    assert!(a.state().registry.is_disabled(&msid), "in A's cache, from etcd");
    // A disabled machine cannot register at any member either.
    let mut again = RawServer::login(a.addr, a.ca(), id).await;
    match again.register("desk-07", None).await {
        GateToServer::Error { message, .. } => assert!(message.contains("disabled this computer"), "{message}"),
        answer => panic!("a disabled machine registered: {answer:?}"),
    }
    // Enabled at A, removed at A: B forgets it, and the ID is free.
    assert_eq!(crate::admin::change_through_console(&a, "enable", "desk-07").await.0, 200);
    assert_eq!(crate::admin::change_through_console(&a, "remove", "desk-07").await.0, 200);
    wait_for("B forgets desk-07", Duration::from_secs(5), || {
        let known = b.state().registry.is_registered("desk-07");
        async move { (!known).then_some(()) }
    })
    .await;
    let mut fresh = RawServer::login(b.addr, b.ca(), Identity::generate()).await;
    assert!(matches!(fresh.register("desk-07", None).await, GateToServer::Registered { .. }));
}

/// `thingate cluster import` moves a single-host database into the cluster
/// (never over what the cluster has) and `export` writes it back unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_host_database_goes_into_the_cluster_and_back_unchanged() {
    use thin_e2e::procs::bin;
    use thingate::machine_db::{Machine, MachineDb};
    let etcd = EtcdServer::start();
    let dir = GateDir::new(&member_ini(&etcd, "moved", 1));
    let mut db = MachineDb::open(&dir.path("MachineDatabase.config")).unwrap();
    for i in 0..3 {
        let mut m = Machine::new(format!("MSID-{i}"), format!("desk-{i}"));
        (m.cert_hash, m.create_date, m.num_server, m.last_ip) =
            (format!("HASH{i}"), 1_600_000_000_000 + i, 7 + i as u64, "192.0.2.9".into());
        db.upsert(m);
    }
    db.save().unwrap();
    let ini = dir.ini();
    let cluster = |op: &str, file: &std::path::Path| {
        let out = std::process::Command::new(bin("thingate"))
            .args(["cluster", op, "--config"])
            .arg(&ini)
            .arg("--database")
            .arg(file)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = cluster("import", db.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("imported 3 machines into cluster moved; 0 were there already; 0 left out"), "{out}");
    let (code, out) = cluster("import", db.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("imported 0 machines into cluster moved; 3 were there already"), "{out}");
    // Another database claiming a computer ID the cluster has: left out, said so.
    let other_path = dir.path("Other.config");
    let mut other = MachineDb::open(&other_path).unwrap();
    other.upsert(Machine::new("STRANGER", "desk-1"));
    other.upsert(Machine::new("NEWCOMER", "desk-9"));
    other.save().unwrap();
    let (code, out) = cluster("import", &other_path);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("imported 1 machines") && out.contains("left out: desk-1: held in the cluster by machine MSID-1"),
        "{out}"
    );
    // A member of the cluster knows them all.
    let gw = dir.start().await;
    let reg = gw.state().registry.clone();
    assert!(["desk-0", "desk-1", "desk-2", "desk-9"].iter().all(|p| reg.is_registered(p)));
    assert_eq!(reg.pcid_of("STRANGER"), None);
    // Export and compare, record by record.
    let back = gw.dir.path("Exported.config");
    // A journal left beside the target by an earlier gateway must not be
    // applied over the export.
    let mut stale = thingate::machine_db::journal::Journal::new(&MachineDb::open(&back).unwrap());
    let mut ghost = Machine::new("GHOST", "desk-0");
    ghost.create_date = 1_700_000_000_000;
    stale.append(&vec![("GHOST".into(), Some(ghost))]).unwrap();
    let (code, out) = cluster("export", &back);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("exported 4 machines of cluster moved"), "{out}");
    let exported = MachineDb::open(&back).unwrap();
    for m in db.iter() {
        assert_eq!(exported.by_msid(&m.msid), Some(m), "{} changed on the way", m.msid);
    }
    assert_eq!(exported.by_msid("NEWCOMER").map(|m| m.pcid.as_str()), Some("desk-9"));
    assert!(exported.by_msid("GHOST").is_none(), "a stale journal was applied over the export");
}

/// A 3-member etcd and 3 gateways (`thingate run`), office PCs spread over
/// them: a client entering through any gateway reaches any office PC (the
/// gateway redirects it to the member the PC is at) with a byte-exact
/// transfer; a computer ID held through one member is refused at another;
/// a killed gateway's office PC is back through another member within 5 s,
/// and clients find it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_any_client_reaches_any_office_pc_and_a_killed_gateways_pcs_come_back_within_5_s() {
    use thin_e2e::etcd::GatewayCluster;
    use thin_tunnel::server_agent::ServerState;
    let mut cl = GatewayCluster::start("three", 3);
    // Office PC i lists gateway i first, so each member holds one.
    let target = echo_server().await;
    let orders = [[0, 1, 2], [1, 2, 0], [2, 0, 1]];
    let mut pcs = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        pcs.push(OfficePc::start(&cl.link(order), &format!("desk-{i}"), &format!("pw {i}"), target).await);
    }
    for (g, pc) in (0..3).zip(&pcs) {
        let stat = thin_e2e::https::get(cl.members[g].addr, &cl.pki.ca_pem, "/thinstat/").await.1;
        assert!(stat.contains(&pc.session_id()), "desk-{g} is not online at gateway {g}: {stat}");
    }
    // Each member's /thinstat/ shows the whole cluster: three members with
    // one office PC each, and which member each office PC is at.
    for g in 0..3 {
        let stat = cl.thinstat(g, "").await;
        assert_eq!(stat_field(&stat, "ClusterSelf"), Some(cl.members[g].url().as_str()), "{stat}");
        assert_eq!(stat_field(&stat, "ClusterNumMember"), Some("3"), "{stat}");
        assert_eq!(stat_field(&stat, "ClusterRegistered"), Some("3"), "{stat}");
        for i in 0..3 {
            assert_eq!(stat_field(&stat, &format!("ClusterMemberSessions[{i}]")), Some("1"), "{stat}");
            let at = stat_gateway_of(&stat, &format!("desk-{i}"));
            assert_eq!(at, Some(cl.members[i].url().as_str()), "desk-{i}, seen from gateway {g}: {stat}");
        }
    }
    // `thingate status` beside a member says the same, with etcd's health.
    let (code, out) = cl.status(2).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 registered, 3 online at 3 members"), "{out}");
    for m in &cl.members {
        assert!(out.contains(&format!("{}  ({}): 1 office PCs online", m.url(), env!("CARGO_PKG_VERSION"))), "{out}");
    }
    assert!(out.contains("3 of 3 endpoints answering") && out.matches(", leader, ").count() == 1, "{out}");
    // Every client entry (one gateway each) reaches every office PC.
    for g in 0..3 {
        let entry = cl.link(&[g]);
        for (i, _) in pcs.iter().enumerate() {
            let tunnel = connect(&entry, &format!("desk-{i}"), &format!("pw {i}")).await;
            assert_tunnel_echo(&tunnel, 128 * 1024, (g * 3 + i) as u64).await;
        }
    }
    for g in 0..3 {
        assert_eq!(cl.counter(g, "thingate_client_redirects_total").await, 2, "gateway {g} redirects the other two");
    }
    // desk-1 is held (through gateway 1): gateway 0 and 2 refuse it to another machine.
    for g in [0, 2] {
        let err = try_register(&cl.link(&[g]), "DESK-1", "other").await.unwrap_err();
        assert!(err.contains("\"desk-1\" is already registered by another computer"), "gateway {g}: {err}");
    }
    // Gateway 0 dies: desk-0 moves on to gateway 1 within 5 s. A tunnel that
    // entered through gateway 0 and was redirected to desk-1's gateway does
    // not pass through gateway 0 and lives on.
    let redirected = connect(&cl.link(&[0]), "desk-1", "pw 1").await;
    let killed = std::time::Instant::now();
    cl.kill(0);
    pcs[0].wait_offline("desk-0 notices its gateway died", Duration::from_secs(5)).await;
    let left = Duration::from_secs(5).saturating_sub(killed.elapsed());
    pcs[0]
        .wait_for_state("desk-0 online again through another member", left, |s| {
            matches!(s, ServerState::Online { .. }).then_some(())
        })
        .await;
    println!("desk-0 back online {:?} after its gateway was killed", killed.elapsed());
    assert_tunnel_echo(&redirected, 64 * 1024, 41).await;
    // Clients through the surviving members, and through an entry point
    // that lists the dead one first, find it at its new member.
    for entry in [cl.link(&[1]), cl.link(&[2]), cl.link(&[0, 2, 1])] {
        let tunnel = wait_for("a client reaches desk-0 at its new member", Duration::from_secs(5), || {
            let entry = entry.clone();
            async move { try_connect(&entry, "desk-0", "pw 0").await.ok() }
        })
        .await;
        assert_tunnel_echo(&tunnel, 64 * 1024, 42).await;
    }
    // The other office PCs were never disturbed.
    for pc in &pcs[1..] {
        assert!(matches!(*pc.state.borrow(), ServerState::Online { .. }));
    }
}

/// Killing the etcd leader is a short pause: established tunnels keep
/// working, and registrations and cross-member look-ups succeed again within
/// the etcd call deadline. With no etcd member answering, established
/// tunnels keep working and registrations fail with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_is_a_short_pause_and_without_etcd_tunnels_keep_working() {
    use std::time::Instant;
    use thin_e2e::etcd::GatewayCluster;
    let mut cl = GatewayCluster::start("leader", 2);
    let target = echo_server().await;
    let pc = OfficePc::start(&cl.link(&[0, 1]), "desk-a", "pw a", target).await;
    // A client through gateway 1, redirected to gateway 0.
    let tunnel = connect(&cl.link(&[1]), "desk-a", "pw a").await;
    let leader = cl.etcd.leader();
    let t = Instant::now();
    cl.etcd.kill(leader);
    assert_tunnel_echo(&tunnel, 64 * 1024, 1).await;
    // A new registration through the other gateway just works, after a pause.
    let stored = match try_register(&cl.link(&[1]), "desk-b", "pw b").await {
        Ok(stored) => stored,
        Err(e) => panic!("registration after the leader died: {e}\n{}", cl.report(1)),
    };
    assert_eq!(stored, "desk-b");
    let pause = t.elapsed();
    println!("registration done {pause:?} after the etcd leader was killed");
    assert!(pause < Duration::from_secs(5), "the pause lasted {pause:?}");
    let new_leader = cl.etcd.leader();
    assert_ne!(new_leader, leader);
    // Look-ups across members still work: a new client through gateway 1.
    assert_tunnel_echo(&connect(&cl.link(&[1]), "desk-a", "pw a").await, 64 * 1024, 2).await;
    assert!(matches!(*pc.state.borrow(), thin_tunnel::server_agent::ServerState::Online { .. }));

    // No etcd member answers now.
    cl.etcd.pause_all();
    assert_tunnel_echo(&tunnel, 64 * 1024, 3).await;
    let refused = try_register(&cl.link(&[0]), "desk-c", "pw c").await;
    // A client at the gateway where the office PC is still gets through
    // (its own table first); at the other one it is told why not.
    let local = try_connect(&cl.link(&[0]), "desk-a", "pw a").await;
    let remote = try_connect(&cl.link(&[1]), "desk-a", "pw a").await;
    // A member still shows its own sessions and says the cluster view is
    // unavailable (within ClusterEtcdTimeout), on /thinstat/ and in `status`.
    let stat = cl.thinstat(0, "").await;
    let (code, status) = cl.status(0).await;
    cl.etcd.resume_all();
    assert_eq!(refused.unwrap_err(), "the gateway cannot save its database; try again later");
    assert_eq!(stat_field(&stat, "NumSession"), Some("1"), "{stat}");
    assert!(stat.contains(&pc.session_id()), "{stat}");
    let why = stat_field(&stat, "ClusterView").unwrap_or_default();
    // A deadline, or the connection's keep-alive giving up first.
    assert!(why.starts_with("unavailable: etcd "), "{stat}");
    assert!(!stat.contains("ClusterNumMember"), "{stat}");
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("office PCs online       1"), "{status}");
    assert!(status.contains("cluster view            unavailable: "), "{status}");
    assert!(status.contains("0 of 3 endpoints answering"), "{status}");
    assert_tunnel_echo(&local.expect("a client at the office PC's own gateway"), 32 * 1024, 4).await;
    match remote {
        Err(e) => assert!(e.to_string().contains("the cluster's directory cannot be reached"), "{e}"),
        Ok(_) => panic!("found across members with etcd stopped"),
    }
    assert_tunnel_echo(&tunnel, 64 * 1024, 5).await;
    // etcd back: registrations work again.
    wait_for("registrations work again", Duration::from_secs(10), || {
        let link = cl.link(&[0]);
        async move { try_register(&link, "desk-c", "pw c").await.ok() }
    })
    .await;
}

/// A stand-in for a compromised or malicious gateway on loopback address
/// `ip`: it serves `cert` and answers every client with a redirect to `to(its
/// address)`; counts the `ClientConnect` requests it read.
async fn redirecting_gateway(
    ip: &str,
    (cert, key): (String, String),
    to: impl Fn(std::net::SocketAddr) -> String + Send + Sync + 'static,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>, tempfile::TempDir) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cp, cert).unwrap();
    std::fs::write(&kp, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(thin_protocol::tls::server_config(&cp, &kp).unwrap());
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let Ok(mut tls) = acceptor.accept(tcp).await else { continue };
            if thin_protocol::http::read_request(&mut tls).await.is_err()
                || thin_protocol::http::write_upgrade_response(&mut tls).await.is_err()
            {
                continue;
            }
            if let Ok(Hello::ClientConnect { .. }) = read_frame::<Hello, _>(&mut tls).await {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = write_frame(&mut tls, &GateToTunnel::Redirect { gateway: to(addr) }).await;
            }
        }
    });
    (addr, asked, dir)
}

/// A redirect is an attacker's tool: the app follows one only to an
/// `https://` URL whose host holds a certificate from the brand's pinned CA,
/// and only [`MAX_REDIRECTS`] times in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_cannot_send_the_app_to_an_unpinned_host_nor_loop() {
    use std::sync::atomic::Ordering;
    use thin_e2e::Pki;
    use thin_tunnel::client_agent::ClientError;
    use thin_tunnel::link::{LinkError, RedirectRefused, MAX_REDIRECTS};
    let pki = Pki::new();
    let link_to = |addr: std::net::SocketAddr| {
        let text =
            thin_protocol::entry_point::EntryPoint::render(&pki.ca_pem, &format!("https://{addr}/thingate/"), "S");
        thin_tunnel::link::Link::new(thin_protocol::entry_point::EntryPoint::parse(&text, "e").unwrap(), None).unwrap()
    };
    // A host with a certificate from another CA: the TLS handshake fails,
    // and it never reads the request.
    let (evil, evil_asked, _d1) =
        redirecting_gateway("127.0.0.1", Pki::foreign_leaf(), |a| format!("https://{a}/")).await;
    let (gw, _, _d2) = redirecting_gateway("127.0.0.1", (pki.cert_pem.clone(), pki.key_pem.clone()), move |_| {
        format!("https://{evil}/thingate/")
    })
    .await;
    match try_connect(&link_to(gw), "desk-01", "pw").await {
        Err(ClientError::Link(LinkError::Tls { addr, cause })) => {
            assert!(cause.is_certificate(), "{cause}");
            assert_eq!(addr, evil.to_string());
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("followed a redirect to a host outside the pinned CA"),
    }
    assert_eq!(evil_asked.load(Ordering::SeqCst), 0, "the unpinned host read the client's request");
    // A host with a certificate from the brand's CA, but for other names
    // (127.0.0.1 and localhost, reached here as 127.0.0.2): refused too.
    let (other, other_asked, _d4) =
        redirecting_gateway("127.0.0.2", (pki.cert_pem.clone(), pki.key_pem.clone()), |a| format!("https://{a}/"))
            .await;
    let (gw, _, _d5) = redirecting_gateway("127.0.0.1", (pki.cert_pem.clone(), pki.key_pem.clone()), move |_| {
        format!("https://{other}/thingate/")
    })
    .await;
    match try_connect(&link_to(gw), "desk-01", "pw").await {
        Err(ClientError::Link(LinkError::Tls { cause, .. })) => assert!(cause.is_certificate(), "{cause}"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("followed a redirect to a host whose certificate names another host"),
    }
    assert_eq!(other_asked.load(Ordering::SeqCst), 0);
    // Not https:// (plain http, user information): not followed at all.
    for bad in ["http://127.0.0.1:1/thingate/", "https://user@127.0.0.1:1/", "javascript:alert(1)"] {
        let bad = bad.to_string();
        let (gw, _, _d) =
            redirecting_gateway("127.0.0.1", (pki.cert_pem.clone(), pki.key_pem.clone()), move |_| bad.clone()).await;
        match try_connect(&link_to(gw), "desk-01", "pw").await {
            Err(ClientError::Link(LinkError::Redirect { why: RedirectRefused::BadUrl(_), .. })) => {}
            Err(e) => panic!("refused for another reason: {e}"),
            Ok(_) => panic!("followed"),
        }
    }
    // A gateway that redirects to itself: followed MAX_REDIRECTS times, then refused.
    let (gw, asked, _d3) = redirecting_gateway("127.0.0.1", (pki.cert_pem.clone(), pki.key_pem.clone()), |a| {
        format!("https://{a}/thingate/")
    })
    .await;
    match try_connect(&link_to(gw), "desk-01", "pw").await {
        Err(ClientError::Link(e @ LinkError::Redirect { why: RedirectRefused::TooMany, .. })) => {
            assert!(e.to_string().contains(&format!("more than {MAX_REDIRECTS} redirects in a row")), "{e}");
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a redirect loop connected"),
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1 + MAX_REDIRECTS);
}

/// The shipped binaries: `thinsvr` with an `EntryPoint.dat` listing two
/// members (one per line) serves at the first; `thinclient` entering through
/// the other is redirected there; when the first member is killed, `thinsvr`
/// moves to the second and a new `thinclient` reaches it within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_binaries_try_the_listed_gateways_and_follow_the_redirect() {
    use std::net::SocketAddr;
    use thin_e2e::etcd::GatewayCluster;
    use thin_e2e::procs::{thinclient_connect, thinsvr, Proc};
    let mut cl = GatewayCluster::start("apps", 2);
    let target = echo_server().await;
    let cfg = tempfile::tempdir().unwrap();
    let pw = "open sesame, kind tortoise\n";
    let svr_ep = cl.entry_point(&[1, 0]);
    let reg = thinsvr(&svr_ep, cfg.path(), &["register", "--pcid", "cluster-desk", "--password-stdin"]);
    let (st, err) = Proc::spawn(reg, Some(pw)).finish(Duration::from_secs(30));
    assert!(st.success(), "{err}");
    let mut svr = Proc::spawn(thinsvr(&svr_ep, cfg.path(), &["run", "--target", &target.to_string()]), None);
    svr.wait_line("online as cluster-desk", Duration::from_secs(20));
    let stat = thin_e2e::https::get(cl.members[1].addr, &cl.pki.ca_pem, "/thinstat/").await.1;
    assert!(stat.contains("NumSession 1"), "thinsvr is not at the first gateway of its list: {stat}");
    let cli_ep = cl.entry_point(&[0]);
    let mut cli = Proc::spawn(thinclient_connect(&cli_ep, "cluster-desk"), Some(pw));
    let local: SocketAddr = cli.wait_line("listening on ", Duration::from_secs(30)).parse().unwrap();
    assert_tcp_echo(local, 256 * 1024, 1).await;
    drop(cli);
    assert_eq!(cl.counter(0, "thingate_client_redirects_total").await, 1);
    let killed = std::time::Instant::now();
    cl.kill(1);
    // Each try is a new thinclient; the one that connects is kept running.
    let (_cli, local) = loop {
        let mut cli = Proc::spawn(thinclient_connect(&cli_ep, "cluster-desk"), Some(pw));
        match cli.try_wait_line("listening on ", Duration::from_secs(5)) {
            Ok(addr) => break (cli, addr.parse::<SocketAddr>().unwrap()),
            Err(e) => assert!(killed.elapsed() < Duration::from_secs(5), "not reached within 5 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("thinclient reached the office PC {:?} after its gateway was killed", killed.elapsed());
    assert_tcp_echo(local, 256 * 1024, 2).await;
}
