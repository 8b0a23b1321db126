//! [`EtcdRegistry`]: the cluster edition's registry, kept in etcd
//! (`docs/cluster.md`). Reads come from a cache that a watch keeps current;
//! a claim is one etcd transaction, decided on what etcd holds, not on the cache.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, GetResponse, KeyValue, Txn, TxnOp, TxnOpResponse, WatchOptions};
use tokio::task::JoinHandle;

use super::etcd_link::{decode, encode, EtcdError, EtcdLink};
use super::{BoxFuture, ChangeError, Claim, MachineRegistry, RegisterError, Standing, StorageError};
use crate::config::ClusterSettings;
use crate::machine_db::{now_ms, Machine, MachineDb};

/// Tries of a claim whose keys changed between the read and the transaction.
const CLAIM_TRIES: usize = 3;

/// The machines as etcd holds them, as far as this member has seen.
#[derive(Debug)]
struct Cache {
    db: MachineDb,
    /// INVARIANT: for each MSID in `db`, the etcd revision its record was
    /// written at; an event of an older revision is stale and ignored.
    revs: HashMap<String, i64>,
    /// Machines whose serving or client figures changed since the last flush.
    noted: HashSet<String>,
}

impl Cache {
    fn new() -> Cache {
        Cache { db: MachineDb::in_memory(Path::new("etcd")), revs: HashMap::new(), noted: HashSet::new() }
    }

    /// Takes in `m`, written at `rev`, unless the cache has a newer record.
    fn put(&mut self, m: Machine, rev: i64) {
        if self.revs.get(&m.msid).is_some_and(|&r| r >= rev) {
            return;
        }
        // etcd gave this PCID to `m`; a holder in the cache is one whose
        // rename the watch has not brought yet. It comes back with it.
        if let Some(stale) = self.db.by_pcid(&m.pcid).filter(|o| o.msid != m.msid).map(|o| o.msid.clone()) {
            self.db.remove(&stale);
        }
        self.revs.insert(m.msid.clone(), rev);
        self.db.upsert(m);
    }

    fn delete(&mut self, msid: &str, rev: i64) {
        if self.revs.get(msid).is_some_and(|&r| r >= rev) {
            return;
        }
        self.revs.insert(msid.to_string(), rev);
        self.db.remove(msid);
    }
}

/// The registry of a cluster member: machine records and the computer-ID
/// index in etcd, read through a watched cache.
#[derive(Debug)]
pub struct EtcdRegistry {
    link: EtcdLink,
    cache: Arc<Mutex<Cache>>,
    saves: AtomicU64,
    watcher: JoinHandle<()>,
}

impl Drop for EtcdRegistry {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl EtcdRegistry {
    /// Connects to the etcd cluster of `s`, loads the machines and starts
    /// watching them.
    pub async fn connect(s: &ClusterSettings) -> Result<EtcdRegistry, EtcdError> {
        Self::open(EtcdLink::connect(s).await?).await
    }

    /// Loads the machines over `link` and starts watching them.
    pub async fn open(link: EtcdLink) -> Result<EtcdRegistry, EtcdError> {
        let cache = Arc::new(Mutex::new(Cache::new()));
        let rev = load(&link, &cache).await?;
        let watcher = tokio::spawn(watch(link.clone(), cache.clone(), rev));
        Ok(EtcdRegistry { link, cache, saves: AtomicU64::new(0), watcher })
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        lock(&self.cache)
    }

