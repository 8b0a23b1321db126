//! `thinsvr`: registers the office PC, keeps its control session to the gateway
//! (keepalive, reconnect with backoff and jitter, OTP mail and wake requests,
//! the company's rules from the gateway: [`crate::policy`]), and serves every
//! tunnel by forwarding its streams to the local service.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use thin_protocol::auth::PasswordFile;
use thin_protocol::entry_point::GatewayUrl;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::identity::Identity;
use thin_protocol::messages::{ErrorCode, GateToServer, Hello, ServerToGate};
use thin_protocol::secret::Secret;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::link::{Link, LinkError, LinkStream};
use crate::lockout::Lockout;
use crate::otp::OtpPolicy;
use crate::otp_mail::{InFlight, MailRequest, Mailer};
use crate::policy::PolicyCell;
use crate::settings::{ConfigDir, SettingsError};
use crate::wake::{WakeRequest, Waker, WakesInFlight};
use thin_protocol::policy::MASK_WOL;

/// ServerMask64 bits this server announces: Windows RDP and service mode.
pub const SERVER_MASK: u64 = 2 | 16;

/// ServerMask64 bit of a server that asks for a one-time password.
pub const MASK_OTP: u64 = 64;

/// Errors of the server app.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Gateway problem.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Config folder problem.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The company's policy forbids serving as this computer is set up.
    #[error("not serving: {0}")]
    Policy(String),
}

/// What the server app is doing, for windows and status lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerState {
    /// Trying to reach the gateway.
    Connecting,
    /// Registered and reachable.
    Online {
        /// Computer ID.
        pcid: String,
        /// Session id at the gateway.
        session_id: String,
    },
    /// Lost; retrying.
    Offline {
        /// Why.
        reason: String,
    },
}

/// Host name of this computer, for the gateway's lists.
pub fn hostname() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn refused(m: GateToServer) -> LinkError {
    match m {
        GateToServer::Error { code, message } => LinkError::Refused { code, message },
        other => LinkError::Lost(format!("unexpected message from the gateway: {other:?}")),
    }
}

/// Reads the next message that is not a keepalive (answering pings).
async fn recv(s: &mut LinkStream, t: Duration) -> Result<GateToServer, LinkError> {
    loop {
        match tokio::time::timeout(t, read_frame::<GateToServer, _>(s)).await {
            Ok(Ok(GateToServer::Ping)) => send(s, &ServerToGate::Pong).await?,
            Ok(Ok(GateToServer::Pong)) => {}
            Ok(Ok(m)) => return Ok(m),
            Ok(Err(e)) => return Err(LinkError::Lost(e.to_string())),
            Err(_) => return Err(LinkError::Lost("the gateway did not answer in time".into())),
        }
    }
}

async fn send(s: &mut LinkStream, m: &impl serde::Serialize) -> Result<(), LinkError> {
    write_frame(s, m).await.map_err(|e| LinkError::Lost(e.to_string()))
}

/// A control connection after the key proof: the stream, the gateway it
/// reached, the registered PCID (if any), and the keepalive and timeout to use.
type LoggedIn = (LinkStream, GatewayUrl, Option<String>, Duration, Duration);

/// Opens a control connection (to the first gateway of the entry point that
/// answers) and proves the key.
async fn login(link: &Link, id: &Identity) -> Result<LoggedIn, LinkError> {
    let (mut s, at) = link.open_any().await?;
    let t = link.timeout;
    let hello = Hello::ServerHello {
        version: thin_protocol::PROTOCOL_VERSION,
        public_key: id.public_key_hex(),
        hostname: hostname(),
    };
    send(&mut s, &hello).await?;
    let nonce = match recv(&mut s, t).await? {
        GateToServer::Challenge { nonce } => nonce,
        other => return Err(refused(other)),
    };
    let signature = id.sign_challenge(&nonce).map_err(|e| LinkError::Lost(e.to_string()))?;
    send(&mut s, &ServerToGate::Proof { signature }).await?;
    match recv(&mut s, t).await? {
        GateToServer::Welcome { pcid, keepalive_ms, timeout_ms, .. } => {
            let (keepalive, timeout) =
                (Duration::from_millis(keepalive_ms.max(100)), Duration::from_millis(timeout_ms.max(1000)));
            Ok((s, at, pcid, keepalive, timeout))
        }
        other => Err(refused(other)),
    }
}

