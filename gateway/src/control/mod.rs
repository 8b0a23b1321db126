//! An office PC's control connection: prove the key ([`login`]), then serve
//! until the connection ends, dispatching each frame to its handler in
//! [`handlers`]: register or rename the computer ID, serve, have one-time
//! passwords mailed, keep alive, pass on wake requests ([`crate::wake`]); and
//! send the company's rules ([`crate::policy`]) after `Serving` and whenever
//! they change.

mod announce;
mod handlers;
mod login;
pub mod registration;

use std::net::SocketAddr;
use std::sync::Arc;

use thin_protocol::frame::{FrameError, FrameReader};
use thin_protocol::messages::{ErrorCode, GateToServer, ServerToGate};
use thin_protocol::policy::MASK_POLICY;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::info;

use crate::config::Timing;
use crate::metrics::Metrics;
use crate::otp_mail::{MailGate, OtpMailer};
use crate::registry::MachineRegistry;
use crate::sessions::{ServerSession, Sessions};
use crate::stream::{send, GateStream};

pub use announce::Announcer;
pub use registration::{RegisterRefusal, Registration};

/// What control sessions use.
#[derive(Debug, Clone)]
pub struct Control {
    /// Registered machines.
    pub registry: Arc<dyn MachineRegistry>,
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Where sessions are announced (the cluster's directory).
    pub announcer: Announcer,
    /// Event counters.
    pub metrics: Arc<Metrics>,
    /// Mails one-time passwords; `None` without `SmtpServerHostname`.
    pub mailer: Option<OtpMailer>,
    /// Whether a mail may go out (tickets, budgets, domains).
    pub mail_gate: Arc<MailGate>,
    /// Registration limits and token.
    pub registration: Arc<Registration>,
    /// Names of connecting addresses, shown in `/thinstat/` and `CreateHost`.
    pub host_names: Arc<crate::host_names::HostNames>,
    /// Handshake, keepalive and timeout.
    pub timing: Timing,
    /// `DisableRegister`.
    pub disable_register: bool,
    /// `MaxServerSessions`.
    pub max_sessions: usize,
    /// The company's rules and wake groups.
    pub policy: Arc<crate::policy::PolicyHolder>,
    /// Rate limits of wake requests.
    pub wake_limits: Arc<crate::wake::WakeLimits>,
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
    /// The DNS name of its address, or the address (see [`crate::host_names`]).
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
    notify: mpsc::Sender<Box<GateToServer>>,
    /// Cancelled when a newer session replaces this one.
    replaced: CancellationToken,
    /// Cancelled when a machine of higher standing took this session's place.
    evicted: CancellationToken,
    /// Cancelled when the admin disabled or removed the machine.
    ended_by_admin: CancellationToken,
    /// The office PC applies policies (it said so in `Serve`).
    applies_policy: bool,
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
///
/// The stream comes boxed and stays boxed until it is split: an async fn
/// keeps its arguments for its whole life, and this one lives as long as the
/// office PC stays connected (`an_idle_session_task_is_small`).
pub async fn run(
    ctl: Arc<Control>,
    mut tls: Box<GateStream>,
    addr: SocketAddr,
    public_key: String,
    hostname: String,
    permit: Option<OwnedSemaphorePermit>,
) {
    // The name is looked up while the key is proven; a failed proof ends
    // the connection at once (the look-up is dropped; its thread, if any,
    // ends on its own and keeps its slot until then).
    let names = ctl.host_names.clone();
    let ip = addr.ip();
    let lookup = AbortOnDropHandle::new(tokio::spawn(async move { names.name_of(ip).await }));
    // Boxed: the proof's state is freed once done, not kept for the session's life.
    let Some(mut peer) = Box::pin(login::prove(&ctl, &mut tls, addr, public_key)).await else { return };
    drop(permit);
    let shown = lookup.await.unwrap_or_else(|_| ip.to_string());
    let reported: String = hostname.chars().filter(|c| !c.is_control()).take(255).collect();
    tracing::debug!(reported_host = %reported, host = %shown, "office PC proven");
    peer.hostname = shown;

    // Frames are read here, in the session's own task, by a cancel-safe
    // reader that holds no buffer between frames: an idle office PC costs no
    // reader task and no channel of frames.
    let (mut rd, wr) = tokio::io::split(*tls);
    let mut frames = FrameReader::new();
    // Boxed notices: the channel's first block is 32 pointers, not 32 messages.
    let (notify, mut notices) = mpsc::channel::<Box<GateToServer>>(64);
    let mut conn = Conn {
        wr,
        session: None,
        notify,
        replaced: CancellationToken::new(),
        evicted: CancellationToken::new(),
        ended_by_admin: CancellationToken::new(),
        applies_policy: false,
    };
    let mut policy = ctl.policy.subscribe();
    let keepalive = ctl.timing.keepalive;
    let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let (replaced, evicted, by_admin) = (conn.replaced.clone(), conn.evicted.clone(), conn.ended_by_admin.clone());
    let end = loop {
        let flow = tokio::select! {
            f = frames.read::<ServerToGate, _>(&mut rd) => {
                last_heard = Instant::now();
                match f {
                    // Boxed, like the proof: a handler's state lives only while it runs.
                    Ok(m) => Box::pin(dispatch(&ctl, &peer, &mut conn, m)).await,
                    Err(FrameError::Closed) => Flow::End("closed by server".into()),
                    Err(e) => Flow::End(format!("bad frame: {e}")),
                }
            }
            Some(n) = notices.recv() => conn.reply(&n).await,
            Ok(()) = policy.changed() => {
                let now = policy.borrow_and_update().clone();
                handlers::policy_changed(&mut conn, &now.rules).await
            }
            _ = ping.tick() => {
                let admin_end = conn.session.as_ref().and_then(|s| handlers::ended_by_admin(&*ctl.registry, s));
                if last_heard.elapsed() >= ctl.timing.timeout {
                    Flow::End("timed out (no keepalive)".into())
                } else if let Some(message) = admin_end {
                    let _ = conn.reply(&GateToServer::Error { code: ErrorCode::NotRegistered, message }).await;
                    Flow::End("ended by the admin".into())
                } else {
                    conn.reply(&GateToServer::Ping).await
                }
            }
            _ = replaced.cancelled() => Flow::End("replaced by a newer session".into()),
            _ = evicted.cancelled() => {
                let message = format!(
                    "this gateway is full (MaxServerSessions {}) and gave this computer's place to one that served \
                     here before it; ask the gateway admin",
                    ctl.max_sessions
                );
                let _ = conn.reply(&GateToServer::Error { code: ErrorCode::Busy, message }).await;
                Flow::End("gave its place to a machine of higher standing".into())
            }
            _ = by_admin.cancelled() => {
                let message = conn.session.as_ref().and_then(|s| s.admin_reason.get().cloned()).unwrap_or_default();
                let _ = conn.reply(&GateToServer::Error { code: ErrorCode::NotRegistered, message }).await;
                Flow::End("ended by the admin".into())
            }
            _ = ctl.shutdown.cancelled() => Flow::End("gateway shutting down".into()),
        };
        if let Flow::End(reason) = flow {
            break reason;
        }
    };
    if let Some(s) = &conn.session {
        ctl.sessions.remove(s);
        ctl.announcer.withdraw(s).await;
    }
    drop(rd);
    let _ = conn.wr.shutdown().await;
    info!(reason = %end, "server session ended");
}

/// Hands one frame to its handler.
async fn dispatch(ctl: &Control, peer: &Peer, conn: &mut Conn, m: ServerToGate) -> Flow {
    match m {
        ServerToGate::Ping => conn.reply(&GateToServer::Pong).await,
        ServerToGate::Pong => Flow::Go,
        ServerToGate::Register { pcid, token } => {
            let allow_new = !ctl.disable_register;
            let rules = (&*ctl.registration, token.as_ref());
            let reply =
                handlers::register(&*ctl.registry, &ctl.sessions, &ctl.metrics, rules, peer, &pcid, allow_new).await;
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
        ServerToGate::Serve { server_mask, policy, macs } => {
            let macs = match handlers::check_macs(&macs) {
                Ok(m) => m,
                Err(message) => {
                    let _ = conn.reply(&GateToServer::Error { code: ErrorCode::Protocol, message }).await;
                    return Flow::End("bad MAC address list".into());
                }
            };
            let rules = ctl.policy.current().rules.clone();
            if !policy && !rules.is_empty() {
                let message = "this gateway enforces the company's policy (ThinGatePolicy.ini), which this version of \
                               ThinServer cannot apply; update ThinServer"
                    .to_string();
                let _ = conn.reply(&GateToServer::Error { code: ErrorCode::Version, message }).await;
                return Flow::End("office PC cannot apply the policy".into());
            }
            conn.applies_policy = policy;
            let mask = if policy && !rules.is_empty() { server_mask | MASK_POLICY } else { server_mask };
            let flow = match handlers::serve(
                &*ctl.registry,
                &ctl.sessions,
                &ctl.announcer,
                &ctl.metrics,
                ctl.max_sessions,
                peer,
                conn,
                mask,
            )
            .await
            {
                Ok(serving) => conn.reply(&serving).await,
                Err((refusal, reason)) => {
                    let _ = conn.reply(&refusal).await;
                    Flow::End(reason.into())
                }
            };
            if let Flow::End(e) = flow {
                return Flow::End(e);
            }
            ctl.registry.note_wol_macs(&peer.msid, &macs).await;
            if policy {
                conn.reply(&GateToServer::Policy { policy: rules }).await
            } else {
                Flow::Go
            }
        }
        ServerToGate::Wake { request_id, pcid } => {
            let ask =
                crate::wake::WakeAsk { request_id, asker: conn.session.as_ref().map(|s| &*s.pcid), target: &pcid };
            let answer = crate::wake::answer(&ctl.policy.current(), &*ctl.registry, &ctl.wake_limits, ask);
            conn.reply(&answer).await
        }
        ServerToGate::OtpMail { request_id, to, code, system: _, valid_s } => {
            // The office PC's `system` text is ignored: the mail is the gateway's.
            let who = crate::otp_mail::Requester { msid: &peer.msid, pcid: conn.session.as_ref().map(|s| &*s.pcid) };
            let job = crate::otp_mail::MailJob { request_id, to, code, valid_s };
            let refusal = crate::otp_mail::dispatch(ctl.mailer.as_ref(), &ctl.mail_gate, who, job, conn.notify.clone());
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

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async fn of six arguments returns.
    fn future_size<A, B, C, D, E, G, F: Future>(_: impl Fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// An office PC's session lives for hours in this future, once per office
    /// PC: it must not hold the TLS stream inline (3.7 KiB when it did) nor a
    /// handler's state (`relay` bench: gateway memory per idle session).
    #[test]
    fn an_idle_session_task_is_small() {
        let n = future_size(super::run);
        eprintln!("control::run future: {n} bytes");
        assert!(n <= 1536, "control::run's future is {n} bytes");
    }
}
