//! The local admin port of ThinServer: the window (a front end) talks to the
//! service over `127.0.0.1:<RPC port of the brand>`.
//!
//! Only a caller that can read the service's admin secret gets in: the service
//! sends a random challenge, the caller answers with an HMAC-SHA256 of it (and
//! of its own nonce) under the secret, the service checks it in constant time
//! and proves in turn that it knows the secret. The secret itself never crosses
//! the socket. Frames are the gateway's length-prefixed JSON (64 KiB at most);
//! every wait has a deadline; only loopback peers are served.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use thin_protocol::frame::{read_frame, write_frame, FrameError};
use thin_protocol::secret::Secret;
use tokio::net::{TcpListener, TcpStream};

/// Version of the admin protocol.
pub const ADMIN_VERSION: u16 = 1;
/// Time allowed for the authentication exchange.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// An authenticated connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Length of the admin secret and of the nonces, in bytes.
const SECRET_LEN: usize = 32;

/// What can go wrong on the admin port.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The secret file is missing or unreadable.
    #[error("{path}: {msg}")]
    SecretFile {
        /// The secret file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Nothing answers on the admin port.
    #[error("ThinServer's service does not answer on {addr}: {source} (is the service running?)")]
    Connect {
        /// The admin port.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The other side does not know the secret.
    #[error("the admin port refused: {0}")]
    Refused(String),
    /// The peer broke the protocol or timed out.
    #[error("admin port: {0}")]
    Protocol(String),
}

impl From<FrameError> for AdminError {
    fn from(e: FrameError) -> Self {
        AdminError::Protocol(e.to_string())
    }
}

/// Frames of the admin port.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum AdminFrame {
    /// Service -> caller: prove you know the secret.
    Challenge {
        /// Protocol version.
        version: u16,
        /// Random nonce (hex).
        nonce: String,
    },
    /// Caller -> service: the proof.
    Prove {
        /// The caller's random nonce (hex).
        nonce: String,
        /// HMAC-SHA256 under the secret of `caller|service nonce|caller nonce` (hex).
        mac: String,
    },
    /// Service -> caller: accepted, and the service's own proof.
    Welcome {
        /// HMAC-SHA256 under the secret of `service|service nonce|caller nonce` (hex).
        mac: String,
    },
    /// Refusal; the connection closes after it.
    Refused {
        /// Why.
        message: String,
    },
    /// Caller -> service: a request.
    Request(AdminRequest),
    /// Service -> caller: the answer to the last request.
    Reply(AdminReply),
}

/// What the window asks of the service.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// The live state.
    Status,
    /// Register or rename the computer ID; with `password` the password is
    /// set too, without it the current one is kept.
    SetPcid {
        /// The new computer ID.
        pcid: String,
        /// The password to set with it.
        password: Option<Secret>,
    },
    /// Set or change the password.
    SetPassword {
        /// The new password.
        password: Secret,
    },
    /// Enable OTP by mail to this address, or disable it with `None`.
    SetOtpEmail {
        /// The address.
        email: Option<String>,
    },
    /// The local service the tunnels reach (default `127.0.0.1:3389`).
    SetLocalPort {
        /// The port.
        port: u16,
    },
    /// Which desktop the tunnels reach (`desktop` in `thinsvr.toml`).
    SetDesktop {
        /// `auto`, `builtin` or `rdp`.
        desktop: crate::desktop::DesktopMode,
    },
}

/// Whether the service reaches the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "link", content = "reason", rename_all = "snake_case")]
pub enum LinkState {
    /// No computer ID or no password yet: the service waits for them.
    #[default]
    NotRegistered,
    /// Trying to reach the gateway.
    Connecting,
    /// Registered and waiting for connections.
    Online,
    /// Lost or refused; retrying (why, in plain words).
    Offline(String),
    /// This build has no gateway address (the window words it).
    NoEntryPoint,
}

