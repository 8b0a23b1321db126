//! The link to etcd that the cluster registry and the session directory share:
//! the connection (TLS when the endpoints are `https://`), the key layout of
//! `docs/cluster.md`, and a deadline on every call.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

use crate::config::ClusterSettings;
use crate::machine_db::{Machine, MachineDb};

/// Why etcd could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// A TLS file named in `ThinGate.ini` cannot be read.
    #[error("cannot read {} ({key} in ThinGate.ini): {source}", path.display())]
    TlsFile {
        /// The ini key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// etcd did not answer in time.
    #[error("etcd did not answer within {} ms; check that ClusterEtcdEndpoints reach a running etcd cluster with a leader", .0.as_millis())]
    Timeout(Duration),
    /// etcd or the connection to it refused the call.
    #[error("etcd refused the call: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A value in etcd is not what this gateway writes there.
    #[error("etcd key {key} holds a value this gateway cannot read: {msg}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The etcd cluster is not reached at all.
    #[error("cannot connect to etcd at {endpoints}: {source}; check ClusterEtcdEndpoints (and the ClusterEtcd* TLS files) and that etcd runs there")]
    Connect {
        /// `ClusterEtcdEndpoints`.
        endpoints: String,
        /// Cause.
        source: Box<EtcdError>,
    },
}

/// Where the cluster's keys are: everything under `/thintelework/<ClusterName>/`.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// The keys of cluster `name`.
    pub fn new(name: &str) -> Keys {
        Keys { root: format!("/thintelework/{name}/") }
    }

    /// Prefix of the machine records.
    pub fn machines(&self) -> String {
        format!("{}machines/", self.root)
    }

    /// The record of `msid`.
    pub fn machine(&self, msid: &str) -> String {
        format!("{}machines/{msid}", self.root)
    }

    /// The index entry of `pcid` (lower case): its MSID.
    pub fn pcid(&self, pcid: &str) -> String {
        format!("{}pcids/{pcid}", self.root)
    }

    /// Prefix of the online announcements.
    pub fn online_all(&self) -> String {
        format!("{}online/", self.root)
    }

    /// Where `pcid` is online.
    pub fn online(&self, pcid: &str) -> String {
        format!("{}online/{pcid}", self.root)
    }

    /// The member entry of the gateway at `url`.
    pub fn member(&self, url: &str) -> String {
        format!("{}members/{}", self.root, hex::encode(url))
    }
}

/// A connected etcd client with the cluster's keys and the call deadline.
#[derive(Clone)]
pub struct EtcdLink {
    /// The client (cheap to clone; each call clones it).
    pub client: Client,
    /// The key layout.
    pub keys: Keys,
    /// Deadline of one call (`ClusterEtcdTimeout`).
    pub timeout: Duration,
}

impl std::fmt::Debug for EtcdLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLink").field("keys", &self.keys).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl EtcdLink {
    /// Connects to the endpoints of `s` (TLS with `https://`), within `s.timeout`.
    pub async fn connect(s: &ClusterSettings) -> Result<EtcdLink, EtcdError> {
        // The deadline of a call is `call`'s own (one limit, one error); the
        // client's keep-alive finds a dead connection between calls.
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(s.timeout)
            .with_keep_alive(Duration::from_secs(5), s.timeout)
            .with_require_leader(true);
        if let Some(tls) = &s.tls {
            let read = |key, path: &Path| {
                std::fs::read(path).map_err(|source| EtcdError::TlsFile { key, path: path.to_owned(), source })
            };
            let mut t =
                TlsOptions::new().ca_certificate(Certificate::from_pem(read("ClusterEtcdCaFile", &tls.ca_file)?));
            if let Some((cert, key)) = &tls.identity {
                t = t
                    .identity(Identity::from_pem(read("ClusterEtcdCertFile", cert)?, read("ClusterEtcdKeyFile", key)?));
            }
            opts = opts.with_tls(t);
        }
        let link = |source| EtcdError::Connect { endpoints: s.endpoints.join(", "), source: Box::new(source) };
        let client = within(s.timeout, Client::connect(&s.endpoints, Some(opts))).await.map_err(link)?;
        let keys = Keys::new(&s.name);
        // The client connects lazily: one read proves that etcd answers.
        let mut kv = client.kv_client();
        within(s.timeout, kv.get(keys.root.as_str(), Some(GetOptions::new().with_count_only()))).await.map_err(link)?;
        Ok(EtcdLink { client, keys, timeout: s.timeout })
    }

    /// Runs one etcd call with the link's deadline.
    pub async fn call<T>(&self, f: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, EtcdError> {
        within(self.timeout, f).await
    }

    /// Runs an idempotent etcd call (a read, a put, a transaction guarded by
    /// its comparisons) with the link's deadline, again while etcd answers
    /// that it cannot serve it now (a leader election: "leader changed", "no
    /// leader"; a member gone), so an election is a pause, not an error.
    pub async fn call_retrying<T, F, Fut>(&self, mut f: F) -> Result<T, EtcdError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match within(left, f(self.client.clone())).await {
                Err(EtcdError::Etcd(e)) if transient(&e) && left > pause => {
                    tracing::debug!(error = %e, "etcd cannot serve the call now; again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(400));
                }
                Err(EtcdError::Timeout(_)) => return Err(EtcdError::Timeout(self.timeout)),
                other => return other,
            }
        }
    }
}

