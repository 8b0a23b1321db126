//! The session directory: which gateway each online office PC is connected
//! to. [`SessionDirectory`] is the interface; [`LocalDirectory`] is a lone
//! gateway's (everything online is here), and [`super::EtcdDirectory`] a
//! cluster member's, where every member announces its sessions under its lease.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BoxFuture, StorageError};

/// An office PC online at a gateway, as announced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Presence {
    /// The machine serving.
    pub msid: String,
    /// The gateway it is connected to (its `ClusterPublicUrl`).
    pub gateway: String,
    /// The session's id (`/thinstat/`), so that an announcement is told
    /// apart from a newer one of the same machine.
    pub session: String,
    /// When the session was established (Unix ms).
    pub since_ms: i64,
}

/// Where office PCs are online.
pub trait SessionDirectory: Send + Sync + std::fmt::Debug {
    /// Announces that `pcid` is online as `p`; replaces an earlier
    /// announcement of `pcid` (the newest session wins).
    fn announce<'a>(&'a self, pcid: &'a str, p: &'a Presence) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Withdraws the announcement of `pcid` if it is still `p`; a newer
    /// announcement (the machine reconnected elsewhere) stays.
    fn withdraw<'a>(&'a self, pcid: &'a str, p: &'a Presence) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Where `pcid` is online.
    fn locate<'a>(&'a self, pcid: &'a str) -> BoxFuture<'a, Result<Option<Presence>, StorageError>>;
}

/// The directory of a gateway on its own: in memory.
#[derive(Debug, Default)]
pub struct LocalDirectory {
    map: Mutex<HashMap<String, Presence>>,
}

impl LocalDirectory {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Presence>> {
        self.map.lock().expect("directory lock")
    }
}

impl SessionDirectory for LocalDirectory {
    fn announce<'a>(&'a self, pcid: &'a str, p: &'a Presence) -> BoxFuture<'a, Result<(), StorageError>> {
        self.map().insert(pcid.to_string(), p.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn withdraw<'a>(&'a self, pcid: &'a str, p: &'a Presence) -> BoxFuture<'a, Result<(), StorageError>> {
        let mut map = self.map();
        if map.get(pcid) == Some(p) {
            map.remove(pcid);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn locate<'a>(&'a self, pcid: &'a str) -> BoxFuture<'a, Result<Option<Presence>, StorageError>> {
        let found = self.map().get(pcid).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }
}
