//! The real [`Connector`]: the client agent through the gateway, a local port
//! (3500-9999, as the original), the viewer (`mstsc.exe /v:127.0.0.1:PORT` on
//! Windows, a configurable command elsewhere), and the tunnel until the viewer
//! exits.

use std::time::Duration;

use thin_protocol::messages::ErrorCode;
use thin_protocol::secret::Secret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::client_window::{ConnectError, Connector, Progress, Session};
use thin_tunnel::client_agent::{self, ClientError, ClientTunnel};
use thin_tunnel::e2e::LoginError;
use thin_tunnel::link::{Link, LinkError, TlsFailure};
use thin_tunnel::otp::{OtpAnswer, OtpProvider, OtpRequest};

/// Connects through the gateway of `link` and starts the viewer.
pub struct RealConnector {
    link: Link,
    viewer: Option<String>,
}

impl RealConnector {
    /// A connector for `link`, with the default viewer (`mstsc.exe /v:{addr}` on
    /// Windows; `THIN_VIEWER` or `xfreerdp /v:{addr}` elsewhere).
    pub fn new(link: Link) -> Self {
        Self { link, viewer: None }
    }

    /// Uses the viewer command `template` (`{addr}`, `{host}`, `{port}`) instead.
    pub fn with_viewer(mut self, template: Option<String>) -> Self {
        self.viewer = template;
        self
    }

    /// Logs in to `pcid` with the window's password (and its one-time
    /// password prompt), unless the user cancels.
    async fn log_in(&self, pcid: &str, password: Secret, s: &Session) -> Result<ClientTunnel, ConnectError> {
        let cancel = s.cancel_token();
        s.progress(Progress::Connecting);
        let otp = AskTheWindow(s.clone());
        let tunnel = tokio::select! {
            r = client_agent::connect_with_otp(&self.link, pcid, &password, &otp) => r.map_err(|e| classify(&e))?,
            _ = cancel.cancelled() => return Err(ConnectError::Cancelled),
        };
        drop(password);
        s.progress(Progress::Connected);
        Ok(tunnel)
    }

    async fn session(&self, pcid: &str, password: Secret, s: &Session) -> Result<(), ConnectError> {
        let cancel = s.cancel_token();
        let tunnel = self.log_in(pcid, password, s).await?;
        let listener = bind_local(pcid).await.map_err(|e| ConnectError::LocalPort(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| ConnectError::LocalPort(e.to_string()))?;
        let desktop = tunnel.desktop().await.map_err(|e| ConnectError::ConnectionLost(e.to_string()))?;
        let launched = match &desktop {
            thin_tunnel::desktop::DesktopInfo::Rdp => crate::viewer::launch(addr, self.viewer.as_deref()),
            thin_tunnel::desktop::DesktopInfo::Builtin { sha256 } => {
                let pw = tunnel.desktop_password();
                crate::viewer::launch_builtin(addr, None, thin_tunnel::desktop::USER, sha256, pw.expose()).await
            }
        };
        let mut viewer = launched.map_err(|e| ConnectError::Viewer(e.to_string()))?;
        tracing::info!(%addr, "viewer started");
        s.viewer_started(addr);
        let stop = CancellationToken::new();
        let mut serve = tokio::spawn(tunnel.serve(listener, stop.clone()));
        let mut served = false;
        let result = tokio::select! {
            _ = viewer.wait() => Ok(()),
            r = &mut serve => {
                served = true;
                Err(match r {
                    Ok(Err(e)) => classify(&e),
                    Ok(Ok(())) => ConnectError::ConnectionLost("the tunnel closed".into()),
                    Err(e) => ConnectError::Other(e.to_string()),
                })
            }
            _ = cancel.cancelled() => {
                let _ = viewer.kill().await;
                Ok(())
            }
        };
        stop.cancel();
        if !served {
            let _ = tokio::time::timeout(Duration::from_secs(2), serve).await;
        }
        result
    }

    /// Logs in to `via` and has it wake `target`: the packets it sent.
    async fn wake_through(&self, target: &str, via: &str, password: Secret, s: &Session) -> Result<u32, ConnectError> {
        let cancel = s.cancel_token();
        let tunnel = self.log_in(via, password, s).await?;
        let reply = tokio::select! {
            r = tunnel.wake(target) => r.map_err(ConnectError::WakeRefused)?,
            _ = cancel.cancelled() => return Err(ConnectError::Cancelled),
        };
        match reply.error {
            Some(why) => Err(ConnectError::WakeRefused(why)),
            None => Ok(reply.sent),
        }
    }
}

/// Runs `f` on a tunnel runtime of its own (`thin_tunnel::runtime`).
fn on_runtime<T>(f: impl std::future::Future<Output = Result<T, ConnectError>>) -> Result<T, ConnectError> {
    let rt = thin_tunnel::runtime::build("thin-connect-rt").map_err(|e| ConnectError::Other(e.to_string()))?;
    let r = rt.block_on(f);
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

impl Connector for RealConnector {
    fn run(&self, pcid: &str, password: Secret, session: &Session) -> Result<(), ConnectError> {
        on_runtime(self.session(pcid, password, session))
    }

    fn wake(&self, target: &str, via: &str, password: Secret, session: &Session) -> Result<u32, ConnectError> {
        on_runtime(self.wake_through(target, via, password, session))
    }
}

/// Asks the window for the one-time password.
struct AskTheWindow(Session);

impl OtpProvider for AskTheWindow {
    fn ask(&self, req: OtpRequest) -> OtpAnswer {
        let s = self.0.clone();
        Box::pin(async move { s.ask_otp(req).await })
    }
}

/// A local port for the viewer: 3500-9999 as the original, starting at a
/// place that depends on the computer ID (so the viewer sees the same address
/// for the same office PC), else any free port.
pub async fn bind_local(pcid: &str) -> std::io::Result<TcpListener> {
    const FIRST: u32 = 3500;
    const SPAN: u32 = 9999 - 3500 + 1;
    let h = pcid.to_ascii_lowercase().bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    for i in 0..32 {
        let port = FIRST + (h.wrapping_add(i) % SPAN);
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)).await {
            return Ok(l);
        }
    }
    TcpListener::bind("127.0.0.1:0").await
}