/// The live state of ThinServer, as the window shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdminStatus {
    /// Registered computer ID, if any.
    pub pcid: Option<String>,
    /// Whether a password is set.
    pub password_set: bool,
    /// The link to the gateway.
    pub state: LinkState,
    /// Client sessions now.
    pub clients: u64,
    /// OTP e-mail address, if OTP is on.
    pub otp_email: Option<String>,
    /// Local service port.
    pub local_port: u16,
    /// The company's rules the gateway sent (empty: none); the window shows
    /// which settings they fix and `SERVER_MESSAGE`. Absent from an older
    /// service: no rules.
    #[serde(default)]
    pub policy: thin_protocol::policy::Policy,
    /// Which desktop the tunnels reach (`desktop` in `thinsvr.toml`).
    #[serde(default)]
    pub desktop: crate::desktop::DesktopMode,
    /// Whether this PC has a built-in desktop to serve (an older service: no).
    #[serde(default)]
    pub builtin_desktop: bool,
}

/// The service's answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum AdminReply {
    /// The live state (the answer to every request that succeeds).
    Status(AdminStatus),
    /// The request failed; nothing changed.
    Error {
        /// What is wrong, for the window to word in the user's language.
        error: crate::control::ControlError,
    },
}

/// What the service does with a request.
pub trait AdminHandler: Send + Sync + 'static {
    /// Carries out `req` and answers with the new state or an error.
    fn handle(&self, req: AdminRequest) -> futures::future::BoxFuture<'_, AdminReply>;
}

/// The admin secret: 32 random bytes, hex in a file only administrators and
/// the service can read (0600 on Unix; on Windows it is in the service's
/// ProgramData folder, which only Administrators and SYSTEM may read, see
/// `crate::platform::acl`).
pub struct AdminSecret(hmac::Key);

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSecret(MASKED)")
    }
}

impl AdminSecret {
    /// Reads the secret at `path`.
    pub fn load(path: &Path) -> Result<Self, AdminError> {
        let err = |msg: String| AdminError::SecretFile { path: path.display().to_string(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(format!("{e} (only an administrator can use the admin port; run the window as one, or start the service once so it creates the file)"))
        })?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| err("is not a hex admin secret; delete it and restart the service".into()))?;
        if bytes.len() != SECRET_LEN {
            return Err(err(format!(
                "holds {} bytes, not {SECRET_LEN}; delete it and restart the service",
                bytes.len()
            )));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// Reads the secret at `path`, creating it (0600, atomically) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, AdminError> {
        if !path.exists() {
            let mut bytes = [0u8; SECRET_LEN];
            SystemRandom::new().fill(&mut bytes).map_err(|_| AdminError::Protocol("no system randomness".into()))?;
            crate::settings::write_config_file(path, hex::encode(bytes).as_bytes())
                .map_err(|e| AdminError::SecretFile { path: path.display().to_string(), msg: e.to_string() })?;
        }
        Self::load(path)
    }

    fn mac(&self, role: &str, service_nonce: &str, caller_nonce: &str) -> hmac::Tag {
        hmac::sign(&self.0, format!("thin-admin-v{ADMIN_VERSION}|{role}|{service_nonce}|{caller_nonce}").as_bytes())
    }

    /// Constant-time check of a hex MAC.
    fn verify(&self, role: &str, service_nonce: &str, caller_nonce: &str, mac_hex: &str) -> bool {
        let Ok(mac) = hex::decode(mac_hex) else { return false };
        let msg = format!("thin-admin-v{ADMIN_VERSION}|{role}|{service_nonce}|{caller_nonce}");
        hmac::verify(&self.0, msg.as_bytes(), &mac).is_ok()
    }
}

fn nonce() -> String {
    let mut b = [0u8; SECRET_LEN];
    SystemRandom::new().fill(&mut b).expect("system randomness");
    hex::encode(b)
}

/// Serves the admin port on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, secret: Arc<AdminSecret>, handler: Arc<dyn AdminHandler>) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        if !peer.ip().is_loopback() {
            tracing::warn!(%peer, "admin port: refused a peer that is not on this machine");
            continue;
        }
        let (secret, handler) = (secret.clone(), handler.clone());
        tokio::spawn(async move {
            if let Err(e) = session(tcp, &secret, handler.as_ref()).await {
                tracing::info!(%peer, "admin session ended: {e}");
            }
        });
    }
}

