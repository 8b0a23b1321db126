//! The handlers of a serving control connection; each gets only what it uses.

use std::sync::Arc;

use rand::RngCore;
use thin_protocol::messages::{ErrorCode, GateToServer};
use thin_protocol::policy::Policy;
use thin_protocol::secret::Secret;
use tracing::{debug, info};

use super::{Announcer, Conn, Flow, Peer, Registration};
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
    if registry.is_disabled(&peer.msid) {
        inc(&metrics.registrations_refused);
        return disabled_refusal(registry.pcid_of(&peer.msid).as_deref().unwrap_or(pcid));
    }
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

/// The answer to a machine the admin disabled (in the admin console).
pub(super) fn disabled_refusal(pcid: &str) -> GateToServer {
    GateToServer::Error { code: ErrorCode::NotRegistered, message: crate::registry::disabled_message(pcid) }
}

/// Why a serving session must end because the admin disabled or removed
/// its machine, perhaps at another member of the cluster (the registry's
/// cache has it); checked at every keepalive.
pub(super) fn ended_by_admin(registry: &dyn MachineRegistry, s: &ServerSession) -> Option<String> {
    if registry.pcid_of(&s.msid).is_none() {
        Some(crate::registry::removed_message(&s.pcid))
    } else if registry.is_disabled(&s.msid) {
        Some(crate::registry::disabled_message(&s.pcid))
    } else {
        None
    }
}

/// The MAC addresses of a `Serve`, checked and written `00-11-22-AA-BB-CC`;
/// or the refusal naming the field and the fix.
pub(super) fn check_macs(macs: &[String]) -> Result<Vec<String>, String> {
    const MAX: usize = 16;
    if macs.len() > MAX {
        return Err(format!("Serve.macs: {} MAC addresses, at most {MAX}; send the wake-capable ones", macs.len()));
    }
    let mut out = Vec::with_capacity(macs.len());
    for m in macs {
        let mac = thin_protocol::policy::parse_mac(m).map_err(|e| format!("Serve.macs: {e}"))?;
        let text = thin_protocol::policy::format_mac(&mac);
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

/// The rules changed: a serving office PC that applies policies gets them
/// (and its ServerMask64 bit 32 follows); one that cannot apply them is
/// ended while any rule is in force.
pub(super) async fn policy_changed(conn: &mut Conn, rules: &Policy) -> Flow {
    let Some(s) = conn.session.clone() else { return Flow::Go };
    if !conn.applies_policy {
        if rules.is_empty() {
            return Flow::Go;
        }
        let message = "this gateway now enforces the company's policy (ThinGatePolicy.ini), which this version of \
                       ThinServer cannot apply; update ThinServer"
            .to_string();
        let _ = conn.reply(&GateToServer::Error { code: ErrorCode::Version, message }).await;
        return Flow::End("office PC cannot apply the new policy".into());
    }
    s.set_policy_bit(!rules.is_empty());
    debug!(pcid = %s.pcid, "policy sent");
    conn.reply(&GateToServer::Policy { policy: rules.clone() }).await
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
    if registry.is_disabled(&peer.msid) {
        return Err((disabled_refusal(&pcid), "disabled by the admin"));
    }
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
        server_mask: server_mask.into(),
        tx: conn.notify.clone(),
        replaced: conn.replaced.clone(),
        evicted: conn.evicted.clone(),
        ended_by_admin: conn.ended_by_admin.clone(),
        admin_reason: Default::default(),
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
