//! The whole cluster as `/thinstat/` and `thingate status` show it
//! (`docs/cluster.md`, "Showing the cluster"): the members (`members/`), where
//! each office PC is online (`online/`), sessions per member and the machines
//! registered, read from etcd within one deadline; and etcd's own health per
//! endpoint.

use std::collections::BTreeMap;

use etcd_client::GetOptions;

use super::directory::Presence;
use super::etcd_link::{EtcdError, EtcdLink};
use crate::config::ClusterSettings;

/// One gateway of the cluster, from its `members/` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemberRow {
    /// Its `ClusterPublicUrl`.
    pub url: String,
    /// Its version.
    pub version: String,
    /// When it joined (Unix ms).
    pub started_ms: i64,
    /// Office PCs announced online at it.
    pub sessions: usize,
}

/// One office PC online somewhere in the cluster, from its `online/` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnlineRow {
    /// Its computer ID.
    pub pcid: String,
    /// Its machine.
    pub msid: String,
    /// The member it is connected to (its `ClusterPublicUrl`).
    pub gateway: String,
    /// When its session was established (Unix ms).
    pub since_ms: i64,
}

/// The cluster as etcd holds it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterView {
    /// Machines registered in the cluster (`machines/`).
    pub registered: i64,
    /// The members, by URL; a gateway that announces sessions without a
    /// `members/` entry (its entry was written under a lease that expired
    /// and not yet again) is listed with an empty version.
    pub members: Vec<MemberRow>,
    /// Every office PC online, by computer ID.
    pub online: Vec<OnlineRow>,
}

/// Reads the cluster's view over `link`; the whole reading is bounded by the
/// link's deadline (`ClusterEtcdTimeout`), not each call of it.
pub async fn read(link: &EtcdLink) -> Result<ClusterView, EtcdError> {
    match tokio::time::timeout(link.timeout, read_unbounded(link)).await {
        Ok(r) => r,
        Err(_) => Err(EtcdError::Timeout(link.timeout)),
    }
}

async fn read_unbounded(link: &EtcdLink) -> Result<ClusterView, EtcdError> {
    let count = GetOptions::new().with_prefix().with_count_only();
    let machines = link.keys.machines();
    let registered = link.call(link.client.kv_client().get(machines.as_str(), Some(count))).await?.count();
    let (member_kvs, _) = link.get_prefix(&link.keys.member("")).await?;
    let (online_kvs, _) = link.get_prefix(&link.keys.online_all()).await?;
    let prefix = link.keys.online_all();
    let mut online = Vec::with_capacity(online_kvs.len());
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for kv in &online_kvs {
        let key = String::from_utf8_lossy(kv.key());
        let p: Presence = serde_json::from_slice(kv.value())
            .map_err(|e| EtcdError::BadValue { key: key.to_string(), msg: e.to_string() })?;
        *per.entry(p.gateway.clone()).or_default() += 1;
        let pcid = key.strip_prefix(prefix.as_str()).unwrap_or(&key).to_string();
        online.push(OnlineRow { pcid, msid: p.msid, gateway: p.gateway, since_ms: p.since_ms });
    }
    let mut members = Vec::new();
    for kv in &member_kvs {
        let key = String::from_utf8_lossy(kv.key());
        let v: serde_json::Value = serde_json::from_slice(kv.value())
            .map_err(|e| EtcdError::BadValue { key: key.to_string(), msg: e.to_string() })?;
        let url = v["url"].as_str().unwrap_or_default().to_string();
        let sessions = per.remove(&url).unwrap_or(0);
        let version = v["version"].as_str().unwrap_or_default().to_string();
        members.push(MemberRow { url, version, started_ms: v["started_ms"].as_i64().unwrap_or(0), sessions });
    }
    for (url, sessions) in per {
        members.push(MemberRow { url, version: String::new(), started_ms: 0, sessions });
    }
    members.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(ClusterView { registered, members, online })
}

/// The view's lines in `/thinstat/`'s text format, after the sessions: the
/// cluster's name and this member's URL, then either the view or why it is
/// unavailable.
pub fn render_text(name: &str, url: &str, view: &Result<ClusterView, String>) -> String {
    let mut out = format!("ClusterName {name}\r\nClusterSelf {url}\r\n");
    let v = match view {
        Ok(v) => v,
        Err(e) => {
            out.push_str(&format!("ClusterView unavailable: {e}\r\n"));
            return out;
        }
    };
    out.push_str("ClusterView ok\r\n");
    out.push_str(&format!("ClusterRegistered {}\r\n", v.registered));
    out.push_str(&format!("ClusterNumMember {}\r\n", v.members.len()));
    for (i, m) in v.members.iter().enumerate() {
        out.push_str(&format!("ClusterMemberUrl[{i}] {}\r\n", m.url));
        out.push_str(&format!("ClusterMemberVersion[{i}] {}\r\n", m.version));
        out.push_str(&format!("ClusterMemberSessions[{i}] {}\r\n", m.sessions));
    }
    out.push_str(&format!("ClusterNumOnline {}\r\n", v.online.len()));
    for (i, o) in v.online.iter().enumerate() {
        out.push_str(&format!("ClusterOnlinePcid[{i}] {}\r\n", o.pcid));
        out.push_str(&format!("ClusterOnlineMsid[{i}] {}\r\n", o.msid));
        out.push_str(&format!("ClusterOnlineGateway[{i}] {}\r\n", o.gateway));
    }
    out
}

