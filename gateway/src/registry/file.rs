//! [`FileRegistry`]: the registry kept in `MachineDatabase.config`.
//!
//! Reads and changes work on the database in memory under a std mutex that is
//! held only for work in memory (a map look-up or insert). The files are
//! written by one writer thread of its own, never by the async workers: a
//! change is noted in a batch (the newest record per machine), the writer
//! takes the whole batch, applies it to its own copy of the database, appends
//! it to the journal beside the file ([`crate::machine_db::journal`]: one
//! small write and fsync), and publishes how far it got. A burst of
//! registrations therefore costs a few appends, not one each; a slow disk
//! delays only the registrations waiting for it; and a registration costs the
//! same with 10 machines as with 10,000.
//!
//! The writer folds the journal into the file (a whole save: temp file,
//! fsync, rename) when the journal grows past the file's size, after
//! [`QUIET`] without a change, on [`MachineRegistry::flush`] (which the
//! gateway calls when it stops), and after a failed append.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::{BoxFuture, ChangeError, Claim, MachineRegistry, RegisterError, Standing, StorageError};
use crate::machine_db::journal::{self, Journal};
use crate::machine_db::{now_ms, DbError, Machine, MachineDb};

/// After this long without a change, the journal is folded into the file, so
/// that the file an admin reads is current.
pub const QUIET: Duration = Duration::from_secs(1);
/// The journal is folded into the file once it holds more than the file's
/// size, or than this, whichever is more (a fold costs one file's write;
/// folding after as many bytes of appends keeps a change's cost flat).
const FOLD_AT_LEAST: u64 = 1 << 20;

/// A failed save, shared by every change it held.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct SaveFailed(Arc<DbError>);

/// How far the writer got: every change up to `upto` was in the save that
/// gave `result`.
#[derive(Debug, Clone)]
struct Written {
    upto: u64,
    result: Result<(), SaveFailed>,
}

/// The database in memory and the changes the writer has not taken yet.
#[derive(Debug)]
struct State {
    db: MachineDb,
    /// INVARIANT: for each MSID, the record as it is now in `db` (`None`:
    /// removed), for every change made since the writer last took the journal.
    journal: HashMap<String, Option<Machine>>,
    /// Number of the last change.
    changed: u64,
    /// The writer saves while `wanted` is above what it saved last.
    wanted: u64,
    /// The next save is to be a whole one (the journal folded in).
    whole: bool,
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Saves made (tried) so far.
    saves: AtomicU64,
    /// The journal holds changes the file does not.
    journaled: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("machine db lock")
    }
}

/// The machine database in memory, saved to its file by a writer thread;
/// a claim answers once the save that holds it is on disk.
#[derive(Debug)]
pub struct FileRegistry {
    shared: Arc<Shared>,
    written: watch::Receiver<Written>,
}

impl FileRegistry {
    /// Opens (and checks) the database file; a missing file is an empty registry.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Ok(Self::new(MachineDb::open(path)?))
    }

    /// Wraps an opened database and starts its writer thread.
    pub fn new(db: MachineDb) -> Self {
        let copy = db.clone();
        let state = State { db, journal: HashMap::new(), changed: 0, wanted: 0, whole: false, stop: false };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            saves: AtomicU64::new(0),
            journaled: AtomicBool::new(false),
        });
        let (tx, written) = watch::channel(Written { upto: 0, result: Ok(()) });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("machine-db-writer".into())
            .spawn(move || writer(&s, copy, &tx))
            .expect("spawn the machine database writer");
        Self { shared, written }
    }

    /// Notes a change of `msid` (already made in `st.db`); returns its number.
    /// With `save`, the writer is woken to store it.
    fn note(&self, st: &mut State, msid: &str, save: bool) -> u64 {
        st.journal.insert(msid.to_string(), st.db.by_msid(msid).cloned());
        st.changed += 1;
        if save {
            st.wanted = st.changed;
            self.shared.wake.notify_one();
        }
        st.changed
    }

    /// Waits until change `n` is on disk.
    async fn saved(&self, n: u64) -> Result<(), SaveFailed> {
        let mut rx = self.written.clone();
        let w = rx.wait_for(|w| w.upto >= n).await.map(|w| w.clone());
        match w {
            Ok(w) => w.result,
            Err(_) => Err(SaveFailed(Arc::new(DbError::Save {
                path: self.shared.lock().db.path().to_owned(),
                source: std::io::Error::other("the database writer stopped"),
            }))),
        }
    }

    async fn claim(&self, c: Claim<'_>) -> Result<String, RegisterError> {
        let pcid = thin_protocol::pcid::normalize(c.pcid)?;
        let (old, new, n) = {
            let mut st = self.shared.lock();
            if st.db.by_pcid(&pcid).is_some_and(|owner| owner.msid != c.msid) {
                return Err(RegisterError::Taken(pcid));
            }
            let now = now_ms();
            let old = st.db.by_msid(c.msid).cloned();
            let machine = match &old {
                Some(m) => Machine { pcid: pcid.clone(), update_date: now, last_ip: c.ip.to_string(), ..m.clone() },
                None if !c.allow_new => return Err(RegisterError::Closed),
                None => Machine {
                    msid: c.msid.to_string(),
                    pcid: pcid.clone(),
                    cert_hash: c.cert_hash.to_string(),
                    create_date: now,
                    create_host: c.host.to_string(),
                    create_ip: c.ip.to_string(),
                    update_date: now,
                    last_server_date: 0,
                    last_ip: c.ip.to_string(),
                    server_mask64: 0,
                    num_server: 0,
                    num_client: 0,
                    first_client_date: 0,
                    last_client_date: 0,
                    extra: Vec::new(),
                },
            };
            st.db.upsert(machine.clone());
            let n = self.note(&mut st, c.msid, true);
            (old, machine, n)
        };
        if let Err(e) = self.saved(n).await {
            // Keep memory and disk in step: undo, unless a newer change of
            // this machine came since (it is then the one to keep).
            let mut st = self.shared.lock();
            if st.db.by_msid(c.msid) == Some(&new) {
                match old {
                    Some(m) => {
                        if let Err(why) = st.db.try_upsert(m) {
                            tracing::error!(error = %why, "cannot undo a claim that was not saved");
                        }
                    }
                    None => {
                        st.db.remove(c.msid);
                    }
                }
                self.note(&mut st, c.msid, true);
            }
            tracing::error!(error = %e, "cannot save the machine database");
            return Err(RegisterError::Storage(e.into()));
        }
        Ok(pcid)
    }
}

