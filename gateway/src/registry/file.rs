//! [`FileRegistry`]: the registry kept in `MachineDatabase.config`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use super::{BoxFuture, Claim, MachineRegistry, RegisterError, StorageError};
use crate::machine_db::{now_ms, DbError, Machine, MachineDb};

/// The machine database in memory, written to its file on every claim and
/// on [`MachineRegistry::flush`].
///
/// INVARIANT: the std mutex is held only for work in memory; file I/O runs on
/// the blocking pool under `writer`, which orders the writes.
#[derive(Debug)]
pub struct FileRegistry {
    db: Mutex<MachineDb>,
    writer: tokio::sync::Mutex<()>,
}

impl FileRegistry {
    /// Opens (and checks) the database file; a missing file is an empty registry.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Ok(Self::new(MachineDb::open(path)?))
    }

    /// Wraps an opened database.
    pub fn new(db: MachineDb) -> Self {
        Self { db: Mutex::new(db), writer: tokio::sync::Mutex::new(()) }
    }

    fn db(&self) -> std::sync::MutexGuard<'_, MachineDb> {
        self.db.lock().expect("machine db lock")
    }

    /// Writes the database as it is now; the caller holds `writer`.
    async fn write(&self) -> Result<(), DbError> {
        let (path, text) = {
            let db = self.db();
            (db.path().to_owned(), db.render())
        };
        let p = path.clone();
        tokio::task::spawn_blocking(move || crate::machine_db::write(&p, &text))
            .await
            .unwrap_or_else(|e| Err(DbError::Save { path, source: std::io::Error::other(e) }))
    }

    async fn claim(&self, c: Claim<'_>) -> Result<String, RegisterError> {
        let pcid = thin_protocol::pcid::normalize(c.pcid)?;
        let _writer = self.writer.lock().await;
        let old = {
            let mut db = self.db();
            if db.by_pcid(&pcid).is_some_and(|owner| owner.msid != c.msid) {
                return Err(RegisterError::Taken(pcid));
            }
            let now = now_ms();
            let old = db.by_msid(c.msid).cloned();
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
                    extra: Vec::new(),
                },
            };
            db.upsert(machine);
            old
        };
        if let Err(e) = self.write().await {
            // Keep memory and disk in step: undo.
            let mut db = self.db();
            match old {
                Some(m) => db.upsert(m),
                None => {
                    db.remove(c.msid);
                }
            }
            tracing::error!(error = %e, "cannot save the machine database");
            return Err(RegisterError::Storage(e.into()));
        }
        Ok(pcid)
    }
}

impl MachineRegistry for FileRegistry {
    fn pcid_of(&self, msid: &str) -> Option<String> {
        self.db().by_msid(msid).map(|m| m.pcid.clone())
    }

    fn is_registered(&self, pcid: &str) -> bool {
        self.db().by_pcid(pcid).is_some()
    }

    fn registered_count(&self) -> usize {
        self.db().len()
    }

    fn register<'a>(&'a self, claim: Claim<'a>) -> BoxFuture<'a, Result<String, RegisterError>> {
        Box::pin(self.claim(claim))
    }

    fn note_serving<'a>(&'a self, msid: &'a str, ip: IpAddr, server_mask: u64) -> BoxFuture<'a, ()> {
        let mut db = self.db();
        if let Some(m) = db.by_msid(msid).cloned() {
            db.upsert(Machine {
                last_server_date: now_ms(),
                last_ip: ip.to_string(),
                server_mask64: server_mask,
                num_server: m.num_server + 1,
                ..m
            });
        }
        Box::pin(std::future::ready(()))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let _writer = self.writer.lock().await;
            self.write().await.map_err(StorageError::from)
        })
    }
}