/// Whether etcd may serve the call if asked again shortly: it is electing a
/// leader, or the member asked is unreachable or its connection broke (the
/// client tries another). tonic reports a connection reset or closed during
/// a call as `Unknown` with a transport or h2 message, not as `Unavailable`.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            tonic::Code::Unavailable => true,
            tonic::Code::Unknown => s.message() == "transport error" || s.message().starts_with("h2 protocol error"),
            _ => false,
        },
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

/// Keys read per page of [`EtcdLink::get_prefix`] (gRPC answers stay far below
/// their 4 MB bound: a machine record is under 1 KB).
const PAGE: i64 = 1_000;

impl EtcdLink {
    /// Every key under `prefix`, read page by page at one revision; returns
    /// them in key order with that revision.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Vec<etcd_client::KeyValue>, i64), EtcdError> {
        // The end of the prefix's range: its last byte plus one (keys here
        // are ASCII and end in '/').
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let (mut out, mut from, mut rev) = (Vec::new(), prefix.as_bytes().to_vec(), 0);
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if rev != 0 {
                opts = opts.with_revision(rev);
            }
            let resp = self.call(self.client.kv_client().get(from.clone(), Some(opts))).await?;
            if rev == 0 {
                rev = resp.header().map_or(0, |h| h.revision());
            }
            let more = resp.more();
            if let Some(last) = resp.kvs().last() {
                from = last.key().to_vec();
                from.push(0);
            }
            out.extend_from_slice(resp.kvs());
            if !more {
                return Ok((out, rev));
            }
        }
    }
}

async fn within<T>(limit: Duration, f: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, EtcdError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(EtcdError::from),
        Err(_) => Err(EtcdError::Timeout(limit)),
    }
}

/// A machine's record as stored at `machines/<MSID>`: a one-machine
/// `MachineDatabase.config` text (same fields, same date epoch).
pub fn encode(m: &Machine) -> String {
    let mut one = MachineDb::in_memory(Path::new("etcd"));
    one.upsert(m.clone());
    one.render()
}

/// Reads a record written by [`encode`]; `key` names it in messages.
pub fn decode(key: &str, value: &[u8]) -> Result<Machine, EtcdError> {
    let bad = |msg: String| EtcdError::BadValue { key: key.to_string(), msg };
    let db = MachineDb::parse(Path::new(key), value).map_err(|e| bad(e.to_string()))?;
    let mut it = db.iter();
    match (it.next(), it.next()) {
        (Some(m), None) if key.ends_with(&format!("/{}", m.msid)) => Ok(m.clone()),
        (Some(m), None) => Err(bad(format!("it holds machine {} instead", m.msid))),
        _ => Err(bad("it must hold exactly one machine".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::transient;
    use etcd_client::Error::GRpcStatus;

    #[test]
    fn a_broken_connection_and_an_election_are_transient_and_refusals_are_not() {
        // As seen when the etcd member a gateway talked to was killed.
        assert!(transient(&GRpcStatus(tonic::Status::unknown("transport error"))));
        assert!(transient(&GRpcStatus(tonic::Status::unknown(
            "h2 protocol error: error reading a body from connection"
        ))));
        assert!(transient(&GRpcStatus(tonic::Status::unavailable("etcdserver: leader changed"))));
        assert!(!transient(&GRpcStatus(tonic::Status::unknown("etcdserver: some other failure"))));
        assert!(!transient(&GRpcStatus(tonic::Status::invalid_argument("etcdserver: key is not provided"))));
        assert!(!transient(&GRpcStatus(tonic::Status::permission_denied("etcdserver: permission denied"))));
    }
}
