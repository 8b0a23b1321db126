//! `thinclient`: asks the gateway for a computer ID, logs in to that computer
//! end to end, then relays every connection made to a local port through one
//! multiplexed tunnel.

use std::time::Duration;

use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::messages::{GateToTunnel, Hello};
use thin_protocol::secret::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::compat::TokioAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

use crate::decouple::Bare;
use crate::device::DeviceStore;
use crate::e2e::{LoginError, LoginTimes};
use crate::link::{Link, LinkError};
use crate::mux::{self, Opener, KIND_KEEPALIVE, KIND_TCP};
use crate::otp::{NoOtp, OtpProvider};

/// Errors of the client app.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Gateway problem (unreachable, certificate, unknown PCID, offline).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Login problem (wrong password, locked out, one-time password).
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The tunnel died.
    #[error("the connection to the remote computer was lost: {0}")]
    Lost(String),
    /// The office PC refused this home PC after the login (unknown device, inspection).
    #[error("the remote computer refused this home PC: {0}")]
    Refused(String),
}

/// An authenticated tunnel to a server. Keepalive runs as long as it lives.
pub struct ClientTunnel {
    opener: Opener,
    dead: tokio::sync::watch::Receiver<Option<String>>,
    /// What the office PC said when it accepted this home PC (e.g. that it
    /// was just added to its known home PCs), to show the user.
    pub note: Option<String>,
    /// The login's binding, from which the built-in desktop's one-time password comes.
    binding: [u8; 32],
    _keepalive: AbortOnDropHandle<()>,
    _conn: AbortOnDropHandle<()>,
}

/// Reaches `pcid` through the gateway and logs in with `password`; a server
/// that asks for a one-time password refuses with [`LoginError::OtpNotGiven`].
pub async fn connect(link: &Link, pcid: &str, password: &Secret) -> Result<ClientTunnel, ClientError> {
    connect_with_otp(link, pcid, password, &NoOtp).await
}

/// Reaches `pcid` through the gateway and logs in with `password`; when the
/// server asks for a one-time password (sent by e-mail), `otp` is asked for it,
/// again after a wrong answer while tries are left.
pub async fn connect_with_otp(
    link: &Link,
    pcid: &str,
    password: &Secret,
    otp: &dyn OtpProvider,
) -> Result<ClientTunnel, ClientError> {
    connect_as(link, pcid, password, otp, &DeviceStore::user_default()).await
}

/// As [`connect_with_otp`], with the device key kept in `device` (read only
/// when the office PC accepts only known home PCs).
pub async fn connect_as(
    link: &Link,
    pcid: &str,
    password: &Secret,
    otp: &dyn OtpProvider,
    device: &DeviceStore,
) -> Result<ClientTunnel, ClientError> {
    let (mut s, mut at) = link.open_any().await?;
    let build = Some(crate::brand::get().build);
    let req = Hello::ClientConnect {
        version: thin_protocol::PROTOCOL_VERSION,
        pcid: pcid.to_string(),
        build,
        follows_redirect: true,
        bare_records: thin_protocol::records::takeable(s.get_ref().1),
    };
    let mut redirects = 0;
    let (keepalive, timeout, bare) = loop {
        write_frame(&mut s, &req).await.map_err(|e| LinkError::Lost(e.to_string()))?;
        let answer =
            tokio::time::timeout(link.timeout + Duration::from_secs(15), read_frame::<GateToTunnel, _>(&mut s));
        match answer.await {
            Ok(Ok(GateToTunnel::Paired { keepalive_ms, timeout_ms, bare_records })) => {
                let (keepalive, timeout) =
                    (Duration::from_millis(keepalive_ms.max(100)), Duration::from_millis(timeout_ms.max(1000)));
                // thinclient switches to bare records first (crate::inplace).
                break (keepalive, timeout, if bare_records { Bare::First } else { Bare::No });
            }
            Ok(Ok(GateToTunnel::Error { code, message })) => return Err(LinkError::Refused { code, message }.into()),
            // The computer is online at another member of the cluster: ask
            // there, through the same pinned TLS (docs/cluster.md).
            Ok(Ok(GateToTunnel::Redirect { gateway })) => {
                (s, at) = link.open_redirect(&at.authority(), &gateway, redirects).await?;
                redirects += 1;
            }
            Ok(Err(e)) => return Err(LinkError::Lost(e.to_string()).into()),
            Err(_) => return Err(LinkError::Lost("the gateway did not answer in time".into()).into()),
        }
    };
    let pcid_norm = pcid.to_ascii_lowercase();
    let times = LoginTimes { answer: link.timeout, keepalive, idle: timeout };
    let keys = crate::e2e::client_login(&mut s, password, &pcid_norm, otp, times).await?;
    info!(pcid = %pcid_norm, "logged in");
    let binding = keys.binding;
    let sealed =
        crate::decouple::Decoupled::over_link(s, keys, bare).await.map_err(|e| LinkError::Lost(e.to_string()))?;
    let (opener, conn) = mux::client(sealed.compat());
    let conn = AbortOnDropHandle::new(conn);
    let note = crate::check::client_check(&opener, &binding, device).await.map_err(ClientError::Refused)?;
    if let Some(note) = &note {
        info!("{note}");
    }
    let (dead_tx, dead) = tokio::sync::watch::channel(None);
    let ka = tokio::spawn({
        let opener = opener.clone();
        async move {
            let why = keepalive_loop(opener, keepalive, timeout).await;
            let _ = dead_tx.send(Some(why));
        }
    });
    Ok(ClientTunnel { opener, dead, note, binding, _keepalive: AbortOnDropHandle::new(ka), _conn: conn })
}

