//! Connecting to the gateway: TCP (directly or through a proxy), TLS pinned to
//! the entry point's CA, then the HTTP upgrade to frames.
//!
//! A cluster's entry point lists several gateways: [`Link::open`] tries them
//! in order, starting with the one that answered last, and the apps' usual
//! backoff runs between whole rounds. A gateway may redirect a client to the
//! member its computer is online at ([`Link::open_redirect`]): only to an
//! `https://` URL, through the same TLS pinned to the same CA, so a gateway
//! (or anyone) can send the app only to a host holding a certificate from the
//! company's CA, and at most [`MAX_REDIRECTS`] times per attempt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use thin_protocol::entry_point::{EntryPoint, GatewayUrl, GatewayUrlError};
use thin_protocol::http;
use thin_protocol::messages::ErrorCode;
use thin_protocol::read_ahead::ReadAhead;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tracing::{info, warn};

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
    /// A gateway's redirect was not followed.
    #[error("the gateway {from} sent the app to {to:?}, which it does not follow: {why}")]
    Redirect {
        /// The gateway that redirected (host:port).
        from: String,
        /// Where it pointed.
        to: String,
        /// Why not.
        why: RedirectRefused,
    },
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    /// Not an `https://` gateway URL.
    #[error(transparent)]
    BadUrl(#[from] GatewayUrlError),
    /// More redirects in a row than [`MAX_REDIRECTS`].
    #[error("more than {MAX_REDIRECTS} redirects in a row")]
    TooMany,
}

/// Redirects followed in one attempt to reach a computer: one to the member
/// it is online at, one more if it moved meanwhile; never a loop.
pub const MAX_REDIRECTS: usize = 2;

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
    /// Position in the entry point's list of the gateway that answered last;
    /// shared by the clones, so every connection of the app starts there.
    last_good: Arc<AtomicUsize>,
}

impl Link {
    /// Builds a link for an entry point.
    pub fn new(entry: EntryPoint, proxy: Option<crate::proxy::ProxySetting>) -> Result<Self, LinkError> {
        let tls = thin_protocol::tls::client_config(&entry.ca)
            .map_err(|e| LinkError::Tls { addr: entry.url.authority(), cause: TlsFailure::CaRefused(e.to_string()) })?;
        Ok(Self { entry, tls, proxy, timeout: Duration::from_secs(15), last_good: Arc::default() })
    }

    /// Opens a connection and upgrades it; frames may follow. With several
    /// gateways, tries each once, in order from the one that answered last;
    /// the first one's error when none answers.
    pub async fn open(&self) -> Result<LinkStream, LinkError> {
        self.open_any().await.map(|(s, _)| s)
    }

    /// [`Link::open`], and which gateway answered.
    pub async fn open_any(&self) -> Result<(LinkStream, GatewayUrl), LinkError> {
        let urls: Vec<&GatewayUrl> = self.entry.urls().collect();
        let start = self.last_good.load(Ordering::Relaxed) % urls.len();
        let mut first_error = None;
        for i in (0..urls.len()).map(|k| (start + k) % urls.len()) {
            match self.open_url(urls[i]).await {
                Ok(s) => {
                    if i != start {
                        info!(gateway = %urls[i], "reached the gateway");
                    }
                    self.last_good.store(i, Ordering::Relaxed);
                    return Ok((s, urls[i].clone()));
                }
                Err(e) => {
                    if urls.len() > 1 {
                        warn!(gateway = %urls[i], "{e}; trying the next gateway");
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("an entry point has a URL"))
    }

    /// Starts the next [`Link::open`] with the gateway after the one that
    /// answered last: a session to it was lost, and a dead host would cost a
    /// whole connect timeout before the others are tried.
    pub fn move_on(&self) {
        let n = self.entry.alternates.len() + 1;
        let next = (self.last_good.load(Ordering::Relaxed) + 1) % n;
        self.last_good.store(next, Ordering::Relaxed);
    }

    /// A link that reaches only `url`, with the same CA, proxy and timeout:
    /// an office PC's data connections go to the gateway its session is at.
    pub fn pinned_to(&self, url: GatewayUrl) -> Link {
        let entry = EntryPoint { url, alternates: Vec::new(), ..self.entry.clone() };
        Link { entry, last_good: Arc::default(), ..self.clone() }
    }

    /// Follows a redirect from the gateway `from` to `to` after `done`
    /// redirects in this attempt: checks the URL (`https://` only) and the
    /// count, then opens it with the same pinned TLS.
    pub async fn open_redirect(
        &self,
        from: &str,
        to: &str,
        done: usize,
    ) -> Result<(LinkStream, GatewayUrl), LinkError> {
        let refused = |why| LinkError::Redirect { from: from.into(), to: to.into(), why };
        if done >= MAX_REDIRECTS {
            return Err(refused(RedirectRefused::TooMany));
        }
        let url = GatewayUrl::parse(to).map_err(|e| refused(e.into()))?;
        info!(%from, to = %url, "the gateway redirects to the member the computer is online at");
        let s = self.open_url(&url).await?;
        Ok((s, url))
    }

    /// Opens a connection to `url` and upgrades it.
    pub async fn open_url(&self, url: &GatewayUrl) -> Result<LinkStream, LinkError> {
        let addr = url.authority();
        let tcp = crate::proxy::connect(&url.host, url.port, self.proxy.as_ref(), self.timeout)
            .await
            .map_err(|e| LinkError::Unreachable { addr: addr.clone(), cause: e.to_string() })?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| LinkError::Tls { addr: addr.clone(), cause: TlsFailure::BadHostName(e.to_string()) })?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let mut tls = tokio::time::timeout(self.timeout, connector.connect(name, ReadAhead::tracking(tcp)))
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
