//! Connecting to the gateway: TCP (directly or through a proxy), TLS pinned to
//! the entry point's CA, then the HTTP upgrade to frames.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use thin_protocol::entry_point::EntryPoint;
use thin_protocol::http;
use thin_protocol::messages::ErrorCode;
use thin_protocol::read_ahead::ReadAhead;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use crate::tls_failure::TlsFailure;

/// A TLS connection to the gateway after the upgrade (its socket read ahead
/// during bursts, [`ReadAhead`]).
pub type LinkStream = TlsStream<ReadAhead<TcpStream>>;

/// Why the gateway could not be reached or refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// TCP connect failed.
    #[error("cannot reach the gateway {addr}: {cause}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Cause.
        cause: String,
    },
    /// TLS failed (untrusted or expired certificate, ...).
    #[error("cannot open a secure connection to the gateway {addr}: {cause}")]
    Tls {
        /// host:port.
        addr: String,
        /// Why.
        cause: TlsFailure,
    },
    /// The gateway answered something other than the upgrade.
    #[error("the gateway {addr} answered HTTP {status} instead of opening a tunnel; is this the right URL?")]
    Http {
        /// host:port.
        addr: String,
        /// Status code.
        status: u16,
    },
    /// The gateway or the server refused.
    #[error("{message}")]
    Refused {
        /// Code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The peer broke the protocol or the connection dropped.
    #[error("connection to the gateway lost: {0}")]
    Lost(String),
}

/// Everything needed to reach the gateway.
#[derive(Clone, Debug)]
pub struct Link {
    /// Entry point in force.
    pub entry: EntryPoint,
    tls: Arc<rustls::ClientConfig>,
    /// Proxy to use, if any.
    pub proxy: Option<crate::proxy::ProxySetting>,
    /// Connect timeout.
    pub timeout: Duration,
}

impl Link {
    /// Builds a link for an entry point.
    pub fn new(entry: EntryPoint, proxy: Option<crate::proxy::ProxySetting>) -> Result<Self, LinkError> {
        let tls = thin_protocol::tls::client_config(&entry.ca)
            .map_err(|e| LinkError::Tls { addr: entry.url.authority(), cause: TlsFailure::CaRefused(e.to_string()) })?;
        Ok(Self { entry, tls, proxy, timeout: Duration::from_secs(15) })
    }

    /// Opens a connection and upgrades it; frames may follow.
    pub async fn open(&self) -> Result<LinkStream, LinkError> {
        let url = &self.entry.url;
        let addr = url.authority();
        let tcp = crate::proxy::connect(&url.host, url.port, self.proxy.as_ref(), self.timeout)
            .await
            .map_err(|e| LinkError::Unreachable { addr: addr.clone(), cause: e.to_string() })?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| LinkError::Tls { addr: addr.clone(), cause: TlsFailure::BadHostName(e.to_string()) })?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let mut tls = tokio::time::timeout(self.timeout, connector.connect(name, ReadAhead::new(tcp)))
            .await
            .map_err(|_| LinkError::Tls { addr: addr.clone(), cause: TlsFailure::Timeout })?
            .map_err(|e| LinkError::Tls { addr: addr.clone(), cause: TlsFailure::of_connect_error(&e) })?;
        let resp = tokio::time::timeout(self.timeout, async {
            http::write_upgrade_request(&mut tls, &url.host).await.map_err(|e| e.to_string())?;
            http::read_response(&mut tls).await.map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| LinkError::Lost("no answer to the upgrade request".into()))?
        .map_err(LinkError::Lost)?;
        if resp.status != 101 {
            return Err(LinkError::Http { addr, status: resp.status });
        }
        Ok(tls)
    }
}
