//! One accepted connection: TLS handshake, the HTTP request, then the page,
//! or the framed protocol for servers, clients and data connections.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::RngCore;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::http;
use thin_protocol::messages::{ErrorCode, Msg};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tracing::{debug, info};

use crate::limits::IpSlot;
use crate::registry::ClientCount;
use crate::server::Gateway;

/// A TLS connection accepted by the gateway.
pub type GateStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Admission tokens of a connection: its per-IP slot and, until it is
/// established, its unestablished-connection permit.
pub type Admission = (IpSlot, Option<OwnedSemaphorePermit>);

/// Serves one connection to the end.
pub async fn handle(gw: Arc<Gateway>, tcp: TcpStream, peer: SocketAddr, admission: Admission) {
    let (slot, permit) = admission;
    let _open = crate::metrics::Open::new(&gw, |m| &m.connections_open);
    let hs = gw.cfg.handshake_timeout;
    let acceptor = tokio_rustls::TlsAcceptor::from(gw.tls());
    let opened = tokio::time::timeout(hs, async {
        let mut tls = acceptor.accept(tcp).await.map_err(|e| format!("TLS handshake: {e}"))?;
        let req = http::read_request(&mut tls).await.map_err(|e| format!("HTTP: {e}"))?;
        Ok::<_, String>((tls, req))
    })
    .await;
    let (mut tls, req) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            crate::metrics::inc(&gw.metrics.handshake_errors);
            return debug!("closed: {e}");
        }
        Err(_) => {
            crate::metrics::inc(&gw.metrics.handshake_errors);
            return debug!("closed: no request within {hs:?}");
        }
    };
    let path = req.path().to_string();
    if req.is_upgrade() && path == format!("{}connect", thin_protocol::GATE_PATH) {
        if http::write_upgrade_response(&mut tls).await.is_err() {
            return;
        }
        let first = tokio::time::timeout(hs, read_frame::<Msg, _>(&mut tls)).await;
        match first {
            Ok(Ok(Msg::ServerHello { version, public_key, hostname })) => {
                if check_version(&mut tls, version).await {
                    crate::control::run(gw, tls, peer, public_key, hostname, permit).await;
                }
            }
            Ok(Ok(Msg::ClientConnect { version, pcid })) => {
                if check_version(&mut tls, version).await {
                    client_connect(gw, tls, pcid, permit).await;
                }
            }
            Ok(Ok(Msg::Attach { version, tunnel_id })) => {
                if check_version(&mut tls, version).await {
                    attach(gw, tls, tunnel_id, slot).await;
                    return;
                }
            }
            Ok(Ok(other)) => refuse(&mut tls, ErrorCode::Protocol, format!("unexpected first message {other:?}")).await,
            Ok(Err(e)) => debug!("closed: bad first frame: {e}"),
            Err(_) => debug!("closed: no first frame within {hs:?}"),
        }
        return;
    }
    drop(permit);
    let _slot = slot;
    let (status, reason, ctype, body) = crate::thinstat::page(&gw, &req, peer);
    let _ = http::write_response(&mut tls, status, reason, ctype, body.as_bytes()).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
}

async fn check_version(tls: &mut GateStream, version: u16) -> bool {
    if version == thin_protocol::PROTOCOL_VERSION {
        return true;
    }
    let msg = format!(
        "protocol version {version} is not supported by this gateway (it speaks {}); update the app",
        thin_protocol::PROTOCOL_VERSION
    );
    refuse(tls, ErrorCode::Version, msg).await;
    false
}

/// Sends an error frame and closes.
pub async fn refuse<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, code: ErrorCode, message: String) {
    debug!(?code, %message, "refused");
    let _ = write_frame(s, &Msg::Error { code, message }).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(s).await;
}

async fn client_connect(gw: Arc<Gateway>, mut tls: GateStream, pcid: String, permit: Option<OwnedSemaphorePermit>) {
    let pcid = match thin_protocol::pcid::normalize(&pcid) {
        Ok(p) => p,
        Err(e) => return refuse(&mut tls, ErrorCode::InvalidPcid, e.to_string()).await,
    };
    let Some(session) = gw.registry.session(&pcid) else {
        return if gw.registry.is_registered(&pcid) {
            refuse(
                &mut tls,
                ErrorCode::ServerOffline,
                format!("the computer \"{pcid}\" is not connected to the gateway now"),
            )
            .await
        } else {
            refuse(&mut tls, ErrorCode::UnknownPcid, format!("no computer is registered with the ID \"{pcid}\"")).await
        };
    };
    let max = gw.cfg.max_tunnels_per_session;
    if session.num_clients.load(std::sync::atomic::Ordering::Relaxed) as usize >= max {
        return refuse(&mut tls, ErrorCode::Busy, format!("the computer \"{pcid}\" already has {max} connections"))
            .await;
    }
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    let tunnel_id = hex::encode(id);
    let (tx, rx) = oneshot::channel();
    gw.registry.add_pending(tunnel_id.clone(), tx);
    if session.tx.send(Msg::Incoming { tunnel_id: tunnel_id.clone() }).await.is_err() {
        gw.registry.take_pending(&tunnel_id);
        return refuse(&mut tls, ErrorCode::ServerOffline, format!("the computer \"{pcid}\" just went offline")).await;
    }
    let wait = gw.cfg.handshake_timeout;
    let server = match tokio::time::timeout(wait, rx).await {
        Ok(Ok(s)) => s,
        _ => {
            gw.registry.take_pending(&tunnel_id);
            let msg = format!("the computer \"{pcid}\" did not answer within {} s", wait.as_secs());
            return refuse(&mut tls, ErrorCode::Timeout, msg).await;
        }
    };
    drop(permit);
    let _count = ClientCount::new(session.clone());
    crate::metrics::inc(&gw.metrics.tunnels);
    let _open = crate::metrics::Open::new(&gw, |m| &m.tunnels_open);
    let paired = Msg::Paired {
        keepalive_ms: gw.cfg.tunnel_keepalive.as_millis() as u64,
        timeout_ms: gw.cfg.tunnel_timeout.as_millis() as u64,
    };
    let (mut server, _server_slot) = server;
    if write_frame(&mut tls, &paired).await.is_err() || write_frame(&mut server, &paired).await.is_err() {
        return;
    }
    info!(%pcid, "tunnel paired");
    let end = crate::relay::relay(tls, server, gw.cfg.tunnel_timeout, gw.traffic.clone(), gw.shutdown.clone()).await;
    info!(%pcid, ?end, "tunnel closed");
}

async fn attach(gw: Arc<Gateway>, mut tls: GateStream, tunnel_id: String, slot: IpSlot) {
    match gw.registry.take_pending(&tunnel_id) {
        Some(tx) => {
            // The client's task owns the relay from here on.
            let _ = tx.send((tls, slot));
        }
        None => refuse(&mut tls, ErrorCode::Timeout, "no client is waiting for this tunnel".into()).await,
    }
}
