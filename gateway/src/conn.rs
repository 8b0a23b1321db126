//! One accepted connection: TLS handshake, the HTTP request, then the page,
//! or the first frame, which says whether this is an office PC's control
//! connection, a client, or an office PC's data connection.

use std::net::SocketAddr;
use std::sync::Arc;

use thin_protocol::frame::read_frame;
use thin_protocol::http;
use thin_protocol::messages::{ErrorCode, GateToServer, GateToTunnel, Hello};
use thin_protocol::read_ahead::ReadAhead;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use crate::certs::Certs;
use crate::control::Control;
use crate::limits::IpSlot;
use crate::metrics::{inc, Figures, Open};
use crate::stream::{refuse, ErrorFrame, GateStream};
use crate::tunnel::Tunnels;

/// Admission tokens of a connection: its per-IP slot and, until it is
/// established, its unestablished-connection permit.
pub type Admission = (IpSlot, Option<OwnedSemaphorePermit>);

/// What a connection may be routed to.
#[derive(Debug)]
pub struct Routes {
    /// Certificate and key.
    pub certs: Arc<Certs>,
    /// Control connections.
    pub control: Arc<Control>,
    /// Client and data connections.
    pub tunnels: Tunnels,
    /// The figures the pages show.
    pub figures: Figures,
}

/// Why the head of a connection failed.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] http::HttpError),
}

/// Serves one connection to the end.
pub async fn handle(routes: Arc<Routes>, tcp: TcpStream, peer: SocketAddr, admission: Admission) {
    let (slot, permit) = admission;
    let metrics = &routes.figures.metrics;
    let _open = Open::new(metrics, |m| &m.connections_open);
    let hs = routes.control.timing.handshake;
    let acceptor = tokio_rustls::TlsAcceptor::from(routes.certs.current());
    let opened = tokio::time::timeout(hs, async {
        let mut tls = acceptor.accept(ReadAhead::new(tcp)).await.map_err(HeadError::Tls)?;
        let req = http::read_request(&mut tls).await?;
        Ok::<_, HeadError>((tls, req))
    })
    .await;
    let (mut tls, req) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            inc(&metrics.handshake_errors);
            return debug!("closed: {e}");
        }
        Err(_) => {
            inc(&metrics.handshake_errors);
            return debug!("closed: no request within {hs:?}");
        }
    };
    let path = req.path().to_string();
    if req.is_upgrade() && path == format!("{}connect", thin_protocol::GATE_PATH) {
        if http::write_upgrade_response(&mut tls).await.is_err() {
            return;
        }
        let first = tokio::time::timeout(hs, read_frame::<Hello, _>(&mut tls)).await;
        match first {
            Ok(Ok(Hello::ServerHello { version, public_key, hostname })) => {
                if check_version::<GateToServer>(&mut tls, version).await {
                    crate::control::run(routes.control.clone(), tls, peer, public_key, hostname, permit).await;
                }
            }
            Ok(Ok(Hello::ClientConnect { version, pcid, build })) => {
                if check_version::<GateToTunnel>(&mut tls, version).await {
                    crate::tunnel::client_connect(&routes.tunnels, tls, pcid, build, permit).await;
                }
            }
            Ok(Ok(Hello::Attach { version, tunnel_id })) => {
                if check_version::<GateToTunnel>(&mut tls, version).await {
                    crate::tunnel::attach(&routes.tunnels.pending, tls, tunnel_id, slot).await;
                    return;
                }
            }
            Ok(Ok(Hello::Unexpected)) => {
                let message = "unexpected first message".to_string();
                refuse::<GateToTunnel, _>(&mut tls, ErrorCode::Protocol, message).await
            }
            Ok(Err(e)) => debug!("closed: bad first frame: {e}"),
            Err(_) => debug!("closed: no first frame within {hs:?}"),
        }
        return;
    }
    drop(permit);
    let _slot = slot;
    let (status, reason, ctype, body) = crate::thinstat::page(&routes.figures, &req, peer);
    let _ = http::write_response(&mut tls, status, reason, ctype, body.as_bytes()).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
}

async fn check_version<M: ErrorFrame>(tls: &mut GateStream, version: u16) -> bool {
    if version == thin_protocol::PROTOCOL_VERSION {
        return true;
    }
    let msg = format!(
        "protocol version {version} is not supported by this gateway (it speaks {}); update the app",
        thin_protocol::PROTOCOL_VERSION
    );
    refuse::<M, _>(tls, ErrorCode::Version, msg).await;
    false
}
