//! The start of a control connection: challenge, proof of the key, welcome.

use std::net::SocketAddr;

use rand::RngCore;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::messages::{ErrorCode, GateToServer, ServerToGate};
use tracing::debug;

use super::{Control, Peer};
use crate::stream::{refuse, GateStream};

/// Challenges the office PC to sign a nonce with the key of `public_key` and
/// welcomes it; `None` when it failed (the connection is then closed).
pub(super) async fn prove(ctl: &Control, tls: &mut GateStream, addr: SocketAddr, public_key: String) -> Option<Peer> {
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    write_frame(tls, &GateToServer::Challenge { nonce: hex::encode(nonce) }).await.ok()?;
    let msid = match tokio::time::timeout(ctl.timing.handshake, read_frame::<ServerToGate, _>(tls)).await {
        Ok(Ok(ServerToGate::Proof { signature })) => {
            match thin_protocol::identity::verify_challenge(&public_key, &nonce, &signature) {
                Ok(msid) => msid,
                Err(e) => {
                    crate::metrics::inc(&ctl.metrics.auth_failures);
                    let message = format!("key proof failed: {e}");
                    refuse::<GateToServer, _>(tls, ErrorCode::BadSignature, message).await;
                    return None;
                }
            }
        }
        Ok(Ok(other)) => {
            let message = format!("expected proof, got {other:?}");
            refuse::<GateToServer, _>(tls, ErrorCode::Protocol, message).await;
            return None;
        }
        _ => {
            debug!("no proof");
            return None;
        }
    };
    let cert_hash = msid.trim_start_matches("MSID-DESK-").to_string();
    let (keepalive_ms, timeout_ms) = ctl.timing.millis();
    let welcome =
        GateToServer::Welcome { msid: msid.clone(), pcid: ctl.registry.pcid_of(&msid), keepalive_ms, timeout_ms };
    write_frame(tls, &welcome).await.ok()?;
    Some(Peer { msid, cert_hash, hostname: addr.ip().to_string(), addr })
}
