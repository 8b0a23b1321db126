//! An office PC's control connection: prove the key, register or rename the
//! computer ID, then serve: receive `Incoming` notices, have one-time
//! passwords mailed (`OtpMail`), and keep alive.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::RngCore;
use thin_protocol::frame::{read_frame, write_frame, FrameError};
use thin_protocol::messages::{ErrorCode, Msg};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::conn::{refuse, GateStream};
use crate::registry::{now_ms, ServerSession};
use crate::server::Gateway;

/// Runs a control connection to its end.
pub async fn run(
    gw: Arc<Gateway>,
    mut tls: GateStream,
    peer: SocketAddr,
    public_key: String,
    hostname: String,
    permit: Option<OwnedSemaphorePermit>,
) {
    let hs = gw.cfg.handshake_timeout;
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    if write_frame(&mut tls, &Msg::Challenge { nonce: hex::encode(nonce) }).await.is_err() {
        return;
    }
    let msid = match tokio::time::timeout(hs, read_frame::<Msg, _>(&mut tls)).await {
        Ok(Ok(Msg::Proof { signature })) => {
            match thin_protocol::identity::verify_challenge(&public_key, &nonce, &signature) {
                Ok(msid) => msid,
                Err(e) => {
                    crate::metrics::inc(&gw.metrics.auth_failures);
                    return refuse(&mut tls, ErrorCode::BadSignature, format!("key proof failed: {e}")).await;
                }
            }
        }
        Ok(Ok(other)) => return refuse(&mut tls, ErrorCode::Protocol, format!("expected proof, got {other:?}")).await,
        _ => return debug!("no proof"),
    };
    let hostname: String = hostname.chars().filter(|c| !c.is_control()).take(255).collect();
    let cert_hash = msid.trim_start_matches("MSID-DESK-").to_string();
    let welcome = Msg::Welcome {
        msid: msid.clone(),
        pcid: gw.registry.pcid_of(&msid),
        keepalive_ms: gw.cfg.tunnel_keepalive.as_millis() as u64,
        timeout_ms: gw.cfg.tunnel_timeout.as_millis() as u64,
    };
    if write_frame(&mut tls, &welcome).await.is_err() {
        return;
    }
    drop(permit);

    let (rd, mut wr) = tokio::io::split(tls);
    let (mut frames, reader) = thin_protocol::frame::spawn_reader::<Msg, _>(rd);
    let (notify_tx, mut notify) = mpsc::channel::<Msg>(64);
    let mut session: Option<Arc<ServerSession>> = None;
    let replaced = CancellationToken::new();
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + gw.cfg.tunnel_keepalive, gw.cfg.tunnel_keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut mail_budget = crate::otp_mail::MailBudget::default();
    let end = loop {
        tokio::select! {
            f = frames.recv() => {
                last_heard = tokio::time::Instant::now();
                let msg = match f {
                    Some(Ok(m)) => m,
                    Some(Err(FrameError::Closed)) | None => break "closed by server".to_string(),
                    Some(Err(e)) => break format!("bad frame: {e}"),
                };
                match msg {
                    Msg::Ping => { if send(&mut wr, &Msg::Pong).await.is_err() { break "write failed".into() } }
                    Msg::Pong => {}
                    Msg::Register { pcid } => {
                        let r = gw.registry.register(&msid, &cert_hash, &pcid, &hostname, peer.ip(), gw.cfg.disable_register);
                        let reply = match r {
                            Ok(p) => {
                                crate::metrics::inc(&gw.metrics.registrations);
                                info!(pcid = %p, "registered");
                                Msg::Registered { pcid: p }
                            }
                            Err((code, message)) => {
                                crate::metrics::inc(&gw.metrics.registrations_refused);
                                Msg::Error { code, message }
                            }
                        };
                        if send(&mut wr, &reply).await.is_err() { break "write failed".into() }
                        if session.as_ref().is_some_and(|s| gw.registry.session(&s.pcid).is_none_or(|c| !Arc::ptr_eq(&c, s))) {
                            break "renamed; the server serves again under its new ID".into();
                        }
                    }
                    Msg::Serve { server_mask } => {
                        let Some(pcid) = gw.registry.pcid_of(&msid) else {
                            let _ = send(&mut wr, &Msg::Error { code: ErrorCode::NotRegistered, message: "register a computer ID first".into() }).await;
                            break "serve before register".into();
                        };
                        let mut sid = [0u8; 16];
                        rand::thread_rng().fill_bytes(&mut sid);
                        let s = Arc::new(ServerSession {
                            session_id: hex::encode_upper(sid),
                            pcid: pcid.clone(),
                            msid: msid.clone(),
                            hostname: hostname.clone(),
                            ip: peer.ip(),
                            established_ms: now_ms(),
                            num_clients: Default::default(),
                            server_mask,
                            tx: notify_tx.clone(),
                            replaced: replaced.clone(),
                        });
                        if let Err((code, message)) = gw.registry.add_session(s.clone(), gw.cfg.max_sessions) {
                            let _ = send(&mut wr, &Msg::Error { code, message }).await;
                            break "session limit".into();
                        }
                        gw.registry.touch_server(&msid, peer.ip(), server_mask);
                        if let Some(old) = session.replace(s.clone()) { gw.registry.remove_session(&old); }
                        info!(%pcid, "serving");
                        if send(&mut wr, &Msg::Serving { session_id: s.session_id.clone() }).await.is_err() { break "write failed".into() }
                    }
                    Msg::OtpMail { request_id, to, code, system, valid_s } => {
                        let pcid = session.as_ref().map(|s| s.pcid.clone());
                        let job = crate::otp_mail::MailJob { request_id, to, code, system, valid_s };
                        let refusal = crate::otp_mail::dispatch(&gw, pcid, &mut mail_budget, job, notify_tx.clone());
                        if let Some(m) = refusal { if send(&mut wr, &m).await.is_err() { break "write failed".into() } }
                    }
                    other => {
                        let _ = send(&mut wr, &Msg::Error { code: ErrorCode::Protocol, message: format!("unexpected {other:?}") }).await;
                        break "protocol error".into();
                    }
                }
            }
            Some(n) = notify.recv() => { if send(&mut wr, &n).await.is_err() { break "write failed".into() } }
            _ = ping.tick() => {
                if last_heard.elapsed() >= gw.cfg.tunnel_timeout { break "timed out (no keepalive)".into() }
                if send(&mut wr, &Msg::Ping).await.is_err() { break "write failed".into() }
            }
            _ = replaced.cancelled() => break "replaced by a newer session".into(),
            _ = gw.shutdown.cancelled() => break "gateway shutting down".into(),
        }
    };
    if let Some(s) = session {
        gw.registry.remove_session(&s);
    }
    reader.abort();
    let _ = wr.shutdown().await;
    info!(reason = %end, "server session ended");
}

async fn send(wr: &mut WriteHalf<GateStream>, m: &Msg) -> Result<(), FrameError> {
    tokio::time::timeout(std::time::Duration::from_secs(10), write_frame(wr, m))
        .await
        .map_err(|_| FrameError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")))?
}
