//! The built-in desktop: office PCs without an RDP host serve their own
//! screen over RDP (the original's URDP), so the employee keeps the viewer
//! they have (mstsc, FreeRDP).
//!
//! - Which desktop a PC serves is `desktop` in `thinsvr.toml`
//!   ([`DesktopMode`]): the RDP host at `target`, the built-in one, or `auto`
//!   (the built-in one when nothing answers at `target`).
//! - The built-in server never listens on a socket: it is fed the tunnel's
//!   streams ([`server::DesktopServer::serve`]), so only a client that logged
//!   in through the tunnel reaches it.
//! - The employee types no second password: both ends derive a one-time
//!   password from the tunnel's login ([`one_time_password`]); thinclient
//!   hands it to the viewer (never on its command line), and the server
//!   accepts nothing else. Another user of the home PC who connects to the
//!   local port gets nothing.
//! - The home PC asks first which desktop the office PC serves
//!   ([`KIND_DESKTOP`], answered by a [`DesktopInfo`]), with the SHA-256 of
//!   the built-in server's certificate, which the viewer pins.

pub mod clipboard;
pub mod diff;
pub mod encode;
pub mod screen;
pub mod server;

use std::time::Duration;

use ring::hmac;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Stream kind: the home PC asks which desktop the office PC serves.
pub const KIND_DESKTOP: u8 = 5;

/// The user name of the built-in desktop's one-time credentials.
pub const USER: &str = "thin";

/// The manual's port of the original's built-in desktop (URDP), which the
/// viewer sees on the home PC when nothing else was chosen.
pub const URDP_PORT: u16 = 3459;

/// ServerMask64 bit of a server that serves its own desktop (URDP).
pub const MASK_BUILTIN: u64 = 1;

/// Which desktop the office PC serves (`desktop` in `thinsvr.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesktopMode {
    /// The built-in desktop when nothing answers at the RDP target, else the RDP host.
    #[default]
    Auto,
    /// Always the built-in desktop.
    Builtin,
    /// Always the RDP host at the target.
    Rdp,
}

impl std::str::FromStr for DesktopMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "builtin" => Ok(Self::Builtin),
            "rdp" => Ok(Self::Rdp),
            _ => Err(format!("desktop: {s:?} is not one of auto, builtin, rdp")),
        }
    }
}

impl std::fmt::Display for DesktopMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Builtin => "builtin",
            Self::Rdp => "rdp",
        })
    }
}

/// What the office PC serves to this tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "desktop", rename_all = "lowercase")]
pub enum DesktopInfo {
    /// The RDP host: the viewer asks for the user's Windows password.
    Rdp,
    /// The built-in desktop, whose TLS certificate has this SHA-256 (hex).
    Builtin { sha256: String },
}

/// The one-time password of the built-in desktop for the tunnel whose login
/// yielded `binding`: both ends compute it, nobody types it. 32 hex digits.
pub fn one_time_password(binding: &[u8; 32]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, binding);
    let tag = hmac::sign(&key, b"thin built-in desktop password v1");
    hex::encode(&tag.as_ref()[..16])
}

/// Longest answer to [`KIND_DESKTOP`] read.
const INFO_MAX: u64 = 1024;

/// Answers a [`KIND_DESKTOP`] stream (the kind byte was read).
pub async fn answer_info<S: AsyncWrite + Unpin>(st: &mut S, info: &DesktopInfo) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(info).map_err(std::io::Error::other)?;
    line.push(b'\n');
    st.write_all(&line).await?;
    st.flush().await
}

/// Reads the office PC's answer to [`KIND_DESKTOP`]. An office PC too old to
/// know the question closes the stream: that is the RDP host.
pub async fn read_info<S: AsyncRead + Unpin>(st: S, wait: Duration) -> std::io::Result<DesktopInfo> {
    use tokio::io::AsyncReadExt;
    let mut line = String::new();
    let mut r = BufReader::new(st.take(INFO_MAX));
    match tokio::time::timeout(wait, r.read_line(&mut line)).await {
        Ok(Ok(0)) => Ok(DesktopInfo::Rdp),
        Ok(Ok(_)) => serde_json::from_str(line.trim()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("the office PC's desktop answer: {e}"))
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the office PC did not say which desktop it serves"))
        }
    }
}

/// The built-in desktop of a running office PC, when its platform has one.
#[derive(Clone, Default)]
pub struct Desktop {
    server: Option<std::sync::Arc<server::DesktopServer>>,
}

impl std::fmt::Debug for Desktop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desktop").field("builtin", &self.server.is_some()).finish()
    }
}

impl Desktop {
    /// The built-in desktop of this platform: the X11 display of `DISPLAY`
    /// on Linux, the desktop of this session (GDI) on Windows, except in a
    /// service's session 0, which has no user's desktop; none elsewhere.
    pub fn for_platform() -> Self {
        #[cfg(target_os = "linux")]
        {
            if std::env::var_os("DISPLAY").is_none() {
                tracing::info!("no DISPLAY: the built-in desktop is off");
                return Self::default();
            }
            let open: server::ScreenOpener = std::sync::Arc::new(|| {
                crate::platform::x11::X11Screen::open(None).map(|s| Box::new(s) as Box<dyn screen::Screen>)
            });
            Self::with_screen(open)
        }
        #[cfg(windows)]
        {
            if crate::platform::gdi::in_service_session() {
                tracing::info!(
                    "the built-in desktop is off: a service (session 0) cannot see the user's desktop; \
                     run `thinsvr run` in the user's session to serve it"
                );
                return Self::default();
            }
            let open: server::ScreenOpener = std::sync::Arc::new(|| {
                crate::platform::gdi::GdiScreen::open().map(|s| Box::new(s) as Box<dyn screen::Screen>)
            });
            Self::with_screen(open)
        }
        #[cfg(not(any(target_os = "linux", windows)))]
        Self::default()
    }

