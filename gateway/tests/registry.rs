//! The machine registry's contract, written against the [`MachineRegistry`]
//! trait so that every implementation runs the same checks: the file database
//! and the cluster edition's registry on a real etcd (`support::etcd_server`).
//! The session directory's contract likewise, in memory and in etcd.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use support::etcd_server::EtcdServer;
use thin_protocol::messages::ErrorCode;
use thingate::config::ClusterSettings;
use thingate::machine_db::{Machine, MachineDb};
use thingate::registry::{
    ChangeError, Claim, EtcdDirectory, EtcdLink, EtcdRegistry, FileRegistry, LocalDirectory, MachineRegistry, Presence,
    RegisterError, SessionDirectory,
};

fn claim<'a>(msid: &'a str, pcid: &'a str, allow_new: bool) -> Claim<'a> {
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    Claim { msid, cert_hash: "HASH", pcid, host: "desk.example.org", ip, allow_new }
}

/// What every registry must do; `reg` starts empty.
pub async fn contract(reg: &impl MachineRegistry) {
    assert_eq!(reg.registered_count(), 0);
    assert_eq!(reg.pcid_of("M1"), None);
    // A claim is stored in lower case; the ID then belongs to its machine.
    assert_eq!(reg.register(claim("M1", "Desk", true)).await.unwrap(), "desk");
    assert_eq!(reg.pcid_of("M1").as_deref(), Some("desk"));
    assert!(reg.is_registered("desk") && reg.is_registered("DESK"));
    // Nobody else can take it, in any case; nothing changes.
    let taken = reg.register(claim("M2", "DESK", true)).await.unwrap_err();
    assert!(matches!(taken, RegisterError::Taken(ref p) if p == "desk"), "{taken}");
    assert_eq!(taken.code(), ErrorCode::PcidTaken);
    assert_eq!((reg.pcid_of("M2"), reg.registered_count()), (None, 1));
    // Invalid IDs are refused.
    let bad = reg.register(claim("M2", "a b", true)).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidPcid, "{bad}");
    // Closed to new machines: a new one is refused, a known one may rename.
    let closed = reg.register(claim("M2", "laptop", false)).await.unwrap_err();
    assert_eq!(closed.code(), ErrorCode::RegisterDisabled, "{closed}");
    assert!(!reg.is_registered("laptop"));
    assert_eq!(reg.register(claim("M1", "desk2", false)).await.unwrap(), "desk2");
    // A rename frees the old ID for others.
    assert!(!reg.is_registered("desk") && reg.is_registered("Desk2"));
    assert_eq!(reg.register(claim("M2", "desk", true)).await.unwrap(), "desk");
    // Claiming the ID it already holds is fine.
    assert_eq!(reg.register(claim("M2", "desk", true)).await.unwrap(), "desk");
    assert_eq!(reg.registered_count(), 2);
    // Serving notes and flushes do not change who holds what.
    reg.note_serving("M2", "192.0.2.8".parse().unwrap(), 18).await;
    reg.note_serving("unknown", "192.0.2.8".parse().unwrap(), 18).await;
    reg.flush().await.unwrap();
    assert_eq!((reg.pcid_of("M2").as_deref(), reg.registered_count()), (Some("desk"), 2));
}

/// Polls `f` until it holds (a member's cache follows etcd through a watch),
/// for at most 10 s.
async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The admin console's changes, on the registry [`contract`] left (M1 holds
/// `desk2`, M2 `desk`): disable keeps the record and its ID, enable undoes
/// it, remove frees the ID. Leaves M2 disabled and M1 removed.
pub async fn admin_changes(reg: &impl MachineRegistry) {
    assert!(!reg.is_disabled("M2"));
    reg.set_disabled("DESK", true).await.unwrap();
    assert!(reg.is_disabled("M2") && reg.is_registered("desk") && !reg.is_disabled("M1"));
    let listed: Vec<_> = reg.machines().iter().map(|m| (m.pcid.clone(), m.disabled())).collect();
    assert_eq!(listed, [("desk".to_string(), true), ("desk2".to_string(), false)]);
    reg.set_disabled("desk", false).await.unwrap();
    assert!(!reg.is_disabled("M2"));
    assert!(matches!(reg.set_disabled("nobody", true).await, Err(ChangeError::Unknown(ref p)) if p == "nobody"));
    reg.remove("desk2").await.unwrap();
    assert!(!reg.is_registered("desk2") && reg.pcid_of("M1").is_none() && reg.registered_count() == 1);
    assert!(matches!(reg.remove("desk2").await, Err(ChangeError::Unknown(_))));
    reg.set_disabled("desk", true).await.unwrap();
}

