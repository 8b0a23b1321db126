//! One tunnel on the office PC: attach to the waiting client at the gateway,
//! check the client's password (and one-time password, when set) end to end,
//! then forward each multiplexed stream to the local service. The company's
//! rules (`crate::policy`) apply to every tunnel: one-time passwords when
//! `ENFORCE_OTP` is on, and `IDLE_TIMEOUT`, after which a tunnel through
//! which the home PC sent nothing is closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thin_protocol::frame::{read_frame, write_frame, FrameError};
use thin_protocol::messages::{GateToTunnel, Hello};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::TokioAsyncReadCompatExt;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

use thin_protocol::device_check::CheckAsk;
use thin_protocol::policy::Policy;

use crate::check::KIND_CHECK;
use crate::decouple::Bare;
use crate::desktop::{Desktop, DesktopInfo, DesktopMode, Route, KIND_DESKTOP};
use crate::e2e::{LoginError, LoginTimes, OtpCheck};
use crate::link::LinkError;
use crate::mux::{self, MuxStream, KIND_KEEPALIVE, KIND_TCP};
use crate::server_agent::{ServeCtx, TunnelCount};
use crate::settings::{ConfigDir, SettingsError};
use crate::wake::{Waker, KIND_WAKE};

/// Why a tunnel ended before or during its login.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The data connection to the gateway failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The gateway refused to pair the tunnel.
    #[error("gateway refused the tunnel: {0}")]
    Refused(String),
    /// The gateway did not pair the tunnel in time.
    #[error("the gateway did not pair the tunnel in time")]
    NotPaired,
    /// The office PC could not read its settings, so it refused the login.
    #[error("client login refused: {0}")]
    Settings(#[from] SettingsError),
    /// The client did not log in.
    #[error("client login refused: {0}")]
    Login(#[from] LoginError),
    /// The company's policy forbids serving as this computer is set up.
    #[error("client refused: {0}")]
    Policy(String),
    /// The home PC did not pass the check after the login (unknown device, inspection).
    #[error("home PC refused: {0}")]
    Check(String),
}

/// Serves one tunnel to its end.
pub async fn serve(ctx: ServeCtx, tunnel_id: String, pcid: String, keepalive: Duration, timeout: Duration) {
    if let Err(e) = serve_inner(&ctx, &tunnel_id, &pcid, keepalive, timeout).await {
        warn!("tunnel: {e}");
    }
}

async fn serve_inner(
    ctx: &ServeCtx,
    tunnel_id: &str,
    pcid: &str,
    keepalive: Duration,
    timeout: Duration,
) -> Result<(), TunnelError> {
    let mut s = ctx.link.open().await?;
    let attach = Hello::Attach {
        version: thin_protocol::PROTOCOL_VERSION,
        tunnel_id: tunnel_id.to_string(),
        bare_records: thin_protocol::records::takeable(s.get_ref().1),
    };
    write_frame(&mut s, &attach).await?;
    // thinsvr switches to bare records after thinclient (crate::inplace).
    let bare = match tokio::time::timeout(ctx.link.timeout, read_frame::<GateToTunnel, _>(&mut s)).await {
        Ok(Ok(GateToTunnel::Paired { bare_records: true, .. })) => Bare::AfterPeer,
        Ok(Ok(GateToTunnel::Paired { .. })) => Bare::No,
        Ok(Ok(GateToTunnel::Error { message, .. })) => return Err(TunnelError::Refused(message)),
        // A data connection is never redirected: it attaches where its session is.
        Ok(Ok(GateToTunnel::Redirect { gateway })) => {
            return Err(TunnelError::Refused(format!("unexpected redirect of a data connection to {gateway}")))
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(TunnelError::NotPaired),
    };
    let rules = ctx.policy.get();
    let (otp_email, ask, mode) = match ctx.dir.settings() {
        Ok(settings) => {
            // Fail closed: the rules may have changed since the session checked them.
            if let Some(why) = crate::policy::serving_refusal(&rules, &settings) {
                let message = format!("the office PC does not take connections now: {why}");
                crate::e2e::refuse(&mut s, thin_protocol::messages::ErrorCode::Internal, message, None).await;
                return Err(TunnelError::Policy(why));
            }
            let ask = crate::check::what_to_ask(&rules, &settings);
            let clipboard = crate::policy::clipboard_shared(&rules, &settings);
            (settings.otp_email, ask, (settings.desktop, clipboard))
        }
        Err(e) => {
            // Fail closed: without its settings the server cannot tell whether OTP is on.
            let message = "the office PC cannot read its settings; ask its user to check the app".to_string();
            crate::e2e::refuse(&mut s, thin_protocol::messages::ErrorCode::Internal, message, None).await;
            return Err(e.into());
        }
    };
    let otp = otp_email.as_deref().map(|to| OtpCheck { to, policy: ctx.otp, sender: &ctx.mailer });
    let times = LoginTimes { answer: ctx.link.timeout, keepalive, idle: timeout };
    let keys = crate::e2e::server_login(&mut s, &ctx.password, pcid, &ctx.lockout, otp, times).await?;
    info!("client authenticated");
    let _count = TunnelCount::new(ctx.stats.clone());
    let epoch = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    // Only what opens under the client's key counts as hearing from it: the
    // gateway cannot keep a tunnel alive after the user has left.
    let binding = keys.binding;
    let sealed =
        crate::decouple::Decoupled::over_link(s, keys, bare).await.map_err(|e| LinkError::Lost(e.to_string()))?;
    let (mut inbound, conn) = mux::server(mux::Touch::new(sealed, epoch, heard.clone()).compat());
    let _conn = AbortOnDropHandle::new(conn);
    // Known home PCs, inspection: nothing is served before the check passed.
    if ask != CheckAsk::default() {
        let first = tokio::time::timeout(crate::check::CHECK_WAIT, inbound.recv()).await.ok().flatten();
        if let Err(why) = crate::check::server_check(first, &ask, &rules, &ctx.dir, &binding).await {
            return Err(TunnelError::Check(why));
        }
    }
    // Input from the home PC (not keepalives) for IDLE_TIMEOUT.
    let active = Arc::new(AtomicU64::new(0));
    let idle = rules.idle_timeout_s.map(Duration::from_secs);
    let every = idle.map_or(timeout / 4, |i| (i / 4).min(timeout / 4)).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    let mut streams = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            st = inbound.recv() => match st {
                Some(st) if streams.len() >= mux::SERVER_ACTIVE => {
                    // Dropping it resets this stream only.
                    drop(st);
                    warn!("the client has {} connections open; refusing another", streams.len());
                }
                Some(st) => {
                    let target = ctx.target.clone();
                    let marks = Marks { heard: heard.clone(), active: active.clone(), epoch };
                    let waker = ctx.waker.clone();
                    let check = (ctx.dir.clone(), rules.clone(), binding);
                    let desktop = (ctx.desktop.clone(), mode);
                    streams.spawn(async move { handle_stream(st, (target, desktop), marks, waker, check).await });
                }
                None => break,
            },
            _ = tick.tick() => {
                let quiet = epoch.elapsed().as_millis() as u64 - heard.load(Ordering::Relaxed);
                if quiet > timeout.as_millis() as u64 {
                    warn!("client silent for {} s; closing the tunnel", timeout.as_secs());
                    break;
                }
                if let Some(idle) = idle {
                    let unused = epoch.elapsed().as_millis() as u64 - active.load(Ordering::Relaxed);
                    if unused > idle.as_millis() as u64 {
                        info!("no input for {} s (IDLE_TIMEOUT of the company's policy); closing the tunnel", idle.as_secs());
                        break;
                    }
                }
            }
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    streams.abort_all();
    info!("tunnel closed");
    Ok(())
}

/// When the client was last heard (anything) and last active (data on a
/// forwarded connection), in ms since `epoch`.
struct Marks {
    heard: Arc<AtomicU64>,
    active: Arc<AtomicU64>,
    epoch: Instant,
}

async fn handle_stream(
    mut st: MuxStream,
    (target, (desktop, (mode, clipboard))): (String, (Desktop, (DesktopMode, bool))),
    marks: Marks,
    waker: Waker,
    (dir, rules, binding): (ConfigDir, Policy, [u8; 32]),
) {
    let Marks { heard, active, epoch } = marks;
    let mut kind = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(30), st.read_exact(&mut kind)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    match kind[0] {
        KIND_WAKE => crate::wake::serve_stream(st, &waker).await,
        // A check when none is required (it passed before the loop when one
        // is): nothing to ask, so the client knows it was heard.
        KIND_CHECK => {
            let _ = crate::check::answer_check(&mut st, &CheckAsk::default(), &rules, &dir, &binding).await;
        }
        KIND_DESKTOP => {
            let info = match desktop.serves(mode, &target).await {
                Some(server) => server.info(),
                None => DesktopInfo::Rdp,
            };
            let _ = crate::desktop::answer_info(&mut st, &info).await;
        }
        KIND_TCP => {
            active.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let mut st = mux::Touch::new(st, epoch, active);
            let mut tcp = match desktop.route(mode, &target).await {
                Ok(Route::Target(tcp)) => tcp,
                Ok(Route::Builtin(server)) => {
                    let password = crate::desktop::one_time_password(&binding);
                    match server.clone().serve_detached(st, password, clipboard).await {
                        Ok(()) => debug!("desktop session done"),
                        Err(e) => warn!("built-in desktop: {e}"),
                    }
                    return;
                }
                Err(e) => return warn!("{e}"),
            };
            let _ = tcp.set_nodelay(true);
            let r = tokio::io::copy_bidirectional_with_sizes(&mut st, &mut tcp, 64 * 1024, 64 * 1024).await;
            debug!(?r, "stream done");
        }
        KIND_KEEPALIVE => {
            let mut b = [0u8; 1];
            while st.read_exact(&mut b).await.is_ok() {
                heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                if st.write_all(&b).await.is_err() || st.flush().await.is_err() {
                    break;
                }
            }
        }
        other => debug!(other, "unknown stream kind"),
    }
}
