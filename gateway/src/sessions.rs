//! Who is online: the live control sessions of office PCs, by computer ID.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use thin_protocol::messages::GateToServer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An office PC's live control session.
#[derive(Debug)]
pub struct ServerSession {
    /// Random id shown in `/thinstat/`.
    pub session_id: String,
    /// Computer ID served.
    pub pcid: String,
    /// Machine identity.
    pub msid: String,
    /// Host name the server reported.
    pub hostname: String,
    /// Source address of the control connection.
    pub ip: IpAddr,
    /// When the session was established (Unix ms).
    pub established_ms: i64,
    /// Clients currently relayed.
    pub num_clients: AtomicU32,
    /// ServerMask64 bits.
    pub server_mask: u64,
    /// Sends `Incoming` to the session's control connection.
    pub tx: mpsc::Sender<GateToServer>,
    /// Cancelled when a newer session of the same machine replaces this one.
    pub replaced: CancellationToken,
}

/// The gateway serves at most this many sessions (`MaxServerSessions`).
#[derive(Debug, thiserror::Error)]
#[error("too many sessions: this gateway serves at most {0} computers")]
pub struct SessionsFull(pub usize);

/// The online sessions, one per computer ID.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<ServerSession>>>,
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ServerSession>>> {
        self.map.lock().expect("sessions lock")
    }

    /// Adds a session, replacing (and cancelling) an older one for the same
    /// PCID; refused when `max` other PCIDs are online.
    pub fn add(&self, s: Arc<ServerSession>, max: usize) -> Result<(), SessionsFull> {
        let mut map = self.map();
        if let Some(old) = map.remove(&s.pcid) {
            old.replaced.cancel();
        } else if map.len() >= max {
            return Err(SessionsFull(max));
        }
        map.insert(s.pcid.clone(), s);
        Ok(())
    }

    /// Removes a session if it is still the current one.
    pub fn remove(&self, s: &Arc<ServerSession>) {
        let mut map = self.map();
        if map.get(&s.pcid).is_some_and(|cur| Arc::ptr_eq(cur, s)) {
            map.remove(&s.pcid);
        }
    }

    /// True when `s` is the session listed for its PCID.
    pub fn is_current(&self, s: &Arc<ServerSession>) -> bool {
        self.map().get(&s.pcid).is_some_and(|cur| Arc::ptr_eq(cur, s))
    }

    /// Ends the session of `msid` if it serves another PCID than `pcid` (the
    /// machine was renamed; it serves again under the new name).
    pub fn retire_renamed(&self, msid: &str, pcid: &str) {
        let mut map = self.map();
        if let Some(key) = map.iter().find(|(_, s)| s.msid == msid).map(|(k, _)| k.clone()) {
            if key != pcid {
                if let Some(s) = map.remove(&key) {
                    s.replaced.cancel();
                }
            }
        }
    }

    /// The online session for `pcid`.
    pub fn get(&self, pcid: &str) -> Option<Arc<ServerSession>> {
        self.map().get(pcid).cloned()
    }

    /// Number of online sessions.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True when no office PC is online.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// All online sessions, sorted by PCID.
    pub fn list(&self) -> Vec<Arc<ServerSession>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.pcid.cmp(&b.pcid));
        v
    }
}

/// Counts a client on a session for as long as it lives.
#[derive(Debug)]
pub struct ClientCount(Arc<ServerSession>);

impl ClientCount {
    /// Increments the count.
    pub fn new(s: Arc<ServerSession>) -> Self {
        s.num_clients.fetch_add(1, Ordering::Relaxed);
        Self(s)
    }
}

impl Drop for ClientCount {
    fn drop(&mut self) {
        self.0.num_clients.fetch_sub(1, Ordering::Relaxed);
    }
}
