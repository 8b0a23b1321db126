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
    /// The admin console (`/thinadmin/`).
    pub admin: Arc<crate::admin::Admin>,
}

/// Why the head of a connection failed.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] http::HttpError),
}

/// What a connection turned out to be, once its head was read.
///
/// The TLS stream is boxed (it is 1.3 KiB): a role is held by the
/// connection's task while the role's future runs, and an async fn keeps its
/// arguments for its whole life, so a stream passed inline would be paid for
/// twice or three times for as long as an office PC stays connected.
enum Role {
    /// An office PC's control connection (the per-IP slot held to its end).
    Control {
        tls: Box<GateStream>,
        public_key: String,
        hostname: String,
        permit: Option<OwnedSemaphorePermit>,
        slot: IpSlot,
    },
    /// A client asking for an office PC.
    Client {
        tls: Box<GateStream>,
        pcid: String,
        build: Option<u32>,
        follows_redirect: bool,
        bare_records: bool,
        permit: Option<OwnedSemaphorePermit>,
        slot: IpSlot,
    },
    /// An office PC's data connection.
    Attach { tls: Box<GateStream>, tunnel_id: String, bare_records: bool, slot: IpSlot },
    /// Answered (a page, a refusal) or closed.
    Done,
}

/// Serves one connection to the end.
///
/// The head (TLS handshake, request, first frame) runs in a future of its
/// own that is freed once it is read, and each role's future is boxed: this
/// task then holds a few hundred bytes for its whole life instead of the
/// largest state of every role (13 KiB), which an idle office PC's session
/// paid for hours.
pub async fn handle(routes: Arc<Routes>, tcp: TcpStream, peer: SocketAddr, admission: Admission) {
    let _open = Open::new(&routes.figures.metrics, |m| &m.connections_open);
    let role = Box::pin(head(&routes, tcp, peer, admission)).await;
    match role {
        Role::Control { tls, public_key, hostname, permit, slot: _slot } => {
            Box::pin(crate::control::run(routes.control.clone(), tls, peer, public_key, hostname, permit)).await
        }
        Role::Client { tls, pcid, build, follows_redirect, bare_records, permit, slot: _slot } => {
            let ask = crate::tunnel::ClientAsk { pcid, build, follows_redirect, bare_records };
            Box::pin(crate::tunnel::client_connect(&routes.tunnels, *tls, peer.ip(), ask, permit)).await
        }
        Role::Attach { tls, tunnel_id, bare_records, slot } => {
            let end = crate::tunnel::DataEnd { tls: *tls, bare_records, slot };
            Box::pin(crate::tunnel::attach(&routes.tunnels.pending, end, tunnel_id)).await
        }
        Role::Done => {}
    }
}

/// Reads a connection's head and answers what it can itself (pages,
/// refusals); returns the role that carries on.
async fn head(routes: &Routes, tcp: TcpStream, peer: SocketAddr, (slot, permit): Admission) -> Role {
    let metrics = &routes.figures.metrics;
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
            debug!("closed: {e}");
            return Role::Done;
        }
        Err(_) => {
            inc(&metrics.handshake_errors);
            debug!("closed: no request within {hs:?}");
            return Role::Done;
        }
    };
    let path = req.path().to_string();
    if req.is_upgrade() && path == format!("{}connect", thin_protocol::GATE_PATH) {
        if http::write_upgrade_response(&mut tls).await.is_err() {
            return Role::Done;
        }
        let first = tokio::time::timeout(hs, read_frame::<Hello, _>(&mut tls)).await;
        match first {
            Ok(Ok(Hello::ServerHello { version, public_key, hostname })) => {
                if check_version::<GateToServer>(&mut tls, version).await {
                    return Role::Control { tls: Box::new(tls), public_key, hostname, permit, slot };
                }
            }
            Ok(Ok(Hello::ClientConnect { version, pcid, build, follows_redirect, bare_records })) => {
                if check_version::<GateToTunnel>(&mut tls, version).await {
                    let tls = Box::new(tls);
                    return Role::Client { tls, pcid, build, follows_redirect, bare_records, permit, slot };
                }
            }
            Ok(Ok(Hello::Attach { version, tunnel_id, bare_records })) => {
                if check_version::<GateToTunnel>(&mut tls, version).await {
                    return Role::Attach { tls: Box::new(tls), tunnel_id, bare_records, slot };
                }
            }
            Ok(Ok(Hello::Unexpected)) => {
                let message = "unexpected first message".to_string();
                refuse::<GateToTunnel, _>(&mut tls, ErrorCode::Protocol, message).await
            }
            Ok(Err(e)) => debug!("closed: bad first frame: {e}"),
            Err(_) => debug!("closed: no first frame within {hs:?}"),
        }
        return Role::Done;
    }
    drop(permit);
    let _slot = slot;
    if crate::admin::is_admin_path(&path) {
        let r = routes.admin.answer(&req, peer).await;
        let body = if req.method == "HEAD" { &[][..] } else { &r.body[..] };
        let _ = http::write_response_with(&mut tls, r.status, r.reason, r.content_type, &r.headers(), body).await;
    } else {
        let (status, reason, ctype, body) = crate::thinstat::answer(&routes.figures, &req, peer).await;
        let _ = http::write_response(&mut tls, status, reason, ctype, body.as_bytes()).await;
    }
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
    Role::Done
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

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async fn of four arguments returns.
    fn future_size<A, B, C, D, F: Future>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection's task holds this future for its whole life, an idle
    /// office PC's for hours: it must not hold a role's state inline
    /// (`relay` bench: gateway memory per idle session).
    #[test]
    fn a_connection_task_is_small() {
        let n = future_size(super::handle);
        eprintln!("conn::handle future: {n} bytes");
        assert!(n <= 512, "conn::handle's future is {n} bytes");
    }
}
