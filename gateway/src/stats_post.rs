//! Anonymous statistics, off unless `StatPostUrl` is set: every
//! `StatPostInterval` (30 min by default, randomised by +-20 %, doubling after
//! errors up to 4 h) the gateway POSTs JSON with the fields the original's
//! manual lists ([`FIELDS`]): the gateway's own id, IP address, host name, OS
//! and version, and counters of sessions, machines and traffic. Never a PCID,
//! an MSID, a user's or office PC's address or name, a credential or payload.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rustls_pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use url::{Host, Position, Url};

use crate::metrics::Figures;

/// Why one post failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// `StatPostUrl` does not parse.
    #[error("invalid URL: {0}")]
    Url(#[from] url::ParseError),
    /// Another scheme than http or https, or no host.
    #[error("not an http(s) URL")]
    NotHttp,
    /// Connecting, TLS, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TLS client cannot be set up.
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    /// The host is no valid TLS server name.
    #[error("{0}")]
    Name(#[from] rustls_pki_types::InvalidDnsNameError),
    /// The server answered other than 2xx.
    #[error("answer {0:?}")]
    Status(String),
}

/// Where the statistics go and how often.
#[derive(Debug, Clone)]
pub struct StatPost {
    /// `StatPostUrl`.
    pub url: String,
    /// `StatPostInterval`.
    pub interval: Duration,
    /// `ServerCert`: its hash is the gateway's anonymous id.
    pub cert: PathBuf,
}

/// Every field of the body, and nothing else.
pub const FIELDS: [&str; 13] = [
    "gateway_id",
    "ip_address",
    "host_name",
    "os",
    "os_version",
    "version",
    "uptime_seconds",
    "server_sessions",
    "registered_machines",
    "client_sessions",
    "client_sessions_total",
    "bytes_client_to_server",
    "bytes_server_to_client",
];

/// This host's name and OS version, as Linux tells them (at most 255
/// characters each; empty when unknown).
pub fn host_facts() -> (String, String) {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let bounded = |s: String| s.chars().filter(|c| !c.is_control()).take(255).collect::<String>();
    let host = read("/proc/sys/kernel/hostname");
    let kernel = format!("{} {}", read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease"));
    let distro = std::fs::read_to_string("/etc/os-release").ok().and_then(|t| {
        t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim().trim_matches('"').to_string())
    });
    let os = match distro {
        Some(d) if !d.is_empty() => format!("{d}; {}", kernel.trim()),
        _ => kernel.trim().to_string(),
    };
    (bounded(host), bounded(os))
}

/// The JSON body posted from the local address `ip`.
pub fn body(gw: &Figures, cert: &Path, ip: IpAddr) -> serde_json::Value {
    // A stable, anonymous id: hash of the gateway certificate.
    let id = std::fs::read(cert).map(|c| hex::encode(&Sha256::digest(c)[..8])).unwrap_or_default();
    let (host_name, os_version) = host_facts();
    let m = &gw.metrics;
    serde_json::json!({
        "gateway_id": id,
        "ip_address": ip.to_string(),
        "host_name": host_name,
        "os": std::env::consts::OS,
        "os_version": os_version,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": gw.started.elapsed().as_secs(),
        "server_sessions": gw.sessions.len(),
        "registered_machines": gw.registry.registered_count(),
        "client_sessions": m.tunnels_open.load(Ordering::Relaxed),
        "client_sessions_total": m.tunnels.load(Ordering::Relaxed),
        "bytes_client_to_server": gw.traffic.client_to_server.load(Ordering::Relaxed),
        "bytes_server_to_client": gw.traffic.server_to_client.load(Ordering::Relaxed),
    })
}

/// Posts until `shutdown` fires.
pub async fn run(figures: Figures, post_to: StatPost, shutdown: CancellationToken) {
    let StatPost { url, interval: base, cert } = post_to;
    let mut wait = base;
    loop {
        let jittered = wait.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        tokio::select! {
            _ = tokio::time::sleep(jittered) => {}
            _ = shutdown.cancelled() => return,
        }
        let payload = |ip| body(&figures, &cert, ip).to_string();
        match tokio::time::timeout(Duration::from_secs(30), post(&url, payload)).await {
            Ok(Ok(())) => {
                debug!("statistics posted");
                wait = base;
            }
            Ok(Err(e)) => {
                wait = (wait * 2).min(Duration::from_secs(4 * 3600)).max(base);
                warn!(%url, error = %e, next_s = wait.as_secs(), "statistics post failed");
            }
            Err(_) => {
                wait = (wait * 2).min(Duration::from_secs(4 * 3600)).max(base);
                warn!(%url, "statistics post timed out");
            }
        }
    }
}

/// POSTs the JSON that `json` makes from the connection's local address to an
/// http:// or https:// URL; Ok on a 2xx answer.
pub async fn post(url: &str, json: impl FnOnce(IpAddr) -> String) -> Result<(), PostError> {
    let url = Url::parse(url)?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(PostError::NotHttp),
    };
    let host = url.host().ok_or(PostError::NotHttp)?.to_owned();
    let port = url.port_or_known_default().ok_or(PostError::NotHttp)?;
    let tcp = match &host {
        Host::Domain(d) => tokio::net::TcpStream::connect((d.as_str(), port)).await?,
        Host::Ipv4(a) => tokio::net::TcpStream::connect((IpAddr::V4(*a), port)).await?,
        Host::Ipv6(a) => tokio::net::TcpStream::connect((IpAddr::V6(*a), port)).await?,
    };
    let json = json(tcp.local_addr()?.ip());
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: thingate/{}\r\n\r\n{json}",
        &url[Position::BeforePath..Position::AfterQuery],
        &url[Position::BeforeHost..Position::AfterPort],
        json.len(),
        env!("CARGO_PKG_VERSION")
    );
    if tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = match host {
            Host::Domain(d) => ServerName::try_from(d)?,
            Host::Ipv4(a) => ServerName::from(IpAddr::V4(a)),
            Host::Ipv6(a) => ServerName::from(IpAddr::V6(a)),
        };
        let s = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await?;
        exchange(s, &req).await
    } else {
        exchange(tcp, &req).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, req: &str) -> Result<(), PostError> {
    s.write_all(req.as_bytes()).await?;
    let mut head = vec![0u8; 1024];
    let n = s.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_string();
    match line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()) {
        Some(c) if (200..300).contains(&c) => Ok(()),
        _ => Err(PostError::Status(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn posts_to_http_and_refuses_other_schemes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
            String::from_utf8_lossy(&got[..n]).into_owned()
        });
        post(&format!("http://127.0.0.1:{port}/stat?x=1"), |ip| format!("{{\"ip\":\"{ip}\"}}")).await.unwrap();
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /stat?x=1 HTTP/1.1\r\n"), "{req}");
        assert!(req.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")), "{req}");
        assert!(req.ends_with("\r\n\r\n{\"ip\":\"127.0.0.1\"}"), "{req}");
        let json = |_| String::from("{}");
        assert!(matches!(post("ftp://x/", json).await, Err(PostError::NotHttp)));
        assert!(matches!(post("no url", json).await, Err(PostError::Url(_))));
    }
}
