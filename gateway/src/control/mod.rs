//! An office PC's control connection: prove the key ([`login`]), then serve
//! until the connection ends, dispatching each frame to its handler in
//! [`handlers`]: register or rename the computer ID, serve, have one-time
//! passwords mailed, keep alive.

mod handlers;
mod login;

use std::net::SocketAddr;
use std::sync::Arc;

use thin_protocol::frame::FrameError;
use thin_protocol::messages::{ErrorCode, GateToServer, ServerToGate};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::info;

use crate::config::Timing;
use crate::metrics::Metrics;
use crate::otp_mail::{MailBudget, OtpMailer};
use crate::registry::MachineRegistry;
use crate::sessions::{ServerSession, Sessions};
use crate::stream::{send, GateStream};

/// What control sessions use.
#[derive(Debug, Clone)]
pub struct Control {
    /// Registered machines.
    pub registry: Arc<dyn MachineRegistry>,
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Event counters.
    pub metrics: Arc<Metrics>,
    /// Mails one-time passwords; `None` without `SmtpServerHostname`.
    pub mailer: Option<OtpMailer>,
    /// Handshake, keepalive and timeout.
    pub timing: Timing,
    /// `DisableRegister`.
    pub disable_register: bool,
    /// `MaxServerSessions`.
    pub max_sessions: usize,
    /// Fires on gateway shutdown.
    pub shutdown: CancellationToken,
}

/// The office PC of a control connection, once its key is proven.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Machine identity derived from its key.
    pub msid: String,
    /// The key hash part of the MSID.
    pub cert_hash: String,
    /// Host name it reported (printable, at most 255 characters).
    pub hostname: String,
    /// Address of the connection.
    pub addr: SocketAddr,
}

/// The state of one serving connection that handlers change.
struct Conn {
    wr: WriteHalf<GateStream>,
    /// The session while serving.
    session: Option<Arc<ServerSession>>,
    /// Queue of notices to this connection (`Incoming`, `OtpMailed`).
    notify: mpsc::Sender<GateToServer>,
    /// Cancelled when a newer session replaces this one.
    replaced: CancellationToken,
    mail_budget: MailBudget,
}

/// What a handler tells the loop.
enum Flow {
    /// Go on serving.
    Go,
    /// End the connection for this reason.
    End(String),
}

impl Conn {
    /// Sends a frame; a failed write ends the connection.
    async fn reply(&mut self, m: &GateToServer) -> Flow {
        match send(&mut self.wr, m).await {
            Ok(()) => Flow::Go,
            Err(_) => Flow::End("write failed".into()),
        }
    }
}

/// Runs a control connection to its end.
pub async fn run(
    ctl: Arc<Control>,
    tls: GateStream,
    addr: SocketAddr,
    public_key: String,
    hostname: String,
    permit: Option<OwnedSemaphorePermit>,
) {
    let Some((tls, peer)) = login::prove(&ctl, tls, addr, public_key, hostname).await else { return };
    drop(permit);

    let (rd, wr) = tokio::io::split(tls);
    let (mut frames, reader) = thin_protocol::frame::spawn_reader::<ServerToGate, _>(rd);
    let reader = AbortOnDropHandle::new(reader);
    let (notify, mut notices) = mpsc::channel::<GateToServer>(64);
    let mut conn =
        Conn { wr, session: None, notify, replaced: CancellationToken::new(), mail_budget: MailBudget::default() };
    let keepalive = ctl.timing.keepalive;
    let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let replaced = conn.replaced.clone();
    let end = loop {
        let flow = tokio::select! {
            f = frames.recv() => {
                last_heard = Instant::now();
                match f {
                    Some(Ok(m)) => dispatch(&ctl, &peer, &mut conn, m).await,
                    Some(Err(FrameError::Closed)) | None => Flow::End("closed by server".into()),
                    Some(Err(e)) => Flow::End(format!("bad frame: {e}")),
                }
            }
            Some(n) = notices.recv() => conn.reply(&n).await,
            _ = ping.tick() => {
                if last_heard.elapsed() >= ctl.timing.timeout {
                    Flow::End("timed out (no keepalive)".into())
                } else {
                    conn.reply(&GateToServer::Ping).await
                }
            }
            _ = replaced.cancelled() => Flow::End("replaced by a newer session".into()),
            _ = ctl.shutdown.cancelled() => Flow::End("gateway shutting down".into()),
        };
        if let Flow::End(reason) = flow {
            break reason;
        }
    };
    if let Some(s) = &conn.session {
        ctl.sessions.remove(s);
    }
    drop(reader);
    let _ = conn.wr.shutdown().await;
    info!(reason = %end, "server session ended");
}

/// Hands one frame to its handler.
async fn dispatch(ctl: &Control, peer: &Peer, conn: &mut Conn, m: ServerToGate) -> Flow {
    match m {
        ServerToGate::Ping => conn.reply(&GateToServer::Pong).await,
        ServerToGate::Pong => Flow::Go,
        ServerToGate::Register { pcid } => {
            let allow_new = !ctl.disable_register;
            let reply = handlers::register(&*ctl.registry, &ctl.sessions, &ctl.metrics, peer, &pcid, allow_new).await;
            if let Flow::End(e) = conn.reply(&reply).await {
                return Flow::End(e);
            }
            match &conn.session {
                Some(s) if !ctl.sessions.is_current(s) => {
                    Flow::End("renamed; the server serves again under its new ID".into())
                }
                _ => Flow::Go,
            }
        }
        ServerToGate::Serve { server_mask } => {
            match handlers::serve(&*ctl.registry, &ctl.sessions, ctl.max_sessions, peer, conn, server_mask).await {
                Ok(serving) => conn.reply(&serving).await,
                Err((refusal, reason)) => {
                    let _ = conn.reply(&refusal).await;
                    Flow::End(reason.into())
                }
            }
        }
        ServerToGate::OtpMail { request_id, to, code, system, valid_s } => {
            let pcid = conn.session.as_ref().map(|s| s.pcid.clone());
            let job = crate::otp_mail::MailJob { request_id, to, code, system, valid_s };
            let refusal =
                crate::otp_mail::dispatch(ctl.mailer.as_ref(), pcid, &mut conn.mail_budget, job, conn.notify.clone());
            match refusal {
                Some(m) => conn.reply(&m).await,
                None => Flow::Go,
            }
        }
        other @ (ServerToGate::Proof { .. } | ServerToGate::Unexpected) => {
            let message = format!("unexpected {other:?}");
            let _ = conn.reply(&GateToServer::Error { code: ErrorCode::Protocol, message }).await;
            Flow::End("protocol error".into())
        }
    }
}