impl FileRegistry {
    /// Applies the admin's `change` to the machine holding `pcid` (`None`:
    /// removes it) and waits until it is on disk.
    async fn change(&self, pcid: &str, change: impl FnOnce(&Machine) -> Option<Machine>) -> Result<(), ChangeError> {
        let pcid = pcid.to_ascii_lowercase();
        let n = {
            let mut st = self.shared.lock();
            let Some(m) = st.db.by_pcid(&pcid).cloned() else { return Err(ChangeError::Unknown(pcid)) };
            match change(&m) {
                Some(new) => st.db.upsert(Machine { update_date: now_ms(), ..new }),
                None => {
                    st.db.remove(&m.msid);
                }
            }
            self.note(&mut st, &m.msid, true)
        };
        // A failed save is retried by the writer (the next save folds the
        // journal into the file); the admin is told it is not stored yet.
        self.saved(n).await.map_err(|e| ChangeError::Storage(e.into()))
    }
}

impl Drop for FileRegistry {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

/// The writer thread: each time a change is wanted on disk, appends every
/// change noted until then to the journal, or folds the journal into the
/// file (see the module's documentation).
fn writer(shared: &Shared, mut copy: MachineDb, written: &watch::Sender<Written>) {
    let mut journal = Journal::new(&copy);
    shared.journaled.store(!journal.is_empty(), Ordering::SeqCst);
    let mut file_len = std::fs::metadata(copy.path()).map_or(0, |m| m.len());
    // A failed append leaves the copy ahead of the journal: fold next.
    let mut fold_next = !journal.is_empty();
    let mut done = 0;
    loop {
        let (batch, upto, whole) = {
            let mut st = shared.lock();
            loop {
                if st.stop {
                    return;
                }
                if st.wanted > done {
                    break;
                }
                if journal.is_empty() && !fold_next {
                    st = shared.wake.wait(st).expect("machine db lock");
                    continue;
                }
                let (guard, waited) = shared.wake.wait_timeout(st, QUIET).expect("machine db lock");
                st = guard;
                if waited.timed_out() && st.wanted <= done && !st.stop {
                    // Quiet: fold, with whatever is noted.
                    st.whole = true;
                    break;
                }
            }
            let batch: journal::Batch = std::mem::take(&mut st.journal).into_iter().collect();
            (batch, st.changed, std::mem::take(&mut st.whole))
        };
        let fold = whole || fold_next || journal.len() > file_len.max(FOLD_AT_LEAST);
        // An append renders the batch first; then the copy takes it (no clone).
        let appended = (!fold).then(|| {
            shared.journaled.store(true, Ordering::SeqCst);
            journal.append(&batch)
        });
        if let Err(e) = journal::apply(&mut copy, batch) {
            tracing::error!(error = %e, "machine database copy not changed");
        }
        let result = if let Some(appended) = appended {
            appended.map(|seq| copy.set_journal_seq(seq)).map_err(|source| {
                fold_next = true;
                DbError::Save { path: journal::path_of(copy.path()), source }
            })
        } else {
            copy.set_journal_seq(journal.seq());
            let text = copy.render();
            let saved = crate::machine_db::write(copy.path(), &text);
            if saved.is_ok() {
                file_len = text.len() as u64;
                fold_next = false;
                shared.journaled.store(false, Ordering::SeqCst);
                if let Err(e) = journal.clear() {
                    // Harmless: the file names the batches it holds.
                    tracing::warn!(error = %e, "cannot empty the machine database journal");
                }
            }
            saved
        };
        shared.saves.fetch_add(1, Ordering::Relaxed);
        done = upto;
        written.send_replace(Written { upto, result: result.map_err(|e| SaveFailed(Arc::new(e))) });
    }
}

impl MachineRegistry for FileRegistry {
    fn pcid_of(&self, msid: &str) -> Option<String> {
        self.shared.lock().db.by_msid(msid).map(|m| m.pcid.clone())
    }

