//! Who is registered (the machine database) and who is online (server
//! sessions), plus tunnels waiting for a server's data connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use thin_protocol::messages::{ErrorCode, Msg};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::machine_db::{Machine, MachineDb};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

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
    pub tx: mpsc::Sender<Msg>,
    /// Cancelled when a newer session of the same machine replaces this one.
    pub replaced: CancellationToken,
}

/// A refusal with its code and message.
pub type Refusal = (ErrorCode, String);

/// Shared registry state.
#[derive(Debug)]
pub struct Registry {
    db: Mutex<MachineDb>,
    sessions: Mutex<HashMap<String, Arc<ServerSession>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<(crate::conn::GateStream, crate::limits::IpSlot)>>>,
}

impl Registry {
    /// Wraps an opened machine database.
    pub fn new(db: MachineDb) -> Self {
        Self { db: Mutex::new(db), sessions: Mutex::new(HashMap::new()), pending: Mutex::new(HashMap::new()) }
    }

    /// The PCID registered for `msid`.
    pub fn pcid_of(&self, msid: &str) -> Option<String> {
        self.db.lock().expect("db lock").by_msid(msid).map(|m| m.pcid.clone())
    }

    /// True when some machine holds `pcid`.
    pub fn is_registered(&self, pcid: &str) -> bool {
        self.db.lock().expect("db lock").by_pcid(pcid).is_some()
    }

    /// Number of registered machines.
    pub fn registered_count(&self) -> usize {
        self.db.lock().expect("db lock").len()
    }

    /// Claims or renames a PCID for `msid`; saves the database at once.
    pub fn register(
        &self,
        msid: &str,
        cert_hash: &str,
        requested: &str,
        host: &str,
        ip: IpAddr,
        disable_register: bool,
    ) -> Result<String, Refusal> {
        let pcid = thin_protocol::pcid::normalize(requested).map_err(|e| (ErrorCode::InvalidPcid, e.to_string()))?;
        let mut db = self.db.lock().expect("db lock");
        if let Some(owner) = db.by_pcid(&pcid) {
            if owner.msid != msid {
                return Err((
                    ErrorCode::PcidTaken,
                    format!("the computer ID \"{pcid}\" is already registered by another computer; choose another ID"),
                ));
            }
        }
        let now = now_ms();
        let machine = match db.by_msid(msid) {
            Some(m) => Machine { pcid: pcid.clone(), update_date: now, last_ip: ip.to_string(), ..m.clone() },
            None => {
                if disable_register {
                    return Err((
                        ErrorCode::RegisterDisabled,
                        "this gateway does not accept new computers (DisableRegister is set); ask the gateway admin"
                            .into(),
                    ));
                }
                Machine {
                    msid: msid.to_string(),
                    pcid: pcid.clone(),
                    cert_hash: cert_hash.to_string(),
                    create_date: now,
                    create_host: host.to_string(),
                    create_ip: ip.to_string(),
                    update_date: now,
                    last_server_date: 0,
                    last_ip: ip.to_string(),
                    server_mask64: 0,
                    num_server: 0,
                    extra: Vec::new(),
                }
            }
        };
        let old = db.by_msid(msid).cloned();
        db.upsert(machine);
        if let Err(e) = tokio::task::block_in_place(|| db.save()) {
            // Keep memory and disk in step: undo.
            match old {
                Some(m) => db.upsert(m),
                None => {
                    db.remove(msid);
                }
            }
            tracing::error!(error = %e, "cannot save the machine database");
            return Err((ErrorCode::Internal, "the gateway cannot save its database; try again later".into()));
        }
        drop(db);
        // A renamed machine that is online keeps its session under the new name.
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if let Some(key) = sessions.iter().find(|(_, s)| s.msid == msid).map(|(k, _)| k.clone()) {
            if key != pcid {
                if let Some(s) = sessions.remove(&key) {
                    s.replaced.cancel();
                }
            }
        }
        Ok(pcid)
    }

    /// Notes that `msid` started serving (kept in memory; saved with the next save).
    pub fn touch_server(&self, msid: &str, ip: IpAddr, mask: u64) {
        let mut db = self.db.lock().expect("db lock");
        if let Some(m) = db.by_msid(msid).cloned() {
            db.upsert(Machine {
                last_server_date: now_ms(),
                last_ip: ip.to_string(),
                server_mask64: mask,
                num_server: m.num_server + 1,
                ..m
            });
        }
    }

    /// Saves the database (periodic saver, shutdown).
    pub fn save(&self) -> Result<(), crate::machine_db::DbError> {
        self.db.lock().expect("db lock").save()
    }

    /// Adds a session, replacing (and cancelling) an older one for the same PCID.
    pub fn add_session(&self, s: Arc<ServerSession>, max: usize) -> Result<(), Refusal> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if let Some(old) = sessions.remove(&s.pcid) {
            old.replaced.cancel();
        } else if sessions.len() >= max {
            return Err((ErrorCode::Busy, format!("too many sessions: this gateway serves at most {max} computers")));
        }
        sessions.insert(s.pcid.clone(), s);
        Ok(())
    }

    /// Removes a session if it is still the current one.
    pub fn remove_session(&self, s: &Arc<ServerSession>) {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.get(&s.pcid).is_some_and(|cur| Arc::ptr_eq(cur, s)) {
            sessions.remove(&s.pcid);
        }
    }

    /// The online session for `pcid`.
    pub fn session(&self, pcid: &str) -> Option<Arc<ServerSession>> {
        self.sessions.lock().expect("sessions lock").get(pcid).cloned()
    }

    /// All online sessions, sorted by PCID.
    pub fn sessions(&self) -> Vec<Arc<ServerSession>> {
        let mut v: Vec<_> = self.sessions.lock().expect("sessions lock").values().cloned().collect();
        v.sort_by(|a, b| a.pcid.cmp(&b.pcid));
        v
    }

    /// Registers a tunnel waiting for its server side.
    pub fn add_pending(&self, id: String, tx: oneshot::Sender<(crate::conn::GateStream, crate::limits::IpSlot)>) {
        self.pending.lock().expect("pending lock").insert(id, tx);
    }

    /// Takes a waiting tunnel.
    pub fn take_pending(&self, id: &str) -> Option<oneshot::Sender<(crate::conn::GateStream, crate::limits::IpSlot)>> {
        self.pending.lock().expect("pending lock").remove(id)
    }
}

/// Counts a client on a session for as long as it lives.
pub struct ClientCount(pub Arc<ServerSession>);

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