/// Claims (or renames to) `pcid` and stores the password verifier. Returns the
/// PCID as stored by the gateway.
pub async fn register(link: &Link, dir: &ConfigDir, pcid: &str, password: &Secret) -> Result<String, AgentError> {
    let id = dir.identity()?;
    let file = tokio::task::spawn_blocking({
        let pw = password.clone();
        move || PasswordFile::create(pw.expose())
    })
    .await
    .map_err(|e| LinkError::Lost(e.to_string()))?
    .map_err(|e| LinkError::Lost(e.to_string()))?;
    // The gateway's registration token, when its admin handed one out.
    let token = dir.settings()?.register_token;
    let (mut s, _, _, _, _) = login(link, &id).await?;
    send(&mut s, &ServerToGate::Register { pcid: pcid.to_string(), token }).await?;
    let stored = match recv(&mut s, link.timeout).await? {
        GateToServer::Registered { pcid } => pcid,
        other => return Err(refused(other).into()),
    };
    dir.save_password(&file)?;
    let mut settings = dir.settings()?;
    settings.pcid = Some(stored.clone());
    dir.save_settings(&settings)?;
    Ok(stored)
}

/// Live counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Tunnels (client sessions) open now.
    pub tunnels: AtomicUsize,
}

/// Everything a running server needs.
#[derive(Clone)]
pub struct ServeCtx {
    /// Gateway link.
    pub link: Link,
    /// Local service (`host:port`).
    pub target: String,
    /// Password verifier.
    pub password: Arc<PasswordFile>,
    /// Failed-login lockout.
    pub lockout: Arc<Lockout>,
    /// Counters.
    pub stats: Arc<ServerStats>,
    /// Config folder: each tunnel reads whether OTP is on (`otp_email`) anew.
    pub dir: ConfigDir,
    /// Validity and tries of one-time passwords.
    pub otp: OtpPolicy,
    /// Has one-time passwords mailed through the control session.
    pub mailer: Mailer,
    /// The company's rules the gateway sent last.
    pub policy: PolicyCell,
    /// Asks the gateway for the MAC addresses of a PC to wake.
    pub waker: Waker,
    /// The built-in desktop, for PCs without an RDP host (`desktop` in `thinsvr.toml`).
    pub desktop: crate::desktop::Desktop,
    /// How often an online session checks whether the desktop it announced
    /// (ServerMask64 bit 1) is still the one a tunnel would get.
    pub desktop_recheck: Duration,
}

/// How to serve, beyond the config folder's settings.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Local service the tunnels reach (default from the settings).
    pub target: Option<String>,
    /// Validity and tries of one-time passwords (5 minutes, 20 tries).
    pub otp: OtpPolicy,
    /// Counters the caller reads (tunnels open now).
    pub stats: Arc<ServerStats>,
    /// The company's rules in force, which the caller may read (the window).
    pub policy: PolicyCell,
    /// The built-in desktop (default: this platform's, [`crate::desktop::Desktop::for_platform`]).
    pub desktop: Option<crate::desktop::Desktop>,
    /// How often an online session checks whether the desktop it announced
    /// is still the one a tunnel would get (default [`DESKTOP_RECHECK`]).
    pub desktop_recheck: Option<Duration>,
}

/// How often an online office PC checks, while no tunnel is open, whether
/// the desktop it announced is still the one a tunnel would get: `desktop`
/// in `thinsvr.toml` changed, or with `auto` an RDP host started or stopped
/// answering at the target. When it changed, the session reconnects to
/// announce the new ServerMask64.
pub const DESKTOP_RECHECK: Duration = Duration::from_secs(30);

/// Serves until `shutdown`; reconnects with backoff and jitter.
pub async fn run(
    link: Link,
    dir: ConfigDir,
    target: Option<String>,
    shutdown: CancellationToken,
    state: watch::Sender<ServerState>,
) -> Result<(), AgentError> {
    run_with(link, dir, ServeOptions { target, ..Default::default() }, shutdown, state).await
}