async fn session(mut tcp: TcpStream, secret: &AdminSecret, handler: &dyn AdminHandler) -> Result<(), AdminError> {
    let _ = tcp.set_nodelay(true);
    let service_nonce = nonce();
    let auth = async {
        write_frame(&mut tcp, &AdminFrame::Challenge { version: ADMIN_VERSION, nonce: service_nonce.clone() }).await?;
        match read_frame::<AdminFrame, _>(&mut tcp).await? {
            AdminFrame::Prove { nonce, mac } if nonce.len() == 2 * SECRET_LEN => Ok((nonce, mac)),
            _ => Err(AdminError::Protocol("expected a proof".into())),
        }
    };
    let (caller_nonce, mac) = tokio::time::timeout(AUTH_TIMEOUT, auth)
        .await
        .map_err(|_| AdminError::Protocol("no proof in time".into()))??;
    if !secret.verify("caller", &service_nonce, &caller_nonce, &mac) {
        let message = "wrong admin secret".to_string();
        let _ = write_frame(&mut tcp, &AdminFrame::Refused { message: message.clone() }).await;
        return Err(AdminError::Refused(message));
    }
    let mac = hex::encode(secret.mac("service", &service_nonce, &caller_nonce).as_ref());
    write_frame(&mut tcp, &AdminFrame::Welcome { mac }).await?;
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, read_frame::<AdminFrame, _>(&mut tcp)).await {
            Err(_) | Ok(Err(FrameError::Closed)) => return Ok(()),
            Ok(r) => r?,
        };
        let AdminFrame::Request(req) = frame else {
            return Err(AdminError::Protocol("expected a request".into()));
        };
        let reply = handler.handle(req).await;
        write_frame(&mut tcp, &AdminFrame::Reply(reply)).await?;
    }
}

/// The window's side of the admin port.
#[derive(Debug)]
pub struct AdminClient {
    tcp: TcpStream,
}