/// The view as `/thinstat/?format=json`'s `Cluster` field.
pub fn to_json(name: &str, url: &str, view: &Result<ClusterView, String>) -> serde_json::Value {
    match view {
        Ok(v) => serde_json::json!({
            "Name": name, "Self": url, "Available": true,
            "Registered": v.registered, "Members": v.members, "Online": v.online,
        }),
        Err(e) => serde_json::json!({ "Name": name, "Self": url, "Available": false, "Error": e }),
    }
}

/// The view as lines for a human (`thingate status`).
pub fn summary(view: &ClusterView) -> String {
    let mut out = format!(
        "  {:<24}{} registered, {} online at {} members\n",
        "cluster",
        view.registered,
        view.online.len(),
        view.members.len()
    );
    for m in &view.members {
        let version = if m.version.is_empty() { "no member entry".to_string() } else { m.version.clone() };
        out.push_str(&format!("    {}  ({version}): {} office PCs online\n", m.url, m.sessions));
    }
    out
}

/// How one etcd endpoint answered `Status`.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    /// The endpoint (`ClusterEtcdEndpoints`).
    pub endpoint: String,
    /// Its status, or why it did not answer.
    pub status: Result<EndpointStatus, String>,
}

/// An etcd member's own status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Its member id.
    pub member: u64,
    /// The leader it follows (0: none).
    pub leader: u64,
    /// Its database's size on disk, bytes.
    pub db_size: i64,
    /// Its etcd version.
    pub version: String,
}

/// Asks every endpoint of `s` for its status (all at once, each within `s.timeout`).
pub async fn health(s: &ClusterSettings) -> Vec<EndpointHealth> {
    let asks = s.endpoints.iter().map(|e| {
        let one = ClusterSettings { endpoints: vec![e.clone()], ..s.clone() };
        let endpoint = e.clone();
        tokio::spawn(async move {
            let status = async {
                let link = EtcdLink::connect(&one).await?;
                let st = link.call(link.client.maintenance_client().status()).await?;
                Ok::<_, EtcdError>(EndpointStatus {
                    member: st.header().map_or(0, |h| h.member_id()),
                    leader: st.leader(),
                    db_size: st.db_size(),
                    version: st.version().to_string(),
                })
            }
            .await
            .map_err(|e| e.to_string());
            EndpointHealth { endpoint, status }
        })
    });
    let mut out = Vec::new();
    for ask in asks.collect::<Vec<_>>() {
        if let Ok(h) = ask.await {
            out.push(h);
        }
    }
    out
}

/// etcd's health as lines for a human (`thingate status`).
pub fn health_summary(h: &[EndpointHealth]) -> String {
    let answering = h.iter().filter(|e| e.status.is_ok()).count();
    let mut out = format!("  {:<24}{answering} of {} endpoints answering\n", "etcd", h.len());
    for e in h {
        match &e.status {
            Ok(s) => {
                let role = if s.leader == 0 {
                    "no leader".to_string()
                } else if s.leader == s.member {
                    "leader".to_string()
                } else {
                    format!("follower of {:x}", s.leader)
                };
                out.push_str(&format!(
                    "    {}  member {:x}, {role}, etcd {}, database {:.1} MiB\n",
                    e.endpoint,
                    s.member,
                    s.version,
                    s.db_size as f64 / (1024.0 * 1024.0)
                ));
            }
            Err(why) => out.push_str(&format!("    {}  not answering: {why}\n", e.endpoint)),
        }
    }
    out
}

/// Connects with `s` and reads the view (each step within `s.timeout`).
pub async fn read_with(s: &ClusterSettings) -> Result<ClusterView, EtcdError> {
    let link = EtcdLink::connect(s).await?;
    read(&link).await
}

/// What a cluster member needs to show the cluster: its link to etcd, the
/// cluster's name and its own URL.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// The member's link to etcd.
    pub link: EtcdLink,
    /// `ClusterName`.
    pub name: String,
    /// `ClusterPublicUrl`.
    pub url: String,
}

impl ClusterInfo {
    /// The view now, or why it is unavailable (within `ClusterEtcdTimeout`).
    pub async fn view(&self) -> Result<ClusterView, String> {
        read(&self.link).await.map_err(|e| e.to_string())
    }
}