/// [`run`] with every option.
pub async fn run_with(
    link: Link,
    dir: ConfigDir,
    opts: ServeOptions,
    shutdown: CancellationToken,
    state: watch::Sender<ServerState>,
) -> Result<(), AgentError> {
    let id = dir.identity()?;
    let settings = dir.settings()?;
    let password = Arc::new(dir.password()?);
    let (mailer, mut mail_rx) = Mailer::channel();
    let (waker, mut wake_rx) = Waker::channel();
    let ctx = ServeCtx {
        link,
        target: opts.target.unwrap_or(settings.target.clone()),
        password,
        lockout: Arc::new(Lockout::persistent(
            settings.lockout_attempts,
            settings.lockout_duration(),
            dir.0.join("lockout.json"),
        )),
        stats: opts.stats,
        dir,
        otp: opts.otp,
        mailer,
        policy: opts.policy,
        waker,
        desktop: opts.desktop.unwrap_or_else(crate::desktop::Desktop::for_platform),
        desktop_recheck: opts.desktop_recheck.unwrap_or(DESKTOP_RECHECK),
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let _ = state.send(ServerState::Connecting);
        let r = tokio::select! {
            r = session(&ctx, &id, &state, (&mut mail_rx, &mut wake_rx), &shutdown) => r,
            _ = shutdown.cancelled() => return Ok(()),
        };
        match r {
            Ok(true) => backoff = Duration::from_millis(500),
            Ok(false) => return Ok(()),
            Err(AgentError::Link(LinkError::Refused {
                code: ErrorCode::NotRegistered | ErrorCode::BadSignature,
                message,
            })) => {
                return Err(LinkError::Refused { code: ErrorCode::NotRegistered, message }.into());
            }
            Err(e @ AgentError::Policy(_)) => {
                warn!("{e}");
                let _ = state.send(ServerState::Offline { reason: e.to_string() });
                return Err(e);
            }
            Err(e) => {
                warn!("gateway session: {e}");
                // A session that was online and then lost starts over with
                // the shortest wait (and the next gateway of the entry point).
                if matches!(*state.borrow(), ServerState::Online { .. }) {
                    backoff = Duration::from_millis(500);
                    ctx.link.move_on();
                }
                let _ = state.send(ServerState::Offline { reason: e.to_string() });
            }
        }
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        let wait = backoff.mul_f64(jitter);
        backoff = (backoff * 2).min(Duration::from_secs(3));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// One control session. `Ok(true)`: was online and then lost (retry soon);
/// `Ok(false)`: shut down.
async fn session(
    ctx: &ServeCtx,
    id: &Identity,
    state: &watch::Sender<ServerState>,
    (mail_rx, wake_rx): (&mut mpsc::Receiver<MailRequest>, &mut mpsc::Receiver<WakeRequest>),
    shutdown: &CancellationToken,
) -> Result<bool, AgentError> {
    let (mut s, at, pcid, keepalive, timeout) = login(&ctx.link, id).await?;
    // The tunnels' data connections go to the gateway this session is at.
    let ctx = &ServeCtx { link: ctx.link.pinned_to(at.clone()), ..ctx.clone() };
    let Some(pcid) = pcid else {
        return Err(LinkError::Refused {
            code: ErrorCode::NotRegistered,
            message: "the gateway does not know this computer: run `thinsvr register --pcid ID` again".into(),
        }
        .into());
    };
    let settings = ctx.dir.settings().ok();
    let otp_on = settings.as_ref().is_some_and(|st| st.otp_email.is_some());
    let macs = crate::wake::local_macs(settings.as_ref().map_or(&[][..], |s| &s.wol_macs));
    // The built-in desktop's bit as things stand when the session starts
    // (checked again every `desktop_recheck` while no tunnel is open).
    let builtin = builtin_now(ctx).await;
    let server_mask = SERVER_MASK
        | if otp_on { MASK_OTP } else { 0 }
        | if macs.is_empty() { 0 } else { MASK_WOL }
        | if builtin { crate::desktop::MASK_BUILTIN } else { 0 };
    send(&mut s, &ServerToGate::Serve { server_mask, policy: true, macs }).await?;
    let session_id = match recv(&mut s, ctx.link.timeout).await? {
        GateToServer::Serving { session_id } => session_id,
        other => return Err(refused(other).into()),
    };
    info!(%pcid, gateway = %at, "online at the gateway");
    let _ = state.send(ServerState::Online { pcid: pcid.clone(), session_id });
    let (rd, mut wr) = tokio::io::split(s);
    let (mut frames, reader) = thin_protocol::frame::spawn_reader::<GateToServer, _>(rd);
    let _stop_reader = AbortOnDropHandle::new(reader);
    let mut tick = tokio::time::interval(keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    let start = tokio::time::Instant::now() + ctx.desktop_recheck;
    let mut recheck = tokio::time::interval_at(start, ctx.desktop_recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let system = ctx.link.entry.system_name.clone().unwrap_or_else(|| crate::brand::get().system_name.to_string());
    let mut mails = InFlight::default();
    let mut wakes = WakesInFlight::default();
    let lost = |e: thin_protocol::frame::FrameError| LinkError::Lost(e.to_string());
    loop {
        tokio::select! {
            Some(req) = mail_rx.recv() => {
                if let Some(m) = mails.start(req, &system) {
                    write_frame(&mut wr, &m).await.map_err(lost)?;
                }
            }
            Some(req) = wake_rx.recv() => {
                if let Some(m) = wakes.start(req) {
                    write_frame(&mut wr, &m).await.map_err(lost)?;
                }
            }
            f = frames.recv() => {
                heard = tokio::time::Instant::now();
                match f {
                    Some(Ok(GateToServer::Incoming { tunnel_id })) => {
                        let ctx = ctx.clone();
                        let pcid = pcid.clone();
                        let (ka, to) = (keepalive, timeout);
                        tokio::spawn(async move { crate::server_tunnel::serve(ctx, tunnel_id, pcid, ka, to).await });
                    }
                    Some(Ok(GateToServer::OtpMailed { request_id, error })) => mails.finish(request_id, error),
                    Some(Ok(GateToServer::WakeMacs { request_id, macs, error })) => wakes.finish(request_id, macs, error),
                    Some(Ok(GateToServer::Policy { policy })) => {
                        let settings = ctx.dir.settings()?;
                        let refusal = crate::policy::serving_refusal(&policy, &settings);
                        info!(rules = ?policy, "the gateway's policy applies");
                        let (dir, disable) = (ctx.dir.clone(), policy.disable_share);
                        ctx.policy.set(policy);
                        if let Some(why) = refusal {
                            return Err(AgentError::Policy(why));
                        }
                        // DISABLE_SHARE: fail closed where it can be honoured and was not.
                        let shared = tokio::task::spawn_blocking(move || crate::share_policy::apply_system(&dir, disable));
                        match shared.await.map_err(|e| e.to_string()).and_then(|r| r) {
                            Ok(crate::share_policy::Outcome::NotHonoured) => warn!(
                                "the company's policy sets DISABLE_SHARE, which this system's Remote Desktop host \
                                 cannot be told; turn off drive and clipboard redirection in its own settings"
                            ),
                            Ok(outcome) => info!(?outcome, "DISABLE_SHARE applied to the Remote Desktop host"),
                            Err(why) if disable => {
                                return Err(AgentError::Policy(format!(
                                    "the company's policy (DISABLE_SHARE) turns off drive and clipboard sharing, \
                                     and this computer could not apply it: {why}"
                                )))
                            }
                            Err(why) => warn!("could not put back the Remote Desktop sharing settings: {why}"),
                        }
                    }
                    Some(Ok(GateToServer::Ping)) => write_frame(&mut wr, &ServerToGate::Pong).await.map_err(lost)?,
                    Some(Ok(GateToServer::Pong)) => {}
                    Some(Ok(other)) => return Err(refused(other).into()),
                    Some(Err(e)) => return Err(LinkError::Lost(e.to_string()).into()),
                    None => return Err(LinkError::Lost("closed".into()).into()),
                }
            }
            _ = tick.tick() => {
                if heard.elapsed() >= timeout {
                    return Err(LinkError::Lost(format!("no answer from the gateway for {} s", timeout.as_secs())).into());
                }
                write_frame(&mut wr, &ServerToGate::Ping).await.map_err(lost)?;
            }
            _ = recheck.tick(), if ctx.desktop.available() => {
                if ctx.stats.tunnels.load(Ordering::Relaxed) == 0 && builtin_now(ctx).await != builtin {
                    info!(builtin = !builtin, "the desktop a tunnel gets changed: reconnecting to announce it");
                    return Ok(true);
                }
            }
            _ = shutdown.cancelled() => return Ok(false),
        }
    }
}

/// Whether a tunnel opened now would get the built-in desktop (the mode as
/// `thinsvr.toml` says now).
async fn builtin_now(ctx: &ServeCtx) -> bool {
    let mode = ctx.dir.settings().map(|s| s.desktop).unwrap_or_default();
    ctx.desktop.serves(mode, &ctx.target).await.is_some()
}

/// Counts one open tunnel while alive.
pub struct TunnelCount(pub Arc<ServerStats>);

impl TunnelCount {
    /// Increments.
    pub fn new(s: Arc<ServerStats>) -> Self {
        s.tunnels.fetch_add(1, Ordering::Relaxed);
        Self(s)
    }
}

impl Drop for TunnelCount {
    fn drop(&mut self) {
        self.0.tunnels.fetch_sub(1, Ordering::Relaxed);
    }
}
