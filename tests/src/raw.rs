//! The gateway protocol spoken by hand, for tests and benches that play a peer
//! the apps never are: an office PC that registers, serves, asks for mail or
//! stays silent exactly when told ([`RawServer`]), clients that ask for a
//! computer and then say nothing ([`client_connect`]), and connections from
//! any source address of 127/8 ([`tcp_from`]).

use std::net::{IpAddr, SocketAddr};

use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::identity::Identity;
use thin_protocol::messages::{GateToServer, Hello, ServerToGate};
use thin_protocol::secret::Secret;
use tokio::net::TcpStream;

/// A TLS connection to the gateway.
pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TCP connection to `addr` from `src` (on loopback any 127/8 address works).
pub async fn tcp_from(src: IpAddr, addr: SocketAddr) -> TcpStream {
    let sock = if src.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
    let sock = sock.unwrap();
    sock.bind(SocketAddr::new(src, 0)).unwrap();
    sock.connect(addr).await.unwrap()
}

/// TLS to the gateway from `src`, upgraded to frames.
pub async fn upgraded_from(src: IpAddr, addr: SocketAddr, ca: &str) -> Tls {
    upgrade(crate::https::tls_over(tcp_from(src, addr).await, ca).await).await
}

/// TLS to the gateway, upgraded to frames.
pub async fn upgraded(addr: SocketAddr, ca: &str) -> Tls {
    upgrade(crate::https::tls_connect(addr, ca).await).await
}

async fn upgrade(mut s: Tls) -> Tls {
    thin_protocol::http::write_upgrade_request(&mut s, "gw").await.unwrap();
    assert_eq!(thin_protocol::http::read_response(&mut s).await.unwrap().status, 101);
    s
}

/// The first frame of a client asking for `pcid`, as the apps send it.
pub fn client_hello(pcid: &str, build: Option<u32>, follows_redirect: bool) -> Hello {
    Hello::ClientConnect {
        version: thin_protocol::PROTOCOL_VERSION,
        pcid: pcid.into(),
        build,
        follows_redirect,
        bare_records: false,
    }
}

/// A client's request for `pcid`; the caller reads the answer (`GateToTunnel`).
pub async fn client_connect(addr: SocketAddr, ca: &str, pcid: &str) -> Tls {
    let mut s = upgraded(addr, ca).await;
    write_frame(&mut s, &client_hello(pcid, None, false)).await.unwrap();
    s
}

/// A client's request for `pcid` announcing build `build`; the caller reads the answer.
pub async fn client_connect_build(addr: SocketAddr, ca: &str, pcid: &str, build: u32) -> Tls {
    let mut s = upgraded(addr, ca).await;
    write_frame(&mut s, &client_hello(pcid, Some(build), false)).await.unwrap();
    s
}

/// A client's request for `pcid` from an app that follows redirects; the
/// caller reads the answer.
pub async fn client_connect_following(addr: SocketAddr, ca: &str, pcid: &str) -> Tls {
    let mut s = upgraded(addr, ca).await;
    write_frame(&mut s, &client_hello(pcid, None, true)).await.unwrap();
    s
}

/// An office PC's data connection for `tunnel_id`; the caller reads the answer.
pub async fn attach(addr: SocketAddr, ca: &str, tunnel_id: &str) -> Tls {
    let mut s = upgraded(addr, ca).await;
    let hello =
        Hello::Attach { version: thin_protocol::PROTOCOL_VERSION, tunnel_id: tunnel_id.into(), bare_records: false };
    write_frame(&mut s, &hello).await.unwrap();
    s
}

/// An office PC's control connection, spoken by hand.
pub struct RawServer {
    /// The connection.
    pub s: Tls,
    /// Its key.
    pub id: Identity,
    /// The computer ID the gateway's `Welcome` named.
    pub pcid: Option<String>,
}

impl RawServer {
    /// Opens a control connection from 127.0.0.1 and proves `id`.
    pub async fn login(addr: SocketAddr, ca: &str, id: Identity) -> Self {
        Self::login_from(IpAddr::from([127, 0, 0, 1]), addr, ca, id).await
    }

