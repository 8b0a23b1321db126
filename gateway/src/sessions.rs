//! Who is online: the live control sessions of office PCs, by computer ID.
//! When `MaxServerSessions` are online, a machine of higher [`Standing`]
//! takes the place of the lowest one online; others are refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thin_protocol::messages::GateToServer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::registry::Standing;

/// An office PC's live control session.
#[derive(Debug)]
pub struct ServerSession {
    /// Random id shown in `/thinstat/`.
    pub session_id: String,
    /// Computer ID served.
    pub pcid: String,
    /// Machine identity.
    pub msid: String,
    /// DNS name of its address, or the address (`crate::host_names`).
    pub hostname: String,
    /// Source address of the control connection.
    pub ip: IpAddr,
    /// When the session was established (Unix ms).
    pub established_ms: i64,
    /// Client tunnels of this session: waiting for the data connection or
    /// relaying. Changed only through [`ClientCount`].
    pub num_clients: AtomicU32,
    /// How long the machine has been known (who stays when the gateway is full).
    pub standing: Standing,
    /// ServerMask64 bits (bit 32 follows the policy while it serves).
    pub server_mask: AtomicU64,
    /// Sends `Incoming` to the session's control connection.
    pub tx: mpsc::Sender<Box<GateToServer>>,
    /// Cancelled when a newer session of the same machine replaces this one.
    pub replaced: CancellationToken,
    /// Cancelled when the gateway is full and a machine of higher standing
    /// took this session's place.
    pub evicted: CancellationToken,
    /// Cancelled when the admin disabled or removed the machine; the reason
    /// told to the office PC is set first.
    pub ended_by_admin: CancellationToken,
    /// What the office PC is told when [`ServerSession::ended_by_admin`] fires.
    pub admin_reason: std::sync::OnceLock<String>,
}

impl ServerSession {
    /// Its ServerMask64 bits now.
    pub fn mask(&self) -> u64 {
        self.server_mask.load(Ordering::Relaxed)
    }

    /// Ends the session on the admin's word; the office PC is told `reason`.
    pub fn end_by_admin(&self, reason: String) {
        let _ = self.admin_reason.set(reason);
        self.ended_by_admin.cancel();
    }

    /// Sets or clears bit 32 (serving under a policy).
    pub fn set_policy_bit(&self, on: bool) {
        let bit = thin_protocol::policy::MASK_POLICY;
        if on {
            self.server_mask.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.server_mask.fetch_and(!bit, Ordering::Relaxed);
        }
    }
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
    /// PCID. When `max` other PCIDs are online, the session of the lowest
    /// standing gives way (its `evicted` is cancelled, and it is returned) if
    /// `s` outranks it; otherwise `s` is refused.
    pub fn add(&self, s: Arc<ServerSession>, max: usize) -> Result<Option<Arc<ServerSession>>, SessionsFull> {
        let mut map = self.map();
        let mut evicted = None;
        if let Some(old) = map.remove(&s.pcid) {
            old.replaced.cancel();
        } else if map.len() >= max {
            let lowest = map.values().filter(|o| s.standing.outranks(&o.standing)).max_by(|a, b| {
                let rank = |x: &ServerSession| (!x.standing.served, x.standing.registered_ms);
                rank(a).cmp(&rank(b))
            });
            let Some(lowest) = lowest.cloned() else {
                return Err(SessionsFull(max));
            };
            map.remove(&lowest.pcid);
            lowest.evicted.cancel();
            evicted = Some(lowest);
        }
        map.insert(s.pcid.clone(), s);
        Ok(evicted)
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

/// Counts a client tunnel on a session for as long as it lives.
#[derive(Debug)]
pub struct ClientCount(Arc<ServerSession>);

impl ClientCount {
    /// Counts one more tunnel unless `max` are counted already; the check and
    /// the increment are one atomic step, so concurrent clients cannot pass
    /// the limit together.
    pub fn try_new(s: Arc<ServerSession>, max: usize) -> Option<Self> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        s.num_clients.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Self(s))
    }
}

impl Drop for ClientCount {
    fn drop(&mut self) {
        self.0.num_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pcid: &str, served: bool, registered_ms: i64) -> Arc<ServerSession> {
        Arc::new(ServerSession {
            session_id: pcid.to_uppercase(),
            pcid: pcid.into(),
            msid: format!("MSID-{pcid}"),
            hostname: "h".into(),
            ip: IpAddr::from([192, 0, 2, 1]),
            established_ms: 0,
            num_clients: AtomicU32::new(0),
            standing: Standing { served, registered_ms },
            server_mask: 0.into(),
            tx: mpsc::channel(1).0,
            replaced: CancellationToken::new(),
            evicted: CancellationToken::new(),
            ended_by_admin: CancellationToken::new(),
            admin_reason: Default::default(),
        })
    }

    #[test]
    fn when_full_machines_that_served_push_out_newcomers_and_newcomers_are_refused() {
        let s = Sessions::default();
        assert!(s.add(session("office-1", true, 100), 2).unwrap().is_none());
        let fresh = session("fresh-1", false, 500);
        assert!(s.add(fresh.clone(), 2).unwrap().is_none());
        assert!(s.add(session("fresh-2", false, 600), 2).is_err(), "full: a later newcomer is refused");
        let gone = s.add(session("office-2", true, 900), 2).unwrap().expect("a place was made");
        assert!(Arc::ptr_eq(&gone, &fresh) && fresh.evicted.is_cancelled() && !fresh.replaced.is_cancelled());
        assert_eq!(s.list().iter().map(|x| x.pcid.as_str()).collect::<Vec<_>>(), ["office-1", "office-2"]);
        // Among machines that served, the one registered last gives way.
        let gone = s.add(session("office-0", true, 50), 2).unwrap().unwrap();
        assert_eq!(gone.pcid, "office-2");
        assert!(s.add(session("office-3", true, 300), 2).is_err(), "registered after everyone online");
        assert!(s.add(session("fresh-0", false, 1), 2).is_err(), "never served: below everyone who has");
        // A reconnect of an online machine replaces its own session, full or not.
        let again = session("office-1", true, 100);
        assert!(s.add(again.clone(), 2).unwrap().is_none() && s.is_current(&again));
    }

    #[test]
    fn tunnels_per_session_are_counted_in_one_atomic_step() {
        let s = session("busy", true, 0);
        for round in 0..200 {
            let go = Arc::new(std::sync::Barrier::new(16));
            let threads: Vec<_> = (0..16)
                .map(|_| {
                    let (s, go) = (s.clone(), go.clone());
                    std::thread::spawn(move || {
                        go.wait();
                        ClientCount::try_new(s, 5)
                    })
                })
                .collect();
            let held: Vec<_> = threads.into_iter().filter_map(|t| t.join().unwrap()).collect();
            assert_eq!(held.len(), 5, "round {round}: 16 clients at once, 5 allowed");
            assert_eq!(s.num_clients.load(Ordering::Relaxed), 5);
            drop(held);
            assert_eq!(s.num_clients.load(Ordering::Relaxed), 0);
        }
    }
}