#[tokio::test]
async fn the_file_registry_keeps_the_contract_and_stores_every_claim() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    let reg = FileRegistry::open(&path).unwrap();
    contract(&reg).await;
    // Every claim and note is on disk.
    let db = MachineDb::open(&path).unwrap();
    assert_eq!(db.by_pcid("desk2").map(|m| m.msid.as_str()), Some("M1"));
    let m2 = db.by_msid("M2").unwrap();
    assert_eq!((m2.pcid.as_str(), m2.num_server, m2.server_mask64, m2.last_ip.as_str()), ("desk", 1, 18, "192.0.2.8"));
    assert_eq!((m2.cert_hash.as_str(), m2.create_host.as_str()), ("HASH", "desk.example.org"));
    // The admin's changes are on disk too.
    admin_changes(&reg).await;
    reg.flush().await.unwrap();
    let db = MachineDb::open(&path).unwrap();
    assert!(db.by_msid("M1").is_none() && db.by_pcid("desk2").is_none(), "removed");
    assert!(db.by_msid("M2").unwrap().disabled(), "disabled");
    assert!(std::fs::read_to_string(&path).unwrap().contains("bool Disabled true"));
}

#[tokio::test]
async fn a_claim_that_cannot_be_stored_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gone").join("MachineDatabase.config");
    let reg = FileRegistry::open(&path).unwrap();
    let e = reg.register(claim("M1", "desk", true)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal);
    assert_eq!(e.to_string(), "the gateway cannot save its database; try again later");
    assert!(!reg.is_registered("desk") && reg.pcid_of("M1").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_claims_shares_a_few_saves_and_a_claim_is_on_disk_when_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    // A database of some size, so that a save takes a while.
    let mut db = MachineDb::open(&path).unwrap();
    for i in 0..5000 {
        db.upsert(Machine::new(format!("OLD-{i}"), format!("old-{i}")));
    }
    db.save().unwrap();
    let reg = std::sync::Arc::new(FileRegistry::open(&path).unwrap());
    assert_eq!(reg.register(claim("FIRST", "first", true)).await.unwrap(), "first");
    assert_eq!(reg.saves(), 1);
    let on_disk = MachineDb::open(&path).unwrap();
    assert_eq!(on_disk.by_msid("FIRST").map(|m| m.pcid.as_str()), Some("first"), "stored before the answer");

    let claims: Vec<_> = (0..500)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move {
                let (m, p) = (format!("M{i}"), format!("pc-{i}"));
                reg.register(claim(&m, &p, true)).await.unwrap()
            })
        })
        .collect();
    for c in claims {
        c.await.unwrap();
    }
    let saves = reg.saves() - 1;
    assert!(saves < 50, "500 claims at once took {saves} saves; they should share a few");
    let db = MachineDb::open(&path).unwrap();
    assert_eq!(db.len(), 5501);
    assert_eq!(db.by_pcid("pc-499").map(|m| m.msid.as_str()), Some("M499"));
}

/// Identity of the file at `path` now: a whole save replaces it (new inode).
fn file_id(path: &std::path::Path) -> (u64, u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.len(), m.modified().unwrap())
}