impl ClientTunnel {
    /// Asks the office PC which desktop it serves (an office PC too old to
    /// know the question serves its RDP host).
    pub async fn desktop(&self) -> std::io::Result<crate::desktop::DesktopInfo> {
        let mut st = self.opener.open().await?;
        st.write_all(&[crate::desktop::KIND_DESKTOP]).await?;
        st.flush().await?;
        crate::desktop::read_info(st, Duration::from_secs(10)).await
    }

    /// The one-time password the office PC's built-in desktop expects from
    /// this tunnel's viewer (user [`crate::desktop::USER`]).
    pub fn desktop_password(&self) -> thin_protocol::secret::Secret {
        thin_protocol::secret::Secret::new(crate::desktop::one_time_password(&self.binding))
    }

    /// Opens one forwarded stream to the server's target service.
    pub async fn open_stream(&self) -> std::io::Result<mux::MuxStream> {
        let mut st = self.opener.open().await?;
        st.write_all(&[KIND_TCP]).await?;
        Ok(st)
    }

    /// Asks the office PC to wake `target` on its LAN (see [`crate::wake`]);
    /// the office PC's answer, or why there was none.
    pub async fn wake(&self, target: &str) -> Result<crate::wake::WakeReply, String> {
        let mut st = self.opener.open().await.map_err(|e| e.to_string())?;
        st.write_all(&[crate::wake::KIND_WAKE]).await.map_err(|e| e.to_string())?;
        crate::wake::ask(st, target).await
    }

    /// Relays every connection accepted on `listener` until `shutdown` or until
    /// the tunnel dies (then an error).
    ///
    /// The accept loop runs as a task of the runtime, whatever thread awaits
    /// this: on the thread of a `block_on` every new connection would cross
    /// two threads more (the worker that saw it wakes that thread, which
    /// wakes a worker for the connection's task), 4-8 % of a set-up's time
    /// through the whole chain at the median (BENCHMARKS.md, runs 34-35).
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ClientError> {
        let task = AbortOnDropHandle::new(tokio::spawn(self.accept_loop(listener, shutdown)));
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ClientError::Lost(e.to_string())),
        }
    }

    async fn accept_loop(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ClientError> {
        let mut dead = self.dead.clone();
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                a = listener.accept() => {
                    let Ok((mut tcp, peer)) = a else { continue };
                    let _ = tcp.set_nodelay(true);
                    debug!(%peer, "local connection");
                    let opener = self.opener.clone();
                    conns.spawn(async move {
                        let mut st = match opener.open().await {
                            Ok(st) => st,
                            Err(e) => return warn!(%peer, "local connection refused: {e}"),
                        };
                        if st.write_all(&[KIND_TCP]).await.is_err() { return }
                        let _ = tokio::io::copy_bidirectional_with_sizes(&mut tcp, &mut st, 64 * 1024, 64 * 1024).await;
                    });
                }
                _ = dead.changed() => {
                    let why = dead.borrow().clone().unwrap_or_else(|| "tunnel closed".into());
                    return Err(ClientError::Lost(why));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

async fn keepalive_loop(opener: Opener, every: Duration, timeout: Duration) -> String {
    let mut st = match tokio::time::timeout(timeout, opener.open()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return "keepalive stream not opened".into(),
    };
    if st.write_all(&[KIND_KEEPALIVE]).await.is_err() {
        return "keepalive failed".into();
    }
    loop {
        let ping = async {
            st.write_all(&[0x55]).await?;
            st.flush().await?;
            let mut b = [0u8; 1];
            st.read_exact(&mut b).await?;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("the remote computer closed the tunnel ({e})"),
            Err(_) => return format!("no answer from the remote computer for {} s", timeout.as_secs()),
        }
        tokio::time::sleep(every).await;
    }
}
