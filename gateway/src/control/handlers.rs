//! The handlers of a serving control connection; each gets only what it uses.

use std::sync::Arc;

use rand::RngCore;
use thin_protocol::messages::{ErrorCode, GateToServer};
use thin_protocol::secret::Secret;
use tracing::{debug, info};

use super::{Announcer, Conn, Peer, Registration};
use crate::machine_db::now_ms;
use crate::metrics::{inc, Metrics};
use crate::registry::{Claim, MachineRegistry, Standing};
use crate::sessions::{ServerSession, Sessions};

/// `Register`: within the registration limits, and for a new machine with the
/// registration token if one is set, claims or renames the computer ID; a
/// renamed machine that is online ends its session under the old name.
/// Returns the answer.
pub(super) async fn register(
    registry: &dyn MachineRegistry,
    sessions: &Sessions,
    metrics: &Metrics,
    (rules, token): (&Registration, Option<&Secret>),
    peer: &Peer,
    pcid: &str,
    allow_new: bool,
) -> GateToServer {
    let known = registry.pcid_of(&peer.msid).is_some();
    let admitted = rules.admit(peer.addr.ip()).and_then(|()| if known { Ok(()) } else { rules.check_token(token) });
    if let Err(e) = admitted {
        inc(&metrics.registrations_refused);
        debug!(error = %e, "registration refused");
        return GateToServer::Error { code: e.code(), message: e.to_string() };
    }
    let claim = Claim {
        msid: &peer.msid,
        cert_hash: &peer.cert_hash,
        pcid,
        host: &peer.hostname,
        ip: peer.addr.ip(),
        allow_new,
    };
    match registry.register(claim).await {
        Ok(p) => {
            sessions.retire_renamed(&peer.msid, &p);
            inc(&metrics.registrations);
            info!(pcid = %p, "registered");
            GateToServer::Registered { pcid: p }
        }
        Err(e) => {
            inc(&metrics.registrations_refused);
            GateToServer::Error { code: e.code(), message: e.to_string() }
        }
    }
}

/// `Serve`: lists the connection as the online session of its computer ID
/// and returns `Serving`; or the refusal to send and why the connection ends.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    registry: &dyn MachineRegistry,
    sessions: &Sessions,
    announcer: &Announcer,
    metrics: &Metrics,
    max_sessions: usize,
    peer: &Peer,
    conn: &mut Conn,
    server_mask: u64,
) -> Result<GateToServer, (GateToServer, &'static str)> {
    let Some(pcid) = registry.pcid_of(&peer.msid) else {
        let message = "register a computer ID first".into();
        return Err((GateToServer::Error { code: ErrorCode::NotRegistered, message }, "serve before register"));
    };
    // Not registered (any more) between the check above and now: lowest standing.
    let standing = registry.standing(&peer.msid).unwrap_or(Standing { served: false, registered_ms: i64::MAX });
    let mut sid = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut sid);
    let s = Arc::new(ServerSession {
        session_id: hex::encode_upper(sid),
        pcid: pcid.clone(),
        msid: peer.msid.clone(),
        hostname: peer.hostname.clone(),
        ip: peer.addr.ip(),
        established_ms: now_ms(),
        num_clients: Default::default(),
        standing,
        server_mask,
        tx: conn.notify.clone(),
        replaced: conn.replaced.clone(),
        evicted: conn.evicted.clone(),
    });
    match sessions.add(s.clone(), max_sessions) {
        Ok(None) => {}
        Ok(Some(gone)) => {
            inc(&metrics.sessions_evicted);
            info!(%pcid, evicted = %gone.pcid, "gateway full: a machine that served before took the place of a newer one");
        }
        Err(full) => {
            inc(&metrics.sessions_refused);
            return Err((GateToServer::Error { code: ErrorCode::Busy, message: full.to_string() }, "session limit"));
        }
    }
    registry.note_serving(&peer.msid, peer.addr.ip(), server_mask).await;
    let old = conn.session.replace(s.clone());
    // The new session first: withdrawing the old one never leaves a gap.
    announcer.announce(&s).await;
    if let Some(old) = old {
        sessions.remove(&old);
        announcer.withdraw(&old).await;
    }
    info!(%pcid, "serving");
    Ok(GateToServer::Serving { session_id: s.session_id.clone() })
}