/// Turns an agent error into what the window says.
pub fn classify(e: &ClientError) -> ConnectError {
    match e {
        ClientError::Link(l) => classify_link(l),
        ClientError::Login(l) => match l {
            LoginError::WrongPassword => ConnectError::WrongPassword,
            LoginError::Refused { code, message, retry_after_s } => match code {
                ErrorCode::LockedOut => ConnectError::LockedOut { minutes: retry_after_s.unwrap_or(60).div_ceil(60) },
                ErrorCode::WrongPassword => ConnectError::WrongPassword,
                ErrorCode::WrongOtp => ConnectError::OtpWrong,
                ErrorCode::OtpExpired => ConnectError::OtpExpired,
                ErrorCode::OtpMailFailed => ConnectError::OtpMailFailed,
                ErrorCode::Version => ConnectError::Version,
                ErrorCode::Timeout => ConnectError::Timeout,
                _ => ConnectError::Other(message.clone()),
            },
            LoginError::OtpNotGiven { .. } => ConnectError::Cancelled,
            LoginError::Protocol(m) if m.contains("in time") => ConnectError::Timeout,
            other => ConnectError::Other(other.to_string()),
        },
        ClientError::Lost(m) => ConnectError::ConnectionLost(m.clone()),
        // The office PC's own words (unknown home PC, inspection): they name the fix.
        ClientError::Refused(m) => ConnectError::Other(m.clone()),
    }
}

/// Turns a gateway error into what the window says.
pub fn classify_link(l: &LinkError) -> ConnectError {
    match l {
        LinkError::Unreachable { addr, .. } => ConnectError::GatewayUnreachable { gateway: addr.clone() },
        LinkError::Tls { cause: TlsFailure::Expired, .. } => ConnectError::CertExpired,
        LinkError::Tls { cause, .. } if cause.is_certificate() => ConnectError::CertUntrusted,
        LinkError::Tls { addr, .. } => ConnectError::GatewayUnreachable { gateway: addr.clone() },
        LinkError::Refused { code, message } => match code {
            ErrorCode::ServerOffline => ConnectError::ServerOffline,
            ErrorCode::UnknownPcid => ConnectError::UnknownPcid,
            ErrorCode::InvalidPcid => ConnectError::InvalidPcid,
            ErrorCode::Busy => ConnectError::Busy,
            ErrorCode::Version => ConnectError::Version,
            ErrorCode::Timeout => ConnectError::Timeout,
            _ => ConnectError::Other(message.clone()),
        },
        LinkError::Http { .. } | LinkError::Redirect { .. } => ConnectError::Other(l.to_string()),
        LinkError::Lost(m) => ConnectError::ConnectionLost(m.clone()),
    }
}

/// A connector that cannot connect, for a build without a usable entry point:
/// the window opens and says why.
pub struct UnusableConnector(pub ConnectError);

impl Connector for UnusableConnector {
    fn run(&self, _pcid: &str, _password: Secret, s: &Session) -> Result<(), ConnectError> {
        s.progress(Progress::Connecting);
        Err(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_plain_language() {
        let tls = |cause: TlsFailure| ClientError::Link(LinkError::Tls { addr: "gw:443".into(), cause });
        assert_eq!(classify(&tls(TlsFailure::Expired)), ConnectError::CertExpired);
        assert_eq!(classify(&tls(TlsFailure::UnknownIssuer)), ConnectError::CertUntrusted);
        assert_eq!(
            classify(&ClientError::Link(LinkError::Unreachable { addr: "gw:443".into(), cause: "refused".into() })),
            ConnectError::GatewayUnreachable { gateway: "gw:443".into() }
        );
        let refused = |code| ClientError::Link(LinkError::Refused { code, message: "m".into() });
        assert_eq!(classify(&refused(ErrorCode::ServerOffline)), ConnectError::ServerOffline);
        assert_eq!(classify(&refused(ErrorCode::UnknownPcid)), ConnectError::UnknownPcid);
        assert_eq!(classify(&ClientError::Login(LoginError::WrongPassword)), ConnectError::WrongPassword);
        let locked = LoginError::Refused { code: ErrorCode::LockedOut, message: "m".into(), retry_after_s: Some(61) };
        assert_eq!(classify(&ClientError::Login(locked)), ConnectError::LockedOut { minutes: 2 });
        let none = LoginError::OtpNotGiven { destination: "a***@x.org".into() };
        assert_eq!(classify(&ClientError::Login(none)), ConnectError::Cancelled);
    }

    #[tokio::test]
    async fn local_ports_are_in_the_original_range_and_stable() {
        let a = bind_local("desk-01").await.unwrap();
        let pa = a.local_addr().unwrap().port();
        assert!((3500..=9999).contains(&pa), "{pa}");
        assert!(a.local_addr().unwrap().ip().is_loopback());
        drop(a);
        let b = bind_local("DESK-01").await.unwrap();
        // The same ID starts at the same place (unless something took the port meanwhile).
        let pb = b.local_addr().unwrap().port();
        assert!(pb == pa || (3500..=9999).contains(&pb));
        let c = bind_local("desk-01").await.unwrap();
        assert_ne!(c.local_addr().unwrap().port(), pb, "a taken port is skipped");
    }
}
