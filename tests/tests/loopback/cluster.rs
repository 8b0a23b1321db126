//! The cluster edition on loopback: gateways that are members of one cluster
//! on a real etcd share the registry and announce their office PCs.

use std::time::Duration;

use thin_e2e::etcd::{member_ini, EtcdServer};
use thin_e2e::raw::RawServer;
use thin_e2e::*;
use thin_protocol::identity::Identity;
use thin_protocol::messages::{ErrorCode, GateToServer};

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
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let etcd = EtcdServer::start();
    let gw = TestGateway::with_ini(&member_ini(&etcd, "down", 1)).await;
    let target = echo_server().await;
    let _pc = gw.office_pc("desk-01", "pw").target(target).await;
    let tunnel = gw.connect("desk-01", "pw").await;
    kill(Pid::from_raw(etcd.pid()), Signal::SIGSTOP).unwrap();
    assert_tunnel_echo(&tunnel, 64 * 1024, 1).await;
    let mut fresh = RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    let answer = fresh.register("desk-02", None).await;
    kill(Pid::from_raw(etcd.pid()), Signal::SIGCONT).unwrap();
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