    /// The machine record of `msid` and the holder of `pcid`, as etcd has them
    /// now: `(record and its revision, holder)`.
    async fn read(&self, msid: &str, pcid: &str) -> Result<(Option<(Machine, i64)>, Option<String>), EtcdError> {
        let (mkey, pkey) = (self.link.keys.machine(msid), self.link.keys.pcid(pcid));
        let txn = Txn::new().and_then([TxnOp::get(mkey.as_str(), None), TxnOp::get(pkey.as_str(), None)]);
        let resp = self.link.call_retrying(|c| txn_call(c, txn.clone())).await?;
        let mut gets = resp.op_responses().into_iter().filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        });
        let first = |g: Option<GetResponse>| g.and_then(|g| g.kvs().first().cloned());
        let machine = match first(gets.next()) {
            Some(kv) => Some((decode(&mkey, kv.value())?, kv.mod_revision())),
            None => None,
        };
        let holder = first(gets.next()).map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
        Ok((machine, holder))
    }

    async fn claim(&self, c: Claim<'_>) -> Result<String, RegisterError> {
        let pcid = thin_protocol::pcid::normalize(c.pcid)?;
        let storage = |e: EtcdError| {
            tracing::error!(error = %e, "cannot store a claim in etcd");
            RegisterError::Storage(e.into())
        };
        for _ in 0..CLAIM_TRIES {
            let (old, holder) = self.read(c.msid, &pcid).await.map_err(storage)?;
            if holder.as_deref().is_some_and(|h| h != c.msid) {
                return Err(RegisterError::Taken(pcid));
            }
            let now = now_ms();
            let (machine, rev) = match &old {
                Some((m, rev)) => {
                    (Machine { pcid: pcid.clone(), update_date: now, last_ip: c.ip.to_string(), ..m.clone() }, *rev)
                }
                None if !c.allow_new => return Err(RegisterError::Closed),
                None => (new_machine(&c, &pcid, now), 0),
            };
            let (mkey, pkey) = (self.link.keys.machine(c.msid), self.link.keys.pcid(&pcid));
            let index = match holder {
                None => Compare::version(pkey.as_str(), CompareOp::Equal, 0),
                Some(_) => Compare::value(pkey.as_str(), CompareOp::Equal, c.msid),
            };
            let mut ops =
                vec![TxnOp::put(mkey.as_str(), encode(&machine), None), TxnOp::put(pkey.as_str(), c.msid, None)];
            if let Some((m, _)) = old.as_ref().filter(|(m, _)| m.pcid != pcid) {
                ops.push(TxnOp::delete(self.link.keys.pcid(&m.pcid), None));
            }
            let txn =
                Txn::new().when([Compare::mod_revision(mkey.as_str(), CompareOp::Equal, rev), index]).and_then(ops);
            // Guarded by its comparisons: asked again after an election, it
            // applies at most once.
            let resp = self.link.call_retrying(|c| txn_call(c, txn.clone())).await.map_err(storage)?;
            self.saves.fetch_add(1, Ordering::Relaxed);
            if resp.succeeded() {
                let at = resp.header().map_or(0, |h| h.revision());
                self.cache().put(machine, at);
                return Ok(pcid);
            }
            tracing::debug!(msid = c.msid, %pcid, "claim raced with another change; reading again");
        }
        Err(storage(EtcdError::BadValue {
            key: self.link.keys.pcid(&pcid),
            msg: format!("it changed {CLAIM_TRIES} times while this gateway claimed it"),
        }))
    }

    /// Changes the record of `msid` in the cache; stored by the next flush.
    fn note(&self, msid: &str, change: impl FnOnce(&Machine) -> Machine) {
        let mut c = self.cache();
        if let Some(m) = c.db.by_msid(msid) {
            let m = change(m);
            c.db.upsert(m);
            c.noted.insert(msid.to_string());
        }
    }

    /// Writes the noted figures of `msid`: compare-and-put on the record's
    /// revision; when another member changed it meanwhile, its record is
    /// taken with the later dates and larger counts of both.
    async fn store_noted(&self, msid: &str) -> Result<(), EtcdError> {
        let key = self.link.keys.machine(msid);
        let Some((mut mine, mut rev)) = ({
            let c = self.cache();
            c.db.by_msid(msid).cloned().map(|m| (m, c.revs.get(msid).copied().unwrap_or(0)))
        }) else {
            return Ok(());
        };
        for _ in 0..CLAIM_TRIES {
            let txn = Txn::new()
                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)])
                .and_then([TxnOp::put(key.as_str(), encode(&mine), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let resp = self.link.call_retrying(|c| txn_call(c, txn.clone())).await?;
            self.saves.fetch_add(1, Ordering::Relaxed);
            if resp.succeeded() {
                let at = resp.header().map_or(0, |h| h.revision());
                self.cache().put(mine, at);
                return Ok(());
            }
            let theirs = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                _ => None,
            });
            let Some(kv) = theirs else { return Ok(()) }; // removed meanwhile: nothing to note
            let t = decode(&key, kv.value())?;
            rev = kv.mod_revision();
            mine = Machine {
                last_server_date: mine.last_server_date.max(t.last_server_date),
                num_server: mine.num_server.max(t.num_server),
                num_client: mine.num_client.max(t.num_client),
                first_client_date: [mine.first_client_date, t.first_client_date]
                    .into_iter()
                    .filter(|&d| d != 0)
                    .min()
                    .unwrap_or(0),
                last_client_date: mine.last_client_date.max(t.last_client_date),
                ..t
            };
        }
        Err(EtcdError::BadValue { key, msg: format!("it changed {CLAIM_TRIES} times while this gateway wrote it") })
    }
}