/// A claim costs one append to the journal however many machines the file
/// holds; the file is not rewritten for each (registrations one after
/// another were O(n²) in the number of machines). A crash loses no answered
/// claim, and once the registry is quiet the file holds everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_append_to_the_journal_and_the_file_is_rewritten_when_quiet() {
    use thingate::machine_db::journal;
    use thingate::registry::file::QUIET;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("MachineDatabase.config");
    let mut db = MachineDb::open(&path).unwrap();
    for i in 0..20_000 {
        db.upsert(Machine::new(format!("OLD-{i}"), format!("old-{i}")));
    }
    db.save().unwrap();
    let before = file_id(&path);

    let reg = FileRegistry::open(&path).unwrap();
    for i in 0..200 {
        let (m, p) = (format!("M{i}"), format!("pc-{i}"));
        reg.register(claim(&m, &p, true)).await.unwrap();
    }
    assert_eq!(reg.saves(), 200, "one write per claim, one after another");
    assert_eq!(file_id(&path), before, "the file was rewritten for a claim");
    let appended = std::fs::metadata(journal::path_of(&path)).unwrap().len();
    assert!(appended < 200 * 1024, "the journal holds {appended} bytes for 200 claims");

    // A crash (no flush): every answered claim is on disk.
    drop(reg);
    let db = MachineDb::open(&path).unwrap();
    assert_eq!((db.len(), db.journal_seq()), (20_200, 200));
    assert_eq!(db.by_pcid("pc-199").map(|m| m.msid.as_str()), Some("M199"));

    // Opened again, the registry folds the journal into the file once quiet.
    let reg = FileRegistry::open(&path).unwrap();
    let deadline = std::time::Instant::now() + QUIET * 20;
    while journal::path_of(&path).exists() {
        assert!(std::time::Instant::now() < deadline, "the journal was not folded into the file");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_ne!(file_id(&path).0, before.0, "the file was not rewritten");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\tuint64 JournalSeq 200\r\n"), "the file names the batches it holds");
    let db = MachineDb::open(&path).unwrap();
    assert_eq!(db.by_pcid("pc-0").map(|m| m.msid.as_str()), Some("M0"));
    assert_eq!(db.len(), 20_200);

    // Later claims go on numbering; a flush folds them in at once.
    reg.register(claim("LATE", "late", true)).await.unwrap();
    assert!(journal::path_of(&path).exists());
    reg.flush().await.unwrap();
    assert!(!journal::path_of(&path).exists(), "a flush folds the journal in");
    let db = MachineDb::open(&path).unwrap();
    assert_eq!((db.len(), db.journal_seq()), (20_201, 201));
}

fn settings(etcd: &EtcdServer, url: &str) -> ClusterSettings {
    ClusterSettings::plain(vec![etcd.url.clone()], url, "test-cluster")
}

/// Waits until `check` holds, at most 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_etcd_registry_keeps_the_contract_and_stores_every_claim() {
    let etcd = EtcdServer::start();
    let reg = EtcdRegistry::connect(&settings(&etcd, "https://gw1.test/")).await.unwrap();
    contract(&reg).await;
    assert!(reg.saves() >= 5, "every claim and the flush wrote to etcd");
    // Every claim and note is in etcd: a member that starts now reads them.
    let fresh = EtcdRegistry::connect(&settings(&etcd, "https://gw2.test/")).await.unwrap();
    assert_eq!((fresh.pcid_of("M1").as_deref(), fresh.registered_count()), (Some("desk2"), 2));
    assert!(!fresh.is_registered("laptop"));
    let standing = fresh.standing("M2").unwrap();
    assert!(standing.served && standing.registered_ms > 0, "{standing:?}");
    // A member of another cluster on the same etcd sees none of it.
    let other = ClusterSettings::plain(vec![etcd.url.clone()], "https://gw9.test/", "other");
    assert_eq!(EtcdRegistry::connect(&other).await.unwrap().registered_count(), 0);
    // The admin's changes at one member are in etcd, and another sees them.
    admin_changes(&reg).await;
    wait_until("the other member sees the admin's changes", || {
        !fresh.is_registered("desk2") && fresh.is_disabled("M2")
    })
    .await;
    let third = EtcdRegistry::connect(&settings(&etcd, "https://gw3.test/")).await.unwrap();
    assert!(third.is_disabled("M2") && third.pcid_of("M1").is_none() && third.registered_count() == 1);
}

/// The helper's readiness check tells its own etcd from another test's on a
/// port both found free (CI once saw a claim answered by another test's
/// etcd while this test's was stopped).
#[test]
fn the_etcd_helper_knows_its_own_etcd_from_another_on_the_port() {
    let (a, b) = (EtcdServer::start(), EtcdServer::start());
    assert!(a.answers_at(&a.url) && b.answers_at(&b.url));
    assert!(!a.answers_at(&b.url) && !b.answers_at(&a.url));
}