    /// Opens a control connection from `src` and proves `id`.
    pub async fn login_from(src: IpAddr, addr: SocketAddr, ca: &str, id: Identity) -> Self {
        let mut s = upgraded_from(src, addr, ca).await;
        let hello = Hello::ServerHello {
            version: thin_protocol::PROTOCOL_VERSION,
            public_key: id.public_key_hex(),
            hostname: "raw".into(),
        };
        write_frame(&mut s, &hello).await.unwrap();
        let GateToServer::Challenge { nonce } = read_frame(&mut s).await.unwrap() else { panic!("no challenge") };
        write_frame(&mut s, &ServerToGate::Proof { signature: id.sign_challenge(&nonce).unwrap() }).await.unwrap();
        let GateToServer::Welcome { pcid, .. } = read_frame(&mut s).await.unwrap() else { panic!("no welcome") };
        Self { s, id, pcid }
    }

    /// Sends a frame.
    pub async fn send(&mut self, m: &ServerToGate) {
        write_frame(&mut self.s, m).await.unwrap();
    }

    /// The next frame that is not a keepalive (pings are answered).
    pub async fn recv(&mut self) -> GateToServer {
        loop {
            match read_frame(&mut self.s).await.unwrap() {
                GateToServer::Ping => self.send(&ServerToGate::Pong).await,
                GateToServer::Pong => {}
                m => return m,
            }
        }
    }

    /// Sends `Ping` and waits for its `Pong` (answering the gateway's pings,
    /// skipping `Incoming`); the round trip.
    pub async fn ping(&mut self) -> std::time::Duration {
        let t = std::time::Instant::now();
        self.send(&ServerToGate::Ping).await;
        loop {
            match read_frame(&mut self.s).await.unwrap() {
                GateToServer::Ping => self.send(&ServerToGate::Pong).await,
                GateToServer::Pong => return t.elapsed(),
                GateToServer::Incoming { .. } => {}
                other => panic!("expected Pong, got {other:?}"),
            }
        }
    }

    /// `Register` with `token`; the answer.
    pub async fn register(&mut self, pcid: &str, token: Option<&str>) -> GateToServer {
        self.send(&ServerToGate::Register { pcid: pcid.into(), token: token.map(Secret::new) }).await;
        self.recv().await
    }

    /// `Serve`; the answer.
    pub async fn serve(&mut self) -> GateToServer {
        self.send(&ServerToGate::Serve { server_mask: 18, policy: false, macs: vec![] }).await;
        self.recv().await
    }

    /// `OtpMail` of `code` to `to` with the office PC's `system` text; returns
    /// the gateway's `OtpMailed` error (`None`: handed to the mail server),
    /// skipping `Incoming` notices.
    pub async fn otp_mail(&mut self, request_id: u64, to: &str, system: &str) -> Option<String> {
        let code = Secret::new("424242");
        let m = ServerToGate::OtpMail { request_id, to: to.into(), code, system: system.into(), valid_s: 300 };
        self.send(&m).await;
        loop {
            match self.recv().await {
                GateToServer::OtpMailed { request_id: r, error } if r == request_id => return error,
                GateToServer::Incoming { .. } => {}
                other => panic!("expected OtpMailed, got {other:?}"),
            }
        }
    }
}

/// A client logged in end to end to `pcid` through `link` with `password`, as
/// the apps log in, and stopped there: the sealed pipe before any stream (the
/// home-PC check included), for tests that then speak out of turn.
pub async fn logged_in(
    link: &thin_tunnel::link::Link,
    pcid: &str,
    password: &str,
) -> thin_tunnel::decouple::Decoupled<thin_tunnel::link::LinkStream> {
    let mut s = link.open().await.unwrap();
    let hello = Hello::ClientConnect {
        version: thin_protocol::PROTOCOL_VERSION,
        pcid: pcid.into(),
        build: None,
        follows_redirect: false,
        bare_records: true,
    };
    write_frame(&mut s, &hello).await.unwrap();
    let answer = read_frame::<thin_protocol::messages::GateToTunnel, _>(&mut s).await.unwrap();
    let thin_protocol::messages::GateToTunnel::Paired { bare_records, .. } = answer else {
        panic!("not paired: {answer:?}")
    };
    let bare = if bare_records { thin_tunnel::decouple::Bare::First } else { thin_tunnel::decouple::Bare::No };
    let times = thin_tunnel::e2e::LoginTimes {
        answer: std::time::Duration::from_secs(10),
        keepalive: std::time::Duration::from_secs(1),
        idle: std::time::Duration::from_secs(10),
    };
    let pw = Secret::new(password);
    let keys = thin_tunnel::e2e::client_login(&mut s, &pw, pcid, &thin_tunnel::otp::NoOtp, times).await.unwrap();
    thin_tunnel::decouple::Decoupled::over_link(s, keys, bare).await.unwrap()
}