impl EtcdRegistry {
    /// Applies the admin's `change` to the machine holding `pcid` in etcd
    /// (`None`: removes it and frees its computer ID), in one transaction
    /// decided on what etcd holds; retried when it changed meanwhile.
    async fn change(
        &self,
        pcid: &str,
        change: impl Fn(&Machine) -> Option<Machine> + Send + Sync,
    ) -> Result<(), ChangeError> {
        let pcid = pcid.to_ascii_lowercase();
        let storage = |e: EtcdError| {
            tracing::error!(error = %e, "cannot store the admin's change in etcd");
            ChangeError::Storage(e.into())
        };
        let cached = self.cache().db.by_pcid(&pcid).map(|m| m.msid.clone());
        let Some(mut msid) = cached else { return Err(ChangeError::Unknown(pcid)) };
        let pkey = self.link.keys.pcid(&pcid);
        for _ in 0..CLAIM_TRIES {
            let (old, holder) = self.read(&msid, &pcid).await.map_err(storage)?;
            match holder {
                None => return Err(ChangeError::Unknown(pcid)),
                // The cache has not seen a rename yet: change the holder etcd names.
                Some(h) if h != msid => {
                    msid = h;
                    continue;
                }
                Some(_) => {}
            }
            let Some((m, rev)) = old.filter(|(m, _)| m.pcid == pcid) else {
                return Err(ChangeError::Unknown(pcid));
            };
            let mkey = self.link.keys.machine(&msid);
            let when = [
                Compare::mod_revision(mkey.as_str(), CompareOp::Equal, rev),
                Compare::value(pkey.as_str(), CompareOp::Equal, msid.as_str()),
            ];
            let new = change(&m).map(|n| Machine { update_date: now_ms(), ..n });
            let ops = match &new {
                Some(n) => vec![TxnOp::put(mkey.as_str(), encode(n), None)],
                None => vec![TxnOp::delete(mkey.as_str(), None), TxnOp::delete(pkey.as_str(), None)],
            };
            let resp = self
                .link
                .call(self.link.client.kv_client().txn(Txn::new().when(when).and_then(ops)))
                .await
                .map_err(storage)?;
            self.saves.fetch_add(1, Ordering::Relaxed);
            if resp.succeeded() {
                let at = resp.header().map_or(0, |h| h.revision());
                let mut c = self.cache();
                match new {
                    Some(n) => c.put(n, at),
                    None => c.delete(&msid, at),
                }
                return Ok(());
            }
            tracing::debug!(%pcid, "admin change raced with another change; reading again");
        }
        Err(storage(EtcdError::BadValue {
            key: self.link.keys.pcid(&pcid),
            msg: format!("it changed {CLAIM_TRIES} times while this gateway changed it"),
        }))
    }
}

fn new_machine(c: &Claim<'_>, pcid: &str, now: i64) -> Machine {
    Machine {
        msid: c.msid.to_string(),
        pcid: pcid.to_string(),
        cert_hash: c.cert_hash.to_string(),
        create_date: now,
        create_host: c.host.to_string(),
        create_ip: c.ip.to_string(),
        update_date: now,
        last_ip: c.ip.to_string(),
        ..Machine::default()
    }
}

fn lock(cache: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    cache.lock().expect("etcd registry cache lock")
}

/// Reads every machine into `cache`; returns the revision read at.
async fn load(link: &EtcdLink, cache: &Mutex<Cache>) -> Result<i64, EtcdError> {
    let (kvs, rev) = link.get_prefix(&link.keys.machines()).await?;
    let mut fresh = Cache::new();
    for kv in &kvs {
        let key = String::from_utf8_lossy(kv.key());
        match decode(&key, kv.value()) {
            Ok(m) => fresh.put(m, kv.mod_revision()),
            Err(e) => tracing::error!(error = %e, "machine record skipped"),
        }
    }
    let mut c = lock(cache);
    fresh.noted = std::mem::take(&mut c.noted);
    *c = fresh;
    Ok(rev)
}

