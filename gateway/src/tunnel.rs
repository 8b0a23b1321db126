//! Tunnels: a client asks for a computer (`ClientConnect`), the gateway tells
//! the office PC's session (`Incoming`), the office PC's data connection
//! attaches (`Attach`), and the two are paired and relayed.
//!
//! A tunnel counts on its session from the client's request on (waiting or
//! relaying, at most `MaxTunnelsPerSession`); a wait ends after
//! `HandshakeTimeout`, and a paired tunnel in which neither side sends for
//! `TunnelTimeout` is closed ([`crate::relay`]).

use std::sync::Arc;

use thin_protocol::frame::write_frame;
use thin_protocol::messages::{ErrorCode, GateToServer, GateToTunnel};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Timing;
use crate::limits::IpSlot;
use crate::metrics::{inc, Metrics, Open};
use crate::otp_mail::MailGate;
use crate::pairing::Pairing;
use crate::registry::{MachineRegistry, SessionDirectory};
use crate::relay::Traffic;
use crate::sessions::{ClientCount, Sessions};
use crate::stream::{refuse, GateStream};

/// A data connection handed to the waiting client.
#[derive(Debug)]
pub struct DataEnd {
    /// The office PC's connection.
    pub tls: GateStream,
    /// The office PC can take bare records after the login.
    pub bare_records: bool,
    /// Its per-IP slot, held while the tunnel lasts.
    pub slot: IpSlot,
}

/// Client connections waiting for their data connection.
pub type PendingTunnels = Pairing<DataEnd>;

/// What tunnel handlers use.
#[derive(Debug, Clone)]
pub struct Tunnels {
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Registered machines (to word a refusal, to count clients).
    pub registry: Arc<dyn MachineRegistry>,
    /// Where office PCs are online in the cluster (a lone gateway's own table).
    pub directory: Arc<dyn SessionDirectory>,
    /// This member's `ClusterPublicUrl` (empty for a standalone gateway): an
    /// announcement naming it, without a session here, is stale.
    pub public_url: Arc<str>,
    /// Waiting tunnels.
    pub pending: Arc<PendingTunnels>,
    /// Event counters.
    pub metrics: Arc<Metrics>,
    /// Relayed bytes.
    pub traffic: Arc<Traffic>,
    /// Traffic secrets of recent handshakes, so a relay can follow key updates.
    pub secrets: Arc<crate::relay::HandshakeSecrets>,
    /// The tunnels relaying now, for the admin console.
    pub live: Arc<crate::live::LiveTunnels>,
    /// Each client tunnel may have one OTP mail sent for its login.
    pub mail_gate: Arc<MailGate>,
    /// `MaxTunnelsPerSession`.
    pub max_per_session: usize,
    /// `REQUIRE_MINIMUM_CLIENT_BUILD` of the company's rules.
    pub policy: Arc<crate::policy::PolicyHolder>,
    /// Handshake, keepalive and timeout.
    pub timing: Timing,
    /// Fires on gateway shutdown.
    pub shutdown: CancellationToken,
}

async fn refuse_client(tls: &mut GateStream, code: ErrorCode, message: String) {
    refuse::<GateToTunnel, _>(tls, code, message).await
}

/// What a client asked for in its `ClientConnect`.
#[derive(Debug, Clone)]
pub struct ClientAsk {
    /// Computer ID, as typed.
    pub pcid: String,
    /// The app's build number, if it said.
    pub build: Option<u32>,
    /// The app follows [`GateToTunnel::Redirect`].
    pub follows_redirect: bool,
    /// The app can take bare records after the login.
    pub bare_records: bool,
}

/// Where a computer not online here is, for the client's answer.
enum Elsewhere {
    /// Online at this other member of the cluster.
    At(String),
    /// Not online anywhere the directory knows of.
    Nowhere,
    /// The directory could not be asked (etcd unreachable).
    Unknown,
}

async fn elsewhere(t: &Tunnels, pcid: &str) -> Elsewhere {
    match t.directory.locate(pcid).await {
        Ok(Some(p)) if !p.gateway.is_empty() && p.gateway != *t.public_url => Elsewhere::At(p.gateway),
        Ok(_) => Elsewhere::Nowhere,
        Err(e) => {
            warn!(%pcid, error = %e, "cannot look the computer up in the cluster directory");
            Elsewhere::Unknown
        }
    }
}

