//! [`EtcdDirectory`]: a cluster member's session directory in etcd. The
//! member holds one lease, kept alive every third of its TTL; its `members/`
//! entry and every `online/` announcement carry that lease, so that when the
//! member dies everything it announced expires with it (`docs/cluster.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::task::JoinHandle;

use super::directory::{Presence, SessionDirectory};
use super::etcd_link::{EtcdError, EtcdLink};
use super::{BoxFuture, StorageError};
use crate::machine_db::now_ms;

/// The lease in force and what was announced under it.
#[derive(Debug)]
struct Held {
    lease: i64,
    /// INVARIANT: what this member announced and has not withdrawn, so that a
    /// new lease (after the old one expired) can carry it again.
    mine: HashMap<String, Presence>,
}

/// The session directory of a cluster member.
#[derive(Debug)]
pub struct EtcdDirectory {
    link: EtcdLink,
    url: String,
    held: Arc<Mutex<Held>>,
    keeper: JoinHandle<()>,
}

impl Drop for EtcdDirectory {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().expect("etcd directory lock")
}

impl EtcdDirectory {
    /// Joins the cluster as the member reached at `url`: grants the member's
    /// lease (`ttl`, whole seconds, at least 2), writes its `members/` entry
    /// and keeps the lease alive.
    pub async fn join(link: EtcdLink, url: &str, ttl: Duration) -> Result<EtcdDirectory, EtcdError> {
        let ttl_s = ttl.as_secs().max(2) as i64 + i64::from(ttl.subsec_nanos() > 0);
        let held = Arc::new(Mutex::new(Held { lease: 0, mine: HashMap::new() }));
        let lease = grant(&link, url, ttl_s, &held).await?;
        lock(&held).lease = lease;
        let keeper = tokio::spawn(keep(link.clone(), url.to_string(), ttl_s, held.clone()));
        Ok(EtcdDirectory { link, url: url.to_string(), held, keeper })
    }

    /// This member's lease (etcd's id).
    pub fn lease(&self) -> i64 {
        lock(&self.held).lease
    }

    /// Leaves the cluster: stops renewing and revokes the lease, which
    /// withdraws every announcement of this member at once.
    pub async fn leave(self) -> Result<(), EtcdError> {
        self.keeper.abort();
        let lease = self.lease();
        self.link.call(self.link.client.lease_client().revoke(lease)).await.map(drop)
    }

    /// The gateways in the cluster now (their `ClusterPublicUrl`s), sorted.
    pub async fn members(&self) -> Result<Vec<String>, EtcdError> {
        let prefix = self.link.keys.member("");
        let opts = etcd_client::GetOptions::new().with_prefix();
        let resp = self.link.call(self.link.client.kv_client().get(prefix.as_str(), Some(opts))).await?;
        let mut urls: Vec<String> = resp
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice::<serde_json::Value>(kv.value()).ok())
            .filter_map(|v| v["url"].as_str().map(str::to_string))
            .collect();
        urls.sort();
        Ok(urls)
    }

    /// This member's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn put(&self, pcid: &str, p: &Presence) -> Result<(), EtcdError> {
        let lease = {
            let mut h = lock(&self.held);
            h.mine.insert(pcid.to_string(), p.clone());
            h.lease
        };
        let value = serde_json::to_string(p).expect("a presence serializes");
        let key = self.link.keys.online(pcid);
        let put = |c: etcd_client::Client| {
            let (key, value) = (key.clone(), value.clone());
            async move { c.kv_client().put(key, value, Some(PutOptions::new().with_lease(lease))).await }
        };
        self.link.call_retrying(put).await.map(drop)
    }

    async fn delete(&self, pcid: &str, p: &Presence) -> Result<(), EtcdError> {
        {
            let mut h = lock(&self.held);
            if h.mine.get(pcid) == Some(p) {
                h.mine.remove(pcid);
            }
        }
        let key = self.link.keys.online(pcid);
        let value = serde_json::to_string(p).expect("a presence serializes");
        let txn = Txn::new()
            .when([Compare::value(key.as_str(), CompareOp::Equal, value)])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        self.link.call_retrying(|c| super::etcd::txn_call(c, txn.clone())).await.map(drop)
    }

    async fn get(&self, pcid: &str) -> Result<Option<Presence>, EtcdError> {
        let key = self.link.keys.online(pcid);
        let get = |c: etcd_client::Client| {
            let key = key.clone();
            async move { c.kv_client().get(key, None).await }
        };
        let resp = self.link.call_retrying(get).await?;
        let Some(kv) = resp.kvs().first() else { return Ok(None) };
        serde_json::from_slice(kv.value()).map(Some).map_err(|e| EtcdError::BadValue { key, msg: e.to_string() })
    }
}