/// Keeps `cache` current from revision `rev` on; reloads everything when the
/// watch breaks (etcd restarted, history compacted), retrying with a pause.
async fn watch(link: EtcdLink, cache: Arc<Mutex<Cache>>, mut rev: i64) {
    let prefix = link.keys.machines();
    loop {
        match follow(&link, &cache, &prefix, &mut rev).await {
            Ok(()) => tracing::warn!("the etcd watch of the machines ended; reloading them"),
            Err(e) => tracing::warn!(error = %e, "the etcd watch of the machines failed; reloading them"),
        }
        loop {
            match load(&link, &cache).await {
                Ok(r) => {
                    rev = r;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the machines from etcd; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn follow(link: &EtcdLink, cache: &Mutex<Cache>, prefix: &str, rev: &mut i64) -> Result<(), EtcdError> {
    let opts = WatchOptions::new().with_prefix().with_start_revision(*rev + 1).with_progress_notify();
    let mut stream = link.call(link.client.watch_client().watch(prefix, Some(opts))).await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            return Ok(());
        }
        let mut c = lock(cache);
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            apply(&mut c, ev.event_type(), kv, prefix);
            *rev = (*rev).max(kv.mod_revision());
        }
    }
    Ok(())
}

fn apply(c: &mut Cache, kind: EventType, kv: &KeyValue, prefix: &str) {
    let key = String::from_utf8_lossy(kv.key());
    let Some(msid) = key.strip_prefix(prefix) else { return };
    match kind {
        EventType::Put => match decode(&key, kv.value()) {
            Ok(m) => c.put(m, kv.mod_revision()),
            Err(e) => tracing::error!(error = %e, "machine record skipped"),
        },
        EventType::Delete => c.delete(msid, kv.mod_revision()),
    }
}

impl MachineRegistry for EtcdRegistry {
    fn pcid_of(&self, msid: &str) -> Option<String> {
        self.cache().db.by_msid(msid).map(|m| m.pcid.clone())
    }

    fn is_registered(&self, pcid: &str) -> bool {
        self.cache().db.by_pcid(pcid).is_some()
    }

    fn registered_count(&self) -> usize {
        self.cache().db.len()
    }

    fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }

    fn standing(&self, msid: &str) -> Option<Standing> {
        self.cache().db.by_msid(msid).map(Standing::of)
    }

    fn register<'a>(&'a self, claim: Claim<'a>) -> BoxFuture<'a, Result<String, RegisterError>> {
        Box::pin(self.claim(claim))
    }

    fn machines(&self) -> Vec<Machine> {
        let mut v: Vec<Machine> = self.cache().db.iter().cloned().collect();
        v.sort_by(|a, b| a.pcid.cmp(&b.pcid));
        v
    }

    fn is_disabled(&self, msid: &str) -> bool {
        self.cache().db.by_msid(msid).is_some_and(Machine::disabled)
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

    fn note_serving<'a>(&'a self, msid: &'a str, ip: IpAddr, server_mask: u64) -> BoxFuture<'a, ()> {
        self.note(msid, |m| Machine {
            last_server_date: now_ms(),
            last_ip: ip.to_string(),
            server_mask64: server_mask,
            num_server: m.num_server.saturating_add(1),
            ..m.clone()
        });
        Box::pin(std::future::ready(()))
    }

    fn note_client<'a>(&'a self, msid: &'a str) -> BoxFuture<'a, ()> {
        self.note(msid, |m| {
            let now = now_ms();
            Machine {
                num_client: m.num_client.saturating_add(1),
                first_client_date: if m.first_client_date == 0 { now } else { m.first_client_date },
                last_client_date: now,
                ..m.clone()
            }
        });
        Box::pin(std::future::ready(()))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let noted: Vec<String> = self.cache().noted.drain().collect();
            let mut failed = None;
            for msid in &noted {
                if let Err(e) = self.store_noted(msid).await {
                    self.cache().noted.insert(msid.clone());
                    failed = Some(e);
                }
            }
            match failed {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        })
    }
}

/// One transaction on a clone of the client (for [`EtcdLink::call_retrying`]).
pub(super) async fn txn_call(c: etcd_client::Client, txn: Txn) -> Result<etcd_client::TxnResponse, etcd_client::Error> {
    c.kv_client().txn(txn).await
}