/// `ClientConnect`: finds the computer, waits for its data connection, relays;
/// a computer online at another member of the cluster is answered with a
/// redirect there (docs/cluster.md).
pub async fn client_connect(
    t: &Tunnels,
    mut tls: GateStream,
    client: std::net::IpAddr,
    ask: ClientAsk,
    permit: Option<OwnedSemaphorePermit>,
) {
    let ClientAsk { pcid, build, follows_redirect, bare_records } = ask;
    if let Some(min) = t.policy.current().rules.min_client_build {
        let build = build.unwrap_or(0);
        if build < min {
            let message = format!(
                "this company requires ThinClient build {min} or later, and this is build {build}; \
                 update ThinClient (ask your IT admin for the current installer)"
            );
            return refuse_client(&mut tls, ErrorCode::Version, message).await;
        }
    }
    let pcid = match thin_protocol::pcid::normalize(&pcid) {
        Ok(p) => p,
        Err(e) => return refuse_client(&mut tls, ErrorCode::InvalidPcid, e.to_string()).await,
    };
    let Some(session) = t.sessions.get(&pcid) else {
        return if t.registry.is_registered(&pcid) {
            match elsewhere(t, &pcid).await {
                Elsewhere::At(gateway) if follows_redirect => {
                    info!(%pcid, %gateway, "client redirected to the member the computer is online at");
                    inc(&t.metrics.redirects);
                    let _ = write_frame(&mut tls, &GateToTunnel::Redirect { gateway }).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                }
                Elsewhere::At(gateway) => {
                    let message = format!(
                        "the computer \"{pcid}\" is connected to another gateway of the cluster ({gateway}); \
                         update the app, or connect there"
                    );
                    refuse_client(&mut tls, ErrorCode::ServerOffline, message).await
                }
                Elsewhere::Nowhere => {
                    let message = format!("the computer \"{pcid}\" is not connected to the gateway now");
                    refuse_client(&mut tls, ErrorCode::ServerOffline, message).await
                }
                Elsewhere::Unknown => {
                    let message = format!(
                        "the computer \"{pcid}\" is not connected to this gateway, and the cluster's directory \
                         cannot be reached to find it; try again later"
                    );
                    refuse_client(&mut tls, ErrorCode::ServerOffline, message).await
                }
            }
        } else {
            let message = format!("no computer is registered with the ID \"{pcid}\"");
            refuse_client(&mut tls, ErrorCode::UnknownPcid, message).await
        };
    };
    if t.registry.is_disabled(&session.msid) {
        let message = format!("the computer \"{pcid}\" has been disabled by the gateway admin");
        return refuse_client(&mut tls, ErrorCode::ServerOffline, message).await;
    }
    let max = t.max_per_session;
    let Some(_count) = ClientCount::try_new(session.clone(), max) else {
        let message = format!("the computer \"{pcid}\" already has {max} connections");
        return refuse_client(&mut tls, ErrorCode::Busy, message).await;
    };
    let _ticket = t.mail_gate.open_ticket(&pcid);
    let waiting = t.pending.expect();
    // The session's queue is bounded; a session that does not read it is not
    // waited for.
    let incoming = Box::new(GateToServer::Incoming { tunnel_id: waiting.id().to_string() });
    if let Err(e) = session.tx.try_send(incoming) {
        drop(waiting);
        let (code, message) = match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => {
                (ErrorCode::Busy, format!("the computer \"{pcid}\" is not taking new connections now; try again"))
            }
            tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                (ErrorCode::ServerOffline, format!("the computer \"{pcid}\" just went offline"))
            }
        };
        return refuse_client(&mut tls, code, message).await;
    }
    let wait = t.timing.handshake;
    let Some(DataEnd { tls: mut server, bare_records: server_bare, slot: _server_slot }) = waiting.within(wait).await
    else {
        let message = format!("the computer \"{pcid}\" did not answer within {} s", wait.as_secs());
        return refuse_client(&mut tls, ErrorCode::Timeout, message).await;
    };
    drop(permit);
    inc(&t.metrics.tunnels);
    let _open = Open::new(&t.metrics, |m| &m.tunnels_open);
    let (keepalive_ms, timeout_ms) = t.timing.millis();
    let bare_records = bare_records && server_bare && crate::relay::in_place(&tls, &server);
    let paired = GateToTunnel::Paired { keepalive_ms, timeout_ms, bare_records };
    if write_frame(&mut tls, &paired).await.is_err() || write_frame(&mut server, &paired).await.is_err() {
        return;
    }
    info!(%pcid, "tunnel paired");
    t.registry.note_client(&session.msid).await;
    let listed = t.live.open(&pcid, client, t.shutdown.child_token());
    let counters = (t.traffic.clone(), listed.tunnel.bytes.clone());
    let end = crate::relay::relay_tls(
        (tls, server),
        &t.secrets,
        t.timing.timeout,
        counters,
        listed.tunnel.cut.clone(),
        bare_records,
    )
    .await;
    info!(%pcid, ?end, "tunnel closed");
}

/// `Attach`: hands the office PC's data connection to the waiting client.
pub async fn attach(pending: &PendingTunnels, end: DataEnd, tunnel_id: String) {
    // The client's task owns the relay from here on.
    if let Err(DataEnd { mut tls, .. }) = pending.attach(&tunnel_id, end) {
        refuse_client(&mut tls, ErrorCode::Timeout, "no client is waiting for this tunnel".into()).await;
    }
}