impl AdminClient {
    /// Connects to the service on `127.0.0.1:port` and proves knowledge of `secret`.
    pub async fn connect(addr: SocketAddr, secret: &AdminSecret) -> Result<Self, AdminError> {
        let mut tcp = TcpStream::connect(addr).await.map_err(|source| AdminError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let auth = async {
            let AdminFrame::Challenge { version, nonce: service_nonce } = read_frame(&mut tcp).await? else {
                return Err(AdminError::Protocol("expected a challenge".into()));
            };
            if version != ADMIN_VERSION {
                return Err(AdminError::Protocol(format!(
                    "the service speaks version {version}, this window {ADMIN_VERSION}; update both"
                )));
            }
            let caller_nonce = nonce();
            let mac = hex::encode(secret.mac("caller", &service_nonce, &caller_nonce).as_ref());
            write_frame(&mut tcp, &AdminFrame::Prove { nonce: caller_nonce.clone(), mac }).await?;
            match read_frame(&mut tcp).await? {
                AdminFrame::Welcome { mac } if secret.verify("service", &service_nonce, &caller_nonce, &mac) => Ok(()),
                AdminFrame::Welcome { .. } => {
                    Err(AdminError::Refused("the service does not know the admin secret".into()))
                }
                AdminFrame::Refused { message } => Err(AdminError::Refused(message)),
                _ => Err(AdminError::Protocol("expected a welcome".into())),
            }
        };
        tokio::time::timeout(AUTH_TIMEOUT, auth)
            .await
            .map_err(|_| AdminError::Protocol("no answer in time".into()))??;
        Ok(Self { tcp })
    }

    /// Sends `req` and waits for the answer.
    pub async fn call(&mut self, req: AdminRequest) -> Result<AdminReply, AdminError> {
        write_frame(&mut self.tcp, &AdminFrame::Request(req)).await?;
        match tokio::time::timeout(Duration::from_secs(60), read_frame(&mut self.tcp)).await {
            Ok(Ok(AdminFrame::Reply(r))) => Ok(r),
            Ok(Ok(_)) => Err(AdminError::Protocol("expected a reply".into())),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(AdminError::Protocol("the service did not answer within 60 s".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Fake(Mutex<AdminStatus>);

    impl AdminHandler for Fake {
        fn handle(&self, req: AdminRequest) -> futures::future::BoxFuture<'_, AdminReply> {
            Box::pin(async move {
                let mut s = self.0.lock().unwrap();
                match req {
                    AdminRequest::Status => {}
                    AdminRequest::SetLocalPort { port: 0 } => {
                        return AdminReply::Error { error: crate::control::ControlError::Other("port 0".into()) }
                    }
                    AdminRequest::SetLocalPort { port } => s.local_port = port,
                    AdminRequest::SetPcid { pcid, .. } => s.pcid = Some(pcid),
                    AdminRequest::SetPassword { .. } => s.password_set = true,
                    AdminRequest::SetOtpEmail { email } => s.otp_email = email,
                    AdminRequest::SetDesktop { desktop } => s.desktop = desktop,
                }
                AdminReply::Status(s.clone())
            })
        }
    }

    async fn service(dir: &Path) -> (SocketAddr, Arc<AdminSecret>) {
        let secret = Arc::new(AdminSecret::load_or_create(&dir.join("admin.secret")).unwrap());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let fake = Arc::new(Fake(Mutex::new(AdminStatus { local_port: 3389, ..Default::default() })));
        tokio::spawn(serve(l, secret.clone(), fake));
        (addr, secret)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_with_the_secret_gets_in_and_changes_settings() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, _) = service(dir.path()).await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("admin.secret")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let secret = AdminSecret::load(&dir.path().join("admin.secret")).unwrap();
        let mut c = AdminClient::connect(addr, &secret).await.unwrap();
        let AdminReply::Status(s) = c.call(AdminRequest::SetLocalPort { port: 13389 }).await.unwrap() else {
            panic!("status expected")
        };
        assert_eq!(s.local_port, 13389);
        let r = c.call(AdminRequest::SetLocalPort { port: 0 }).await.unwrap();
        assert!(matches!(r, AdminReply::Error { .. }), "{r:?}");
        let r = c.call(AdminRequest::SetPassword { password: Secret::new("pw") }).await.unwrap();
        assert!(matches!(r, AdminReply::Status(AdminStatus { password_set: true, .. })), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_without_the_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, _) = service(dir.path()).await;
        // Another secret (a user who cannot read the service's file made up one).
        let other = AdminSecret::load_or_create(&dir.path().join("guess.secret")).unwrap();
        let e = AdminClient::connect(addr, &other).await.unwrap_err();
        assert!(matches!(&e, AdminError::Refused(m) if m.contains("wrong admin secret")), "{e}");
        // A caller that sends a request without proving anything is dropped.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let _: AdminFrame = read_frame(&mut tcp).await.unwrap();
        write_frame(&mut tcp, &AdminFrame::Request(AdminRequest::Status)).await.unwrap();
        assert!(read_frame::<AdminFrame, _>(&mut tcp).await.is_err(), "closed without an answer");
        // A missing secret file names the file.
        let e = AdminSecret::load(&dir.path().join("nope.secret")).unwrap_err();
        assert!(e.to_string().contains("nope.secret"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fake_service_without_the_secret_is_detected() {
        // Someone else listens on the RPC port and answers every proof with a welcome.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut t, _) = l.accept().await.unwrap();
            write_frame(&mut t, &AdminFrame::Challenge { version: ADMIN_VERSION, nonce: nonce() }).await.unwrap();
            let _: AdminFrame = read_frame(&mut t).await.unwrap();
            write_frame(&mut t, &AdminFrame::Welcome { mac: "00".repeat(32) }).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let secret = AdminSecret::load_or_create(&dir.path().join("admin.secret")).unwrap();
        let e = AdminClient::connect(addr, &secret).await.unwrap_err();
        assert!(e.to_string().contains("does not know the admin secret"), "{e}");
    }
}
