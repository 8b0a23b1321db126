//! Tunnels: a client asks for a computer (`ClientConnect`), the gateway tells
//! the office PC's session (`Incoming`), the office PC's data connection
//! attaches (`Attach`), and the two are paired and relayed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use thin_protocol::frame::write_frame;
use thin_protocol::messages::{ErrorCode, GateToServer, GateToTunnel};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Timing;
use crate::limits::IpSlot;
use crate::metrics::{inc, Metrics, Open};
use crate::pairing::Pairing;
use crate::registry::MachineRegistry;
use crate::relay::Traffic;
use crate::sessions::{ClientCount, Sessions};
use crate::stream::{refuse, GateStream};

/// A data connection handed to the waiting client, with its per-IP slot.
pub type DataEnd = (GateStream, IpSlot);

/// Client connections waiting for their data connection.
pub type PendingTunnels = Pairing<DataEnd>;

/// What tunnel handlers use.
#[derive(Debug, Clone)]
pub struct Tunnels {
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Registered machines (to word a refusal).
    pub registry: Arc<dyn MachineRegistry>,
    /// Waiting tunnels.
    pub pending: Arc<PendingTunnels>,
    /// Event counters.
    pub metrics: Arc<Metrics>,
    /// Relayed bytes.
    pub traffic: Arc<Traffic>,
    /// `MaxTunnelsPerSession`.
    pub max_per_session: usize,
    /// Handshake, keepalive and timeout.
    pub timing: Timing,
    /// Fires on gateway shutdown.
    pub shutdown: CancellationToken,
}

async fn refuse_client(tls: &mut GateStream, code: ErrorCode, message: String) {
    refuse::<GateToTunnel, _>(tls, code, message).await
}

/// `ClientConnect`: finds the computer, waits for its data connection, relays.
pub async fn client_connect(t: &Tunnels, mut tls: GateStream, pcid: String, permit: Option<OwnedSemaphorePermit>) {
    let pcid = match thin_protocol::pcid::normalize(&pcid) {
        Ok(p) => p,
        Err(e) => return refuse_client(&mut tls, ErrorCode::InvalidPcid, e.to_string()).await,
    };
    let Some(session) = t.sessions.get(&pcid) else {
        return if t.registry.is_registered(&pcid) {
            let message = format!("the computer \"{pcid}\" is not connected to the gateway now");
            refuse_client(&mut tls, ErrorCode::ServerOffline, message).await
        } else {
            let message = format!("no computer is registered with the ID \"{pcid}\"");
            refuse_client(&mut tls, ErrorCode::UnknownPcid, message).await
        };
    };
    let max = t.max_per_session;
    if session.num_clients.load(Ordering::Relaxed) as usize >= max {
        let message = format!("the computer \"{pcid}\" already has {max} connections");
        return refuse_client(&mut tls, ErrorCode::Busy, message).await;
    }
    let waiting = t.pending.expect();
    if session.tx.send(GateToServer::Incoming { tunnel_id: waiting.id().to_string() }).await.is_err() {
        drop(waiting);
        let message = format!("the computer \"{pcid}\" just went offline");
        return refuse_client(&mut tls, ErrorCode::ServerOffline, message).await;
    }
    let wait = t.timing.handshake;
    let Some((mut server, _server_slot)) = waiting.within(wait).await else {
        let message = format!("the computer \"{pcid}\" did not answer within {} s", wait.as_secs());
        return refuse_client(&mut tls, ErrorCode::Timeout, message).await;
    };
    drop(permit);
    let _count = ClientCount::new(session.clone());
    inc(&t.metrics.tunnels);
    let _open = Open::new(&t.metrics, |m| &m.tunnels_open);
    let (keepalive_ms, timeout_ms) = t.timing.millis();
    let paired = GateToTunnel::Paired { keepalive_ms, timeout_ms };
    if write_frame(&mut tls, &paired).await.is_err() || write_frame(&mut server, &paired).await.is_err() {
        return;
    }
    info!(%pcid, "tunnel paired");
    let end = crate::relay::relay(tls, server, t.timing.timeout, t.traffic.clone(), t.shutdown.clone()).await;
    info!(%pcid, ?end, "tunnel closed");
}

/// `Attach`: hands the office PC's data connection to the waiting client.
pub async fn attach(pending: &PendingTunnels, tls: GateStream, tunnel_id: String, slot: IpSlot) {
    // The client's task owns the relay from here on.
    if let Err((mut tls, _slot)) = pending.attach(&tunnel_id, (tls, slot)) {
        refuse_client(&mut tls, ErrorCode::Timeout, "no client is waiting for this tunnel".into()).await;
    }
}
