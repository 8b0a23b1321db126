//! Anonymous statistics, off unless `StatPostUrl` is set: every
//! `StatPostInterval` (30 min by default, randomised by +-20 %, doubling after
//! errors up to 4 h) the gateway POSTs JSON counters. Never a PCID, an address
//! of a user, a credential or payload.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rustls_pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use crate::server::Gateway;

/// The JSON body posted.
pub fn body(gw: &Gateway) -> serde_json::Value {
    // A stable, anonymous id: hash of the gateway certificate.
    let id = std::fs::read(&gw.cfg.server_cert).map(|c| hex::encode(&Sha256::digest(c)[..8])).unwrap_or_default();
    let m = &gw.metrics;
    serde_json::json!({
        "gateway_id": id,
        "version": env!("CARGO_PKG_VERSION"),
        "os": std::env::consts::OS,
        "uptime_seconds": gw.started.elapsed().as_secs(),
        "server_sessions": gw.registry.sessions().len(),
        "registered_machines": gw.registry.registered_count(),
        "client_sessions": m.tunnels_open.load(Ordering::Relaxed),
        "client_sessions_total": m.tunnels.load(Ordering::Relaxed),
        "bytes_client_to_server": gw.traffic.client_to_server.load(Ordering::Relaxed),
        "bytes_server_to_client": gw.traffic.server_to_client.load(Ordering::Relaxed),
    })
}

/// Posts until the gateway shuts down.
pub async fn run(gw: Arc<Gateway>, url: String) {
    let base = gw.cfg.stat_post_interval;
    let mut wait = base;
    loop {
        let jittered = wait.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        tokio::select! {
            _ = tokio::time::sleep(jittered) => {}
            _ = gw.shutdown.cancelled() => return,
        }
        let payload = body(&gw).to_string();
        match tokio::time::timeout(Duration::from_secs(30), post(&url, &payload)).await {
            Ok(Ok(())) => {
                debug!("statistics posted");
                wait = base;
            }
            Ok(Err(e)) => {
                wait = (wait * 2).min(Duration::from_secs(4 * 3600)).max(base);
                warn!("statistics post to {url} failed: {e}; next try in about {} s", wait.as_secs());
            }
            Err(_) => {
                wait = (wait * 2).min(Duration::from_secs(4 * 3600)).max(base);
                warn!("statistics post to {url} timed out");
            }
        }
    }
}

/// POSTs `json` to an http:// or https:// URL; Ok on a 2xx answer.
pub async fn post(url: &str, json: &str) -> Result<(), String> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (_, Some(r)) => (false, r),
        _ => return Err("not an http(s) URL".into()),
    };
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            (h.trim_matches(['[', ']']).to_string(), p.parse::<u16>().map_err(|e| e.to_string())?)
        }
        _ => (hostport.to_string(), if tls { 443 } else { 80 }),
    };
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: thingate/{}\r\n\r\n{json}",
        json.len(),
        env!("CARGO_PKG_VERSION")
    );
    if tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let s = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.map_err(|e| e.to_string())?;
        exchange(s, &req).await
    } else {
        exchange(tcp, &req).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, req: &str) -> Result<(), String> {
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 1024];
    let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_string();
    match line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()) {
        Some(c) if (200..300).contains(&c) => Ok(()),
        _ => Err(format!("answer {line:?}")),
    }
}
