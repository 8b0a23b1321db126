//! Outbound proxies: how the apps reach the gateway through a corporate
//! HTTP CONNECT or SOCKS5 proxy.
//!
//! [`resolve`] chooses the proxy for a target (explicit option, saved
//! setting, environment, Windows Internet Options, in that order);
//! [`connect`] opens a TCP stream to the target through it, ready for TLS.

pub mod http_connect;
pub mod resolve;
pub mod settings;
pub mod socks5;
pub mod windows;

pub use resolve::{no_proxy_matches, resolve, resolve_with};
pub use settings::{ProxyKind, ProxySetting};

use std::io;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, warn};

/// Why a proxy could not be chosen or used. Messages name the proxy by
/// `host:port`, never by its credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A proxy URL (option, saved setting, variable, registry value) is unusable.
    #[error("invalid proxy setting in {origin}: {reason}")]
    Invalid {
        /// Where the setting came from, e.g. `HTTPS_PROXY`.
        origin: String,
        /// What is wrong with it and how to write it instead.
        reason: String,
    },
    /// No proxy was used and the target did not answer.
    #[error("cannot reach {target}: {cause}")]
    TargetUnreachable {
        /// `host:port` of the target.
        target: String,
        /// Connection refused, timed out, name not found...
        cause: io::Error,
    },
    /// The proxy itself did not answer.
    #[error("cannot reach the proxy {proxy}: {cause}")]
    ProxyUnreachable {
        /// `host:port` of the proxy.
        proxy: String,
        /// Connection refused, timed out, name not found...
        cause: io::Error,
    },
    /// The proxy accepted the TCP connection but did not finish the handshake in time.
    #[error("the proxy {proxy} did not open the connection to {target} within {}", secs(.after))]
    HandshakeTimeout {
        /// `host:port` of the proxy.
        proxy: String,
        /// `host:port` of the target.
        target: String,
        /// The time allowed for the whole connection.
        after: Duration,
    },
    /// HTTP 407, or SOCKS5 without an acceptable method, and no credentials were sent.
    #[error("the proxy {proxy} requires a user name and password; write them into the proxy setting as scheme://user:password@{proxy}")]
    AuthRequired {
        /// `host:port` of the proxy.
        proxy: String,
    },
    /// Credentials were sent and the proxy refused them.
    #[error("the proxy {proxy} refused the user name or password")]
    AuthRejected {
        /// `host:port` of the proxy.
        proxy: String,
    },
    /// The HTTP proxy answered the CONNECT with a status other than 2xx or 407.
    #[error("the proxy {proxy} refused to connect to {target}: {status_line}")]
    HttpStatus {
        /// `host:port` of the proxy.
        proxy: String,
        /// `host:port` of the target.
        target: String,
        /// The status code, e.g. 403.
        status: u16,
        /// The proxy's status line, cleaned of control characters.
        status_line: String,
    },
    /// The SOCKS5 proxy answered the CONNECT request with an error code.
    #[error("the SOCKS5 proxy {proxy} could not connect to {target}: {} (reply code {code})", socks5::reply_text(*.code))]
    Socks5Reply {
        /// `host:port` of the proxy.
        proxy: String,
        /// `host:port` of the target.
        target: String,
        /// The RFC 1928 reply code.
        code: u8,
    },
    /// Credentials were offered and the SOCKS5 proxy accepts neither them nor no authentication.
    #[error(
        "the SOCKS5 proxy {proxy} accepts none of the offered authentication methods (none, user name and password)"
    )]
    Socks5NoMethod {
        /// `host:port` of the proxy.
        proxy: String,
    },
    /// The proxy's answer does not follow the protocol (wrong kind of proxy?).
    #[error("the proxy {proxy} sent a malformed reply: {detail}")]
    Malformed {
        /// `host:port` of the proxy.
        proxy: String,
        /// What was wrong.
        detail: String,
    },
    /// The connection to the proxy failed during the handshake.
    #[error("the connection to the proxy {proxy} failed: {cause}")]
    Io {
        /// `host:port` of the proxy.
        proxy: String,
        /// The I/O error.
        cause: io::Error,
    },
}

impl ProxyError {
    /// Whether trying again later may succeed (network trouble, proxy or
    /// target down), as opposed to a setting the user must change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::TargetUnreachable { .. }
            | Self::ProxyUnreachable { .. }
            | Self::HandshakeTimeout { .. }
            | Self::Io { .. } => true,
            Self::HttpStatus { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            // general failure, network/host unreachable, refused, TTL expired
            Self::Socks5Reply { code, .. } => matches!(code, 1 | 3..=6),
            _ => false,
        }
    }

    pub(crate) fn malformed(proxy: &ProxySetting, detail: impl Into<String>) -> Self {
        Self::Malformed { proxy: proxy.addr(), detail: detail.into() }
    }

    /// An I/O error during a handshake; an early end of stream is a malformed reply.
    pub(crate) fn io(proxy: &ProxySetting, cause: io::Error, stage: &str) -> Self {
        if cause.kind() == io::ErrorKind::UnexpectedEof {
            Self::malformed(proxy, format!("the connection closed during {stage}"))
        } else {
            Self::Io { proxy: proxy.addr(), cause }
        }
    }
}

/// Opens a TCP stream to `target_host:target_port`, directly when `proxy`
/// is `None`, else through the proxy (HTTP CONNECT or SOCKS5). A DNS name
/// is resolved by the proxy; IP literals (`::1` or `[::1]`) are sent as
/// addresses. The whole connection, handshake included, must finish within
/// `timeout`. The returned stream has `TCP_NODELAY` set and carries the
/// target's bytes from its first byte on.
pub async fn connect(
    target_host: &str,
    target_port: u16,
    proxy: Option<&ProxySetting>,
    timeout: Duration,
) -> Result<TcpStream, ProxyError> {
    let deadline = Instant::now() + timeout;
    let host = settings::unbracket(target_host);
    let target = settings::host_port(host, target_port);
    let stream = match proxy {
        None => {
            debug!(%target, "connecting directly");
            dial(host, target_port, deadline, timeout)
                .await
                .map_err(|cause| ProxyError::TargetUnreachable { target, cause })?
        }
        Some(p) => {
            debug!(proxy = %p, %target, "connecting through proxy");
            let mut stream = dial(p.host(), p.port(), deadline, timeout)
                .await
                .map_err(|cause| ProxyError::ProxyUnreachable { proxy: p.addr(), cause })?;
            let handshake = async {
                match p.kind() {
                    ProxyKind::Http => http_connect::handshake(&mut stream, p, host, target_port).await,
                    ProxyKind::Socks5 | ProxyKind::Socks5h => {
                        socks5::handshake(&mut stream, p, host, target_port).await
                    }
                }
            };
            match timeout_at(deadline, handshake).await {
                Ok(result) => result?,
                Err(_) => {
                    let proxy = p.addr();
                    return Err(ProxyError::HandshakeTimeout { proxy, target, after: timeout });
                }
            }
            debug!(proxy = %p, %target, "proxy tunnel open");
            stream
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        warn!(error = %e, "cannot set TCP_NODELAY");
    }
    Ok(stream)
}

async fn dial(host: &str, port: u16, deadline: Instant, timeout: Duration) -> io::Result<TcpStream> {
    match timeout_at(deadline, TcpStream::connect((host, port))).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {}", secs(&timeout)))),
    }
}

fn secs(d: &Duration) -> String {
    format!("{} s", d.as_secs_f64())
}