    fn is_registered(&self, pcid: &str) -> bool {
        self.shared.lock().db.by_pcid(pcid).is_some()
    }

    fn registered_count(&self) -> usize {
        self.shared.lock().db.len()
    }

    fn saves(&self) -> u64 {
        self.shared.saves.load(Ordering::Relaxed)
    }

    fn standing(&self, msid: &str) -> Option<Standing> {
        self.shared.lock().db.by_msid(msid).map(Standing::of)
    }

    fn register<'a>(&'a self, claim: Claim<'a>) -> BoxFuture<'a, Result<String, RegisterError>> {
        Box::pin(self.claim(claim))
    }

    fn note_serving<'a>(&'a self, msid: &'a str, ip: IpAddr, server_mask: u64) -> BoxFuture<'a, ()> {
        let mut st = self.shared.lock();
        if let Some(m) = st.db.by_msid(msid).cloned() {
            st.db.upsert(Machine {
                last_server_date: now_ms(),
                last_ip: ip.to_string(),
                server_mask64: server_mask,
                num_server: m.num_server.saturating_add(1),
                ..m
            });
            self.note(&mut st, msid, false);
        }
        Box::pin(std::future::ready(()))
    }

    fn machines(&self) -> Vec<Machine> {
        let mut v: Vec<Machine> = self.shared.lock().db.iter().cloned().collect();
        v.sort_by(|a, b| a.pcid.cmp(&b.pcid));
        v
    }

    fn is_disabled(&self, msid: &str) -> bool {
        self.shared.lock().db.by_msid(msid).is_some_and(Machine::disabled)
    }

    fn set_disabled<'a>(&'a self, pcid: &'a str, disabled: bool) -> BoxFuture<'a, Result<(), ChangeError>> {
        Box::pin(self.change(pcid, move |m| {
            let mut m = m.clone();
            m.set_disabled(disabled);
            Some(m)
        }))
    }

    fn remove<'a>(&'a self, pcid: &'a str) -> BoxFuture<'a, Result<(), ChangeError>> {
        Box::pin(self.change(pcid, |_| None))
    }

    fn wol_macs(&self, pcid: &str) -> Vec<String> {
        self.shared.lock().db.by_pcid(pcid).map(Machine::wol_macs).unwrap_or_default()
    }

    fn note_wol_macs<'a>(&'a self, msid: &'a str, macs: &'a [String]) -> BoxFuture<'a, ()> {
        let mut st = self.shared.lock();
        if let Some(mut m) = st.db.by_msid(msid).cloned() {
            if m.wol_macs() != macs {
                m.set_wol_macs(macs);
                st.db.upsert(m);
                self.note(&mut st, msid, false);
            }
        }
        Box::pin(std::future::ready(()))
    }

    fn note_client<'a>(&'a self, msid: &'a str) -> BoxFuture<'a, ()> {
        let mut st = self.shared.lock();
        if let Some(m) = st.db.by_msid(msid).cloned() {
            let now = now_ms();
            let first = if m.first_client_date == 0 { now } else { m.first_client_date };
            st.db.upsert(Machine {
                num_client: m.num_client.saturating_add(1),
                first_client_date: first,
                last_client_date: now,
                ..m
            });
            self.note(&mut st, msid, false);
        }
        Box::pin(std::future::ready(()))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let n = {
                let mut st = self.shared.lock();
                let (upto, ok) = {
                    let w = self.written.borrow();
                    (w.upto, w.result.is_ok())
                };
                let journaled = self.shared.journaled.load(Ordering::SeqCst);
                if st.journal.is_empty() && ok && upto >= st.wanted && !journaled {
                    return Ok(());
                }
                // Noted changes, or a failed save to try again; the journal
                // is folded in, so that the file holds everything.
                st.changed += 1;
                st.wanted = st.changed;
                st.whole = true;
                self.shared.wake.notify_one();
                // Otherwise a save is under way: wait for it.
                st.wanted
            };
            self.saved(n).await.map_err(StorageError::from)
        })
    }
}
