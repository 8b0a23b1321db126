//! The console's JSON: the overview the page polls, and the changes to a
//! machine (disable, enable, remove), which go through the registry.

use std::sync::atomic::Ordering;

use serde_json::json;
use tracing::info;

use super::{Admin, Reply};
use crate::machine_db::now_ms;
use crate::registry::ChangeError;

/// Machines listed at most in one overview (the search narrows it down).
pub const MAX_MACHINES: usize = 500;

/// A change to a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It may neither register nor serve; its session and tunnels end.
    Disable,
    /// It may register and serve again.
    Enable,
    /// Its record goes and its computer ID is free; its session and tunnels end.
    Remove,
}

impl Action {
    /// The action named by the last part of its path.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "disable" => Some(Action::Disable),
            "enable" => Some(Action::Enable),
            "remove" => Some(Action::Remove),
            _ => None,
        }
    }
}

/// The machines (those whose computer ID contains `q`, when given), the
/// sessions and tunnels live now, and the last day's samples with the minute
/// under way.
pub fn overview(a: &Admin, q: Option<String>) -> Reply {
    let now = now_ms();
    let q = q.map(|q| q.trim().to_ascii_lowercase()).filter(|q| !q.is_empty());
    let sessions = a.sessions.list();
    let all = a.registry.machines();
    let total = all.len();
    let matching: Vec<_> = all.into_iter().filter(|m| q.as_ref().is_none_or(|q| m.pcid.contains(q.as_str()))).collect();
    let found = matching.len();
    let online_msids: std::collections::HashSet<&str> = sessions.iter().map(|s| s.msid.as_str()).collect();
    let machines: Vec<_> = matching
        .iter()
        .take(MAX_MACHINES)
        .map(|m| {
            let online = online_msids.contains(m.msid.as_str());
            json!({
                "pcid": m.pcid,
                "msid": m.msid,
                "host": m.create_host,
                "last_ip": m.last_ip,
                "created_ms": m.create_date,
                "last_contact_ms": if online { now } else { m.last_server_date },
                "online": online,
                "disabled": m.disabled(),
                "clients_total": m.num_client,
                "last_client_ms": m.last_client_date,
            })
        })
        .collect();
    let online: Vec<_> = sessions
        .iter()
        .filter(|s| q.as_ref().is_none_or(|q| s.pcid.contains(q.as_str())))
        .map(|s| {
            json!({
                "pcid": s.pcid,
                "host": s.hostname,
                "ip": s.ip.to_string(),
                "established_ms": s.established_ms,
                "clients": s.num_clients.load(Ordering::Relaxed),
            })
        })
        .collect();
    let live = a.live.list();
    let tunnels: Vec<_> = live
        .iter()
        .filter(|t| q.as_ref().is_none_or(|q| t.pcid.contains(q.as_str())))
        .map(|t| {
            json!({
                "pcid": t.pcid,
                "client": t.client.to_string(),
                "started_ms": t.started_ms,
                "seconds": (now - t.started_ms).max(0) / 1000,
                "up": t.bytes.client_to_server.load(Ordering::Relaxed),
                "down": t.bytes.server_to_client.load(Ordering::Relaxed),
            })
        })
        .collect();
    let mut history = a.history.samples();
    history.push(a.history.current(now, sessions.len() as u64, live.len() as u64, &a.traffic));
    let body = json!({
        "now_ms": now,
        "version": env!("CARGO_PKG_VERSION"),
        "machines_total": total,
        "machines_found": found,
        "machines": machines,
        "sessions": online,
        "tunnels": tunnels,
        "history": history,
    });
    Reply::json(200, "OK", &body)
}

/// Applies `action` to the machine holding `pcid`; a disabled or removed
/// machine's session and tunnels end at once, its office PC told why.
pub async fn change(a: &Admin, action: Action, pcid: &str) -> Reply {
    let pcid = pcid.trim().to_ascii_lowercase();
    let result = match action {
        Action::Disable => a.registry.set_disabled(&pcid, true).await,
        Action::Enable => a.registry.set_disabled(&pcid, false).await,
        Action::Remove => a.registry.remove(&pcid).await,
    };
    match result {
        Ok(()) => {}
        Err(e @ ChangeError::Unknown(_)) => return Reply::json(404, "Not Found", &json!({ "error": e.to_string() })),
        Err(e @ ChangeError::Storage(_)) => {
            tracing::error!(error = %e, %pcid, ?action, "admin console change not stored");
            return Reply::json(500, "Internal Server Error", &json!({ "error": e.to_string() }));
        }
    }
    let reason = match action {
        Action::Enable => None,
        Action::Disable => Some(crate::registry::disabled_message(&pcid)),
        Action::Remove => Some(crate::registry::removed_message(&pcid)),
    };
    let (mut ended, mut cut) = (false, 0);
    if let Some(reason) = reason {
        if let Some(s) = a.sessions.get(&pcid) {
            s.end_by_admin(reason);
            ended = true;
        }
        cut = a.live.cut(&pcid);
    }
    info!(%pcid, ?action, session_ended = ended, tunnels_cut = cut, "admin console change");
    Reply::json(200, "OK", &json!({ "ok": true, "pcid": pcid, "session_ended": ended, "tunnels_cut": cut }))
}