/// Grants a lease and writes the member entry and every held announcement under it.
async fn grant(link: &EtcdLink, url: &str, ttl_s: i64, held: &Mutex<Held>) -> Result<i64, EtcdError> {
    let lease = link.call(link.client.lease_client().grant(ttl_s, None)).await?.id();
    let with = || Some(PutOptions::new().with_lease(lease));
    let member = serde_json::json!({ "url": url, "version": env!("CARGO_PKG_VERSION"), "started_ms": now_ms() });
    let mut ops = vec![TxnOp::put(link.keys.member(url), member.to_string(), with())];
    for (pcid, p) in &lock(held).mine {
        ops.push(TxnOp::put(link.keys.online(pcid), serde_json::to_string(p).expect("a presence serializes"), with()));
    }
    link.call(link.client.kv_client().txn(Txn::new().and_then(ops))).await?;
    Ok(lease)
}

/// Keeps the member's lease alive; when it is lost (etcd unreachable for a
/// whole TTL), grants a new one as soon as etcd answers and announces again.
async fn keep(link: EtcdLink, url: String, ttl_s: i64, held: Arc<Mutex<Held>>) {
    let every = Duration::from_millis(ttl_s as u64 * 1000 / 3);
    loop {
        let lease = lock(&held).lease;
        if let Err(e) = renew(&link, lease, every).await {
            tracing::warn!(error = %e, "the cluster lease is lost; this gateway's sessions are not announced until etcd answers");
        }
        loop {
            tokio::time::sleep(every).await;
            match grant(&link, &url, ttl_s, &held).await {
                Ok(new) => {
                    lock(&held).lease = new;
                    tracing::info!("the cluster lease is granted again; sessions announced again");
                    break;
                }
                Err(e) => tracing::debug!(error = %e, "etcd does not grant a lease yet"),
            }
        }
    }
}

/// Renews `lease` every `every` until a renewal fails or etcd says it expired.
async fn renew(link: &EtcdLink, lease: i64, every: Duration) -> Result<(), EtcdError> {
    let (mut keeper, mut answers) = link.call(link.client.lease_client().keep_alive(lease)).await?;
    loop {
        link.call(keeper.keep_alive()).await?;
        match link.call(answers.message()).await? {
            Some(a) if a.ttl() > 0 => {}
            _ => return Err(EtcdError::BadValue { key: format!("lease {lease:x}"), msg: "it expired".into() }),
        }
        tokio::time::sleep(every).await;
    }
}

impl SessionDirectory for EtcdDirectory {
    fn announce<'a>(&'a self, pcid: &'a str, p: &'a Presence) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.put(pcid, p).await.map_err(StorageError::from) })
    }

    fn withdraw<'a>(&'a self, pcid: &'a str, p: &'a Presence) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move { self.delete(pcid, p).await.map_err(StorageError::from) })
    }

    fn locate<'a>(&'a self, pcid: &'a str) -> BoxFuture<'a, Result<Option<Presence>, StorageError>> {
        Box::pin(async move { self.get(pcid).await.map_err(StorageError::from) })
    }
}