/// `pause` returns once etcd is stopped (not merely signalled), and `resume`
/// brings it back.
#[test]
fn the_etcd_helper_pauses_and_resumes_etcd() {
    let etcd = EtcdServer::start();
    etcd.pause();
    assert!(!etcd.answers_at(&etcd.url), "a paused etcd answered");
    etcd.resume();
    assert!(etcd.answers_at(&etcd.url), "a resumed etcd did not answer");
}

#[tokio::test]
async fn a_claim_etcd_does_not_answer_in_time_fails_with_the_storage_error_and_changes_nothing() {
    let etcd = EtcdServer::start();
    let mut s = settings(&etcd, "https://gw1.test/");
    s.timeout = Duration::from_millis(500);
    let reg = EtcdRegistry::connect(&s).await.unwrap();
    etcd.pause();
    let t = Instant::now();
    let e = reg.register(claim("M1", "desk", true)).await.unwrap_err();
    let took = t.elapsed();
    etcd.resume();
    assert!(took < Duration::from_secs(3), "a hung etcd held the claim for {took:?}");
    assert!(matches!(e, RegisterError::Storage(_)), "{e}");
    assert_eq!(e.code(), ErrorCode::Internal);
    assert_eq!(e.to_string(), "the gateway cannot save its database; try again later");
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("did not answer within 500 ms"), "{cause}");
    assert!(!reg.is_registered("desk") && reg.pcid_of("M1").is_none());
    // etcd is back: the same claim goes through.
    assert_eq!(reg.register(claim("M1", "desk", true)).await.unwrap(), "desk");
}

