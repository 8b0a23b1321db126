//! The machine registry's contract, written against the [`MachineRegistry`]
//! trait so that every implementation runs the same checks: the file database
//! now, a cluster registry later (add a test that calls [`contract`] with it).

use std::net::IpAddr;

use thin_protocol::messages::ErrorCode;
use thingate::machine_db::{Machine, MachineDb};
use thingate::registry::{Claim, FileRegistry, MachineRegistry, RegisterError};

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
