//! `thingate status`: asks the running gateway for its `/metrics` over loopback
//! TLS, trusting exactly the certificate named by its own `ServerCert`, and
//! prints the figures for a human.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::GateConfig;

/// Largest `/metrics` answer read.
const MAX_ANSWER: u64 = 1 << 20;

/// Why the figures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// `ServerCert` cannot be read.
    #[error("{path}: {msg} (ServerCert in ThinGate.ini)")]
    Cert {
        /// The certificate file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Nothing answers on the gateway's port.
    #[error("nothing answers on {addr}: {source}")]
    Connect {
        /// Where the gateway should listen.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// TLS failed (for example the certificate on disk was replaced and not yet reloaded).
    #[error("TLS to {addr} failed: {source} (if ServerCert was replaced, send SIGHUP to reload it)")]
    Tls {
        /// Where the gateway listens.
        addr: SocketAddr,
        /// The TLS error.
        source: std::io::Error,
    },
    /// The gateway did not answer in time.
    #[error("{addr} did not answer within 5 s")]
    Timeout {
        /// Where the gateway listens.
        addr: SocketAddr,
    },
    /// The gateway answered something other than 200.
    #[error("{addr} answered /metrics with `{line}`")]
    Http {
        /// Where the gateway listens.
        addr: SocketAddr,
        /// The status line.
        line: String,
    },
}

/// Trusts exactly one certificate: the gateway's own `ServerCert`.
#[derive(Debug)]
struct PinnedLeaf {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the gateway presented a certificate other than the ServerCert file".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The loopback address to reach a gateway listening on `listen`.
pub fn local_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Fetches `/metrics` from the gateway of `cfg` listening on `addr`.
pub async fn fetch_metrics(cfg: &GateConfig, addr: SocketAddr) -> Result<String, StatusError> {
    let cert_err = |msg: String| StatusError::Cert { path: cfg.server_cert.display().to_string(), msg };
    let leaf = thin_protocol::tls::load_certs(&cfg.server_cert)
        .map_err(|e| cert_err(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| cert_err("holds no certificate".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedLeaf { leaf, provider }))
        .with_no_client_auth();
    let work = async {
        let mut tcp =
            tokio::net::TcpStream::connect(addr).await.map_err(|source| StatusError::Connect { addr, source })?;
        if cfg.accept_proxy_protocol {
            let local = tcp.local_addr().map_err(|source| StatusError::Connect { addr, source })?;
            let header = crate::proxy_protocol::v2_header(local, addr);
            tcp.write_all(&header).await.map_err(|source| StatusError::Connect { addr, source })?;
        }
        let name = ServerName::from(addr.ip());
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|source| StatusError::Tls { addr, source })?;
        let req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).await.map_err(|source| StatusError::Tls { addr, source })?;
        let mut buf = Vec::new();
        // The gateway closes after answering; a reset after the body is fine.
        let _ = (&mut s).take(MAX_ANSWER).read_to_end(&mut buf).await;
        Ok::<_, StatusError>(String::from_utf8_lossy(&buf).into_owned())
    };
    let answer =
        tokio::time::timeout(Duration::from_secs(5), work).await.map_err(|_| StatusError::Timeout { addr })??;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let line = head.lines().next().unwrap_or("").to_string();
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(StatusError::Http { addr, line });
    }
    Ok(body.to_string())
}

/// The samples of a Prometheus text exposition (comments skipped).
pub fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse::<f64>().ok()? as u64)))
        .collect()
}

/// Bytes in binary units.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn duration(s: u64) -> String {
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The figures of `/metrics` as lines for a human.
pub fn summary(m: &BTreeMap<String, u64>) -> String {
    let g = |k: &str| m.get(&format!("thingate_{k}")).copied().unwrap_or(0);
    let rows = [
        ("up", duration(g("uptime_seconds"))),
        ("office PCs online", format!("{} (registered {})", g("server_sessions"), g("registered_machines"))),
        ("client sessions", format!("{} now, {} since start", g("client_sessions"), g("client_sessions_total"))),
        (
            "connections",
            format!(
                "{} open, {} accepted, {} refused by DoS protection",
                g("connections_open"),
                g("connections_total"),
                g("connections_refused_total")
            ),
        ),
        (
            "relayed",
            format!(
                "{} client -> server, {} server -> client",
                bytes(g("relayed_bytes_client_to_server_total")),
                bytes(g("relayed_bytes_server_to_client_total"))
            ),
        ),
        (
            "registrations",
            format!("{} accepted, {} refused", g("registrations_total"), g("registrations_refused_total")),
        ),
        ("authentication failures", g("auth_failures_total").to_string()),
        ("handshake errors", g("handshake_errors_total").to_string()),
    ];
    rows.iter().map(|(k, v)| format!("  {k:<24}{v}\n")).collect()
}

/// Reads `listening on ADDR` from a daemon's captured stdout.
pub fn listening_line(stdout: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(stdout).ok()?.lines().find_map(|l| l.strip_prefix("listening on ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_summarises() {
        let text = "# HELP thingate_uptime_seconds x\n# TYPE thingate_uptime_seconds gauge\n\
                    thingate_uptime_seconds 3725\nthingate_server_sessions 2\nthingate_registered_machines 5\n\
                    thingate_relayed_bytes_client_to_server_total 1572864\n";
        let m = parse(text);
        assert_eq!(m["thingate_server_sessions"], 2);
        let s = summary(&m);
        assert!(s.contains("up                      1 h 2 min"), "{s}");
        assert!(s.contains("office PCs online       2 (registered 5)"), "{s}");
        assert!(s.contains("1.5 MiB client -> server, 0 B server -> client"), "{s}");
    }

    #[test]
    fn loopback_for_wildcards() {
        assert_eq!(local_target("0.0.0.0:443".parse().unwrap()), "127.0.0.1:443".parse().unwrap());
        assert_eq!(local_target("[::]:8443".parse().unwrap()), "[::1]:8443".parse().unwrap());
        assert_eq!(local_target("127.0.0.2:9".parse().unwrap()), "127.0.0.2:9".parse().unwrap());
    }
}