#[tokio::test]
async fn an_unreachable_etcd_is_a_clear_error_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut s = ClusterSettings::plain(vec![format!("http://127.0.0.1:{port}")], "https://gw1.test/", "c");
    s.timeout = Duration::from_millis(300);
    let t = Instant::now();
    let e = EtcdRegistry::connect(&s).await.unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_one_registry_and_a_computer_id_goes_to_one_machine_only() {
    let etcd = EtcdServer::start();
    let a = std::sync::Arc::new(EtcdRegistry::connect(&settings(&etcd, "https://gw1.test/")).await.unwrap());
    let b = std::sync::Arc::new(EtcdRegistry::connect(&settings(&etcd, "https://gw2.test/")).await.unwrap());
    assert_eq!(a.register(claim("M1", "desk", true)).await.unwrap(), "desk");
    // B decides on what etcd holds, even before its cache has heard of it.
    let taken = b.register(claim("M2", "Desk", true)).await.unwrap_err();
    assert_eq!(taken.code(), ErrorCode::PcidTaken, "{taken}");
    eventually("B's cache sees A's claim", || b.pcid_of("M1").as_deref() == Some("desk")).await;
    // The machine moves to B and renames there: A sees the old ID freed.
    assert_eq!(b.register(claim("M1", "desk-2", true)).await.unwrap(), "desk-2");
    eventually("A sees the rename", || !a.is_registered("desk") && a.is_registered("desk-2")).await;
    // Twenty machines race for one ID through both members: one wins.
    let racers: Vec<_> = (0..20)
        .map(|i| {
            let reg = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { reg.register(claim(&format!("R{i}"), "hot", true)).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        match r.await.unwrap() {
            Ok(p) => won.push((i, p)),
            Err(e) => assert_eq!(e.code(), ErrorCode::PcidTaken, "R{i}: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let winner = format!("R{}", won[0].0);
    eventually("both caches agree on the winner", || {
        a.pcid_of(&winner).as_deref() == Some("hot") && b.pcid_of(&winner).as_deref() == Some("hot")
    })
    .await;
    assert_eq!((a.registered_count(), b.registered_count()), (2, 2));
}

fn presence(msid: &str, gateway: &str, session: &str) -> Presence {
    Presence { msid: msid.into(), gateway: gateway.into(), session: session.into(), since_ms: 1_700_000_000_000 }
}

/// What every session directory must do; `dir` starts empty.
async fn directory_contract(dir: &impl SessionDirectory) {
    assert_eq!(dir.locate("desk").await.unwrap(), None);
    let first = presence("M1", "https://gw1.test/", "S1");
    dir.announce("desk", &first).await.unwrap();
    assert_eq!(dir.locate("desk").await.unwrap(), Some(first.clone()));
    // The machine reconnects (here or elsewhere): the newer session wins, and
    // the end of the older one does not withdraw it.
    let second = presence("M1", "https://gw2.test/", "S2");
    dir.announce("desk", &second).await.unwrap();
    dir.withdraw("desk", &first).await.unwrap();
    assert_eq!(dir.locate("desk").await.unwrap(), Some(second.clone()));
    dir.withdraw("desk", &second).await.unwrap();
    assert_eq!(dir.locate("desk").await.unwrap(), None);
    dir.withdraw("desk", &second).await.unwrap();
}

#[tokio::test]
async fn the_local_directory_keeps_the_contract() {
    directory_contract(&LocalDirectory::default()).await;
}

#[tokio::test]
async fn the_etcd_directory_keeps_the_contract_and_a_dead_member_is_withdrawn_by_its_lease() {
    let etcd = EtcdServer::start();
    let s = settings(&etcd, "https://gw1.test/");
    let link = EtcdLink::connect(&s).await.unwrap();
    let one = EtcdDirectory::join(link.clone(), "https://gw1.test/", Duration::from_secs(2)).await.unwrap();
    directory_contract(&one).await;
    let two = EtcdDirectory::join(link.clone(), "https://gw2.test/", Duration::from_secs(2)).await.unwrap();
    assert_eq!(one.members().await.unwrap(), ["https://gw1.test/", "https://gw2.test/"]);
    // Announcements outlive several TTLs while the member lives.
    let p = presence("M7", "https://gw2.test/", "S7");
    two.announce("pc-7", &p).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(one.locate("pc-7").await.unwrap(), Some(p), "kept alive past its 2 s TTL");
    // Member two dies (its keep-alives stop): what it announced goes with its lease.
    let t = Instant::now();
    drop(two);
    loop {
        if one.locate("pc-7").await.unwrap().is_none() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still announced {:?} after the member died", t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(t.elapsed() <= Duration::from_millis(3_500), "withdrawn after {:?} for a 2 s TTL", t.elapsed());
    assert_eq!(one.members().await.unwrap(), ["https://gw1.test/"]);
    // A member that leaves withdraws everything at once.
    let q = presence("M8", "https://gw1.test/", "S8");
    one.announce("pc-8", &q).await.unwrap();
    let three = EtcdDirectory::join(link, "https://gw3.test/", Duration::from_secs(2)).await.unwrap();
    one.leave().await.unwrap();
    assert_eq!(three.locate("pc-8").await.unwrap(), None);
    assert_eq!(three.members().await.unwrap(), ["https://gw3.test/"]);
}

#[tokio::test]
async fn thousands_of_machines_import_in_batches_and_load_page_by_page() {
    use thingate::registry::etcd_transfer;
    let etcd = EtcdServer::start();
    let s = settings(&etcd, "https://gw1.test/");
    let link = EtcdLink::connect(&s).await.unwrap();
    let mut db = MachineDb::in_memory(std::path::Path::new("import"));
    for i in 0..2_500 {
        db.upsert(Machine::new(format!("M{i:05}"), format!("pc-{i}")));
    }
    let t = Instant::now();
    let r = etcd_transfer::import(&link, &db).await.unwrap();
    assert_eq!((r.imported, r.already, r.conflicts.len()), (2_500, 0, 0));
    let took = t.elapsed();
    // Three pages of 1,000 at one revision.
    let reg = EtcdRegistry::open(link.clone()).await.unwrap();
    assert_eq!(reg.registered_count(), 2_500);
    assert_eq!(reg.pcid_of("M02499").as_deref(), Some("pc-2499"));
    let back = etcd_transfer::export(&link, MachineDb::in_memory(std::path::Path::new("export"))).await.unwrap();
    assert!(db.iter().eq(back.iter()), "the export differs from what was imported");
    // A batch meeting one machine the cluster has goes machine by machine.
    let mut more = MachineDb::in_memory(std::path::Path::new("more"));
    for (msid, pcid) in [("NEW", "pc-new"), ("CLASH", "PC-7"), ("M00003", "pc-3")] {
        more.upsert(Machine::new(msid, pcid));
    }
    let r = etcd_transfer::import(&link, &more).await.unwrap();
    assert_eq!((r.imported, r.already), (1, 1));
    assert_eq!(r.conflicts, ["pc-7: held in the cluster by machine M00007"]);
    eprintln!("imported 2,500 machines in {took:?}");
}