    /// The built-in desktop of the screen `open` opens.
    pub fn with_screen(open: server::ScreenOpener) -> Self {
        match server::DesktopServer::new(open) {
            Ok(s) => Self { server: Some(std::sync::Arc::new(s)) },
            Err(e) => {
                tracing::warn!("the built-in desktop is off: {e}");
                Self::default()
            }
        }
    }

    /// Whether this PC has a built-in desktop to serve.
    pub fn available(&self) -> bool {
        self.server.is_some()
    }

    /// The server, when this tunnel is to be served the built-in desktop:
    /// `mode` chooses it, or `auto` and nothing answers at `target`.
    pub async fn serves(&self, mode: DesktopMode, target: &str) -> Option<&std::sync::Arc<server::DesktopServer>> {
        let server = self.server.as_ref()?;
        match mode {
            DesktopMode::Builtin => Some(server),
            DesktopMode::Rdp => None,
            DesktopMode::Auto => (!target_answers(target, TARGET_PROBE).await).then_some(server),
        }
    }

    /// Where a forwarded connection goes under `mode`, with one connect to
    /// `target` at most: in `auto` the connect that finds the RDP host is
    /// the connection itself (no probe and second connect per connection),
    /// and `TARGET_PROBE` without an answer means the built-in desktop.
    /// The error says why the target could not be reached (`rdp`, or no
    /// built-in desktop on this PC).
    pub async fn route(&self, mode: DesktopMode, target: &str) -> Result<Route<'_>, String> {
        let fallback = match (&self.server, mode) {
            (Some(server), DesktopMode::Builtin) => return Ok(Route::Builtin(server)),
            (Some(server), DesktopMode::Auto) => Some(server),
            _ => None,
        };
        let wait = if fallback.is_some() { TARGET_PROBE } else { TARGET_CONNECT };
        match (tokio::time::timeout(wait, tokio::net::TcpStream::connect(target)).await, fallback) {
            (Ok(Ok(tcp)), _) => Ok(Route::Target(tcp)),
            (_, Some(server)) => Ok(Route::Builtin(server)),
            (Ok(Err(e)), None) => Err(format!("cannot reach the local service {target}: {e}")),
            (Err(_), None) => Err(format!("the local service {target} did not accept in {} s", wait.as_secs())),
        }
    }
}

/// How long a forwarded connection waits for the RDP target when the
/// built-in desktop is not the alternative.
pub const TARGET_CONNECT: Duration = Duration::from_secs(10);

/// Where one forwarded connection goes ([`Desktop::route`]).
pub enum Route<'a> {
    /// To the built-in desktop.
    Builtin(&'a std::sync::Arc<server::DesktopServer>),
    /// To the RDP target, connected.
    Target(tokio::net::TcpStream),
}

/// How long `auto` waits for the RDP target to answer.
pub const TARGET_PROBE: Duration = Duration::from_secs(1);

/// Whether something answers at the RDP `target` within `wait`.
pub async fn target_answers(target: &str, wait: Duration) -> bool {
    matches!(tokio::time::timeout(wait, tokio::net::TcpStream::connect(target)).await, Ok(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_password_depends_on_the_binding_only() {
        let a = one_time_password(&[1; 32]);
        assert_eq!(a, one_time_password(&[1; 32]));
        assert_ne!(a, one_time_password(&[2; 32]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [DesktopMode::Auto, DesktopMode::Builtin, DesktopMode::Rdp] {
            assert_eq!(m.to_string().parse::<DesktopMode>().unwrap(), m);
        }
        let e = "urdp".parse::<DesktopMode>().unwrap_err();
        assert!(e.contains("auto, builtin, rdp"), "{e}");
    }

    #[tokio::test]
    async fn route_without_a_builtin_desktop_connects_or_says_why_not() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let none = Desktop::default();
        for mode in [DesktopMode::Auto, DesktopMode::Builtin, DesktopMode::Rdp] {
            let e = none.route(mode, &silent.to_string()).await.err().expect("nothing listens");
            assert!(e.starts_with(&format!("cannot reach the local service {silent}: ")), "{e}");
        }
        let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = host.local_addr().unwrap().to_string();
        let Ok(Route::Target(tcp)) = none.route(DesktopMode::Auto, &target).await else { panic!("not the target") };
        let (seen, _) = host.accept().await.unwrap();
        assert_eq!(seen.peer_addr().unwrap(), tcp.local_addr().unwrap());
    }

    #[tokio::test]
    async fn info_round_trip_and_old_servers() {
        let info = DesktopInfo::Builtin { sha256: "ab".repeat(32) };
        let (mut a, b) = tokio::io::duplex(4096);
        answer_info(&mut a, &info).await.unwrap();
        assert_eq!(read_info(b, Duration::from_secs(5)).await.unwrap(), info);
        // An office PC that does not know the question closes the stream.
        let (a, b) = tokio::io::duplex(64);
        drop(a);
        assert_eq!(read_info(b, Duration::from_secs(5)).await.unwrap(), DesktopInfo::Rdp);
        // A peer that sends a line without end is cut at INFO_MAX.
        let (mut a, b) = tokio::io::duplex(8192);
        a.write_all(&[b'x'; 4000]).await.unwrap();
        assert!(read_info(b, Duration::from_secs(5)).await.is_err());
    }
}
