//! The plain HTTP pages: `/thingate/` (alive check that answers a `PACK` line)
//! and `/thinstat/` (session list, loopback only; `?format=json` for JSON;
//! on a cluster member also the whole cluster, `docs/cluster.md`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use thin_protocol::http::Request;

use crate::machine_db::ORIGINAL_EPOCH_OFFSET_MS;
use crate::metrics::Figures;
use crate::registry::cluster_view;
use crate::sessions::Sessions;

/// One session as listed by `/thinstat/`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionRow {
    /// When the session was established, in the original's epoch.
    pub established_date_time: i64,
    /// DNS name of the source address, or the address (`NoLookupDnsHostname`).
    pub hostname: String,
    /// Source address.
    pub ip_address: String,
    /// Machine identity.
    pub msid: String,
    /// Clients relayed now.
    pub num_clients: u32,
    /// Server bits.
    pub server_mask64: u64,
    /// Random session id.
    pub session_id: String,
}

/// The session list.
pub fn rows(sessions: &Sessions) -> Vec<SessionRow> {
    sessions
        .list()
        .iter()
        .map(|s| SessionRow {
            established_date_time: s.established_ms - ORIGINAL_EPOCH_OFFSET_MS,
            hostname: s.hostname.clone(),
            ip_address: s.ip.to_string(),
            msid: s.msid.clone(),
            num_clients: s.num_clients.load(Ordering::Relaxed),
            server_mask64: s.mask(),
            session_id: s.session_id.clone(),
        })
        .collect()
}

/// Renders the text format: `NumSession N`, then `Field[i] value` lines.
pub fn render_text(rows: &[SessionRow]) -> String {
    let mut out = format!("NumSession {}\r\n", rows.len());
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&format!("EstablishedDateTime[{i}] {}\r\n", r.established_date_time));
        out.push_str(&format!("Hostname[{i}] {}\r\n", r.hostname));
        out.push_str(&format!("IpAddress[{i}] {}\r\n", r.ip_address));
        out.push_str(&format!("Msid[{i}] {}\r\n", r.msid));
        out.push_str(&format!("NumClients[{i}] {}\r\n", r.num_clients));
        out.push_str(&format!("ServerMask64[{i}] {}\r\n", r.server_mask64));
        out.push_str(&format!("SessionId[{i}] {}\r\n", r.session_id));
    }
    out
}

/// The answer to a non-loopback peer asking for a loopback-only page.
fn forbidden(path: &str) -> (u16, &'static str, &'static str, String) {
    let body = format!("403 Forbidden: {path} answers only on the gateway itself\r\n");
    (403, "Forbidden", "text/plain; charset=utf-8", body)
}

/// Answers a plain HTTP request as [`page`] does; on a cluster member,
/// `/thinstat/` (loopback only, as always) adds the whole cluster read from
/// etcd, or, when etcd does not answer within `ClusterEtcdTimeout`, this
/// member's own sessions and why the cluster view is unavailable.
pub async fn answer(gw: &Figures, req: &Request, peer: SocketAddr) -> (u16, &'static str, &'static str, String) {
    let (status, reason, ctype, body) = page(gw, req, peer);
    let Some(cluster) = gw.cluster.as_ref() else { return (status, reason, ctype, body) };
    if status != 200 || !matches!(req.path(), "/thinstat/" | "/thinstat") {
        return (status, reason, ctype, body);
    }
    let view = cluster.view().await;
    if is_json(req) {
        let rows = rows(&gw.sessions);
        let c = cluster_view::to_json(&cluster.name, &cluster.url, &view);
        let body = serde_json::json!({ "NumSession": rows.len(), "Sessions": rows, "Cluster": c });
        (200, "OK", "application/json", format!("{body}\n"))
    } else {
        (200, "OK", ctype, body + &cluster_view::render_text(&cluster.name, &cluster.url, &view))
    }
}

fn is_json(req: &Request) -> bool {
    req.query().is_some_and(|q| q.split('&').any(|kv| kv == "format=json"))
}

/// Answers a plain HTTP request: (status, reason, content type, body); the
/// standalone gateway's pages (see [`answer`] for a cluster member's).
pub fn page(gw: &Figures, req: &Request, peer: SocketAddr) -> (u16, &'static str, &'static str, String) {
    let text = "text/plain; charset=utf-8";
    if req.method != "GET" && req.method != "HEAD" {
        return (405, "Method Not Allowed", text, "method not allowed\r\n".into());
    }
    match req.path() {
        // The alive check answers everyone (apps, load balancers); how many
        // office PCs are connected is told on loopback only, as /thinstat/.
        "/thingate/" | "/thingate" => {
            let sessions =
                if peer.ip().is_loopback() { format!("sessions={}; ", gw.sessions.len()) } else { String::new() };
            let line = format!(
                "PACK ThinGate {} standalone; {sessions}this URL answers the alive check\r\n",
                env!("CARGO_PKG_VERSION"),
            );
            (200, "OK", text, line)
        }
        "/thinstat/" | "/thinstat" => {
            if !peer.ip().is_loopback() {
                return forbidden(req.path());
            }
            let rows = rows(&gw.sessions);
            if is_json(req) {
                let body = serde_json::json!({ "NumSession": rows.len(), "Sessions": rows });
                (200, "OK", "application/json", format!("{body}\n"))
            } else {
                (200, "OK", text, render_text(&rows))
            }
        }
        "/metrics" => {
            if !peer.ip().is_loopback() {
                return forbidden(req.path());
            }
            (200, "OK", "text/plain; version=0.0.4", crate::metrics::render(gw))
        }
        _ => (404, "Not Found", text, "404 Not Found\r\n".into()),
    }
}
