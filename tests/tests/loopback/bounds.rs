//! Bounds on what peers control, `/thinstat/`, PROXY headers, and dead-peer
//! detection.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use thin_e2e::raw::{self, upgraded, RawServer};
use thin_e2e::*;

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::identity::Identity;
use thin_protocol::messages::{ErrorCode, GateToServer, GateToTunnel, ServerToGate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn closed_soon<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut b = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // an error frame may come first
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_malformed_frames_close_only_that_connection() {
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("steady", "pw").await;
    let tunnel = gw.connect("steady", "pw").await;

    // Oversized length prefix.
    let mut s = upgraded(gw.addr, gw.ca()).await;
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    assert!(closed_soon(&mut s).await, "oversized frame closes the connection");
    // Malformed JSON in a frame.
    let mut s = upgraded(gw.addr, gw.ca()).await;
    s.write_all(&7u32.to_be_bytes()).await.unwrap();
    s.write_all(b"{\"t\":1}").await.unwrap();
    assert!(closed_soon(&mut s).await, "malformed frame closes the connection");
    // An unexpected first message.
    let mut s = upgraded(gw.addr, gw.ca()).await;
    write_frame(&mut s, &ServerToGate::Pong).await.unwrap();
    assert!(matches!(read_frame::<GateToTunnel, _>(&mut s).await, Ok(GateToTunnel::Error { .. })));
    // Garbage instead of TLS.
    let mut raw = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\x01garbage").await.unwrap();
    assert!(closed_soon(&mut raw).await, "plain-text garbage is dropped");
    // Garbage HTTP inside TLS.
    let mut s = https::tls_connect(gw.addr, gw.ca()).await;
    s.write_all(b"\x01\x02\x03 nonsense\r\n\r\n").await.unwrap();
    assert!(closed_soon(&mut s).await);

    // The established session is unaffected.
    assert_tunnel_echo(&tunnel, 300_000, 3).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_and_unestablished_connections_are_capped() {
    let gw = TestGateway::with_ini(
        "DosProtection_MaxConnectionsPerIp 4\nDosProtection_MaxUnestablishedConnections 100\nHandshakeTimeout 3000",
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    gw.wait_connections_from("4 connections admitted", LOCALHOST, 4).await;
    let mut fifth = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    assert!(closed_soon(&mut fifth).await, "the fifth connection from one address is dropped");
    // Silent connections are dropped after the handshake timeout, freeing the slots.
    for mut s in idle {
        assert!(closed_soon(&mut s).await, "a connection that never speaks TLS is closed");
    }
    let (status, _) = gw.get("/thingate/").await;
    assert_eq!(status, 200);
    gw.shutdown().await;

    let gw =
        TestGateway::with_ini("DosProtection_MaxConnectionsPerIp 100\nDosProtection_MaxUnestablishedConnections 3")
            .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    gw.wait_connections_from("3 connections admitted", LOCALHOST, 3).await;
    let mut fourth = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    assert!(closed_soon(&mut fourth).await, "over the unestablished limit");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinstat_lists_sessions_in_text_and_json() {
    let gw = TestGateway::start().await;
    let pc = gw.office_pc("stat-pc", "pw").await;
    let id = pc.cfg().identity().unwrap();
    let _t = gw.connect("stat-pc", "pw").await;
    let (status, body) = gw.get("/thinstat/").await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "NumSession 1");
    assert!(lines.contains(&format!("Msid[0] {}", id.msid()).as_str()), "{body}");
    assert!(lines.contains(&"NumClients[0] 1"), "{body}");
    assert!(lines.contains(&"IpAddress[0] 127.0.0.1"), "{body}");
    for field in ["EstablishedDateTime[0] ", "Hostname[0] ", "ServerMask64[0] ", "SessionId[0] "] {
        assert!(lines.iter().any(|l| l.starts_with(field)), "{field} missing: {body}");
    }
    // Windows RDP and service mode (2 | 16), no policy (32); 128 when this
    // host has an adapter with a MAC address to report for Wake-on-LAN.
    let mask: u64 = lines.iter().find_map(|l| l.strip_prefix("ServerMask64[0] ")).unwrap().parse().unwrap();
    assert_eq!(mask & !128, 18, "{body}");
    // EstablishedDateTime is in the original's epoch (Unix ms - 9 h).
    let est: i64 = lines.iter().find_map(|l| l.strip_prefix("EstablishedDateTime[0] ")).unwrap().parse().unwrap();
    let now_orig = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 32_400_000;
    assert!((now_orig - est).abs() < 120_000, "{est} vs {now_orig}");
    let (status, json) = gw.get("/thinstat/?format=json").await;
    assert_eq!(status, 200);
    assert!(json.contains("\"NumSession\":1") && json.contains(&id.msid()), "{json}");
    // A standalone gateway has no cluster lines.
    assert!(!body.contains("Cluster") && !json.contains("Cluster"), "{body}{json}");
    gw.shutdown().await;
}

#[test]
fn thinstat_refuses_peers_that_are_not_loopback() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let gw = TestGateway::start().await;
        let req = thin_protocol::http::Request { method: "GET".into(), target: "/thinstat/".into(), headers: vec![] };
        let far: std::net::SocketAddr = "203.0.113.7:50000".parse().unwrap();
        let (status, ..) = thingate::thinstat::page(&gw.gateway.figures(), &req, far);
        assert_eq!(status, 403);
        let near: std::net::SocketAddr = "[::1]:50000".parse().unwrap();
        assert_eq!(thingate::thinstat::page(&gw.gateway.figures(), &req, near).0, 200);
        // The alive check answers everyone, but tells the session count to loopback only.
        let alive = thin_protocol::http::Request { method: "GET".into(), target: "/thingate/".into(), headers: vec![] };
        let (status, _, _, body) = thingate::thinstat::page(&gw.gateway.figures(), &alive, far);
        assert!(status == 200 && body.starts_with("PACK ThinGate ") && !body.contains("sessions="), "{body}");
        let (_, _, _, body) = thingate::thinstat::page(&gw.gateway.figures(), &alive, near);
        assert!(body.contains("sessions=0; "), "{body}");
        gw.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_dropped_after_the_tunnel_timeout() {
    // TunnelTimeout 5000 ms, keepalive 500 ms (see GateDir).
    let gw = TestGateway::start().await;
    let id = gw.register("mute", "pw").await.cfg().identity().unwrap();
    // A server that logs in, serves, then never answers again.
    let mut s = RawServer::login(gw.addr, gw.ca(), id).await;
    assert!(matches!(s.serve().await, GateToServer::Serving { .. }));
    assert_eq!(gw.sessions(), 1);
    gw.wait_sessions("silent server dropped", 0, Duration::from_secs(15)).await;
    drop(s);
    gw.shutdown().await;
}

/// A load balancer on loopback that prepends a PROXY v2 header claiming `claimed` as the client.
async fn balancer(gateway: SocketAddr, claimed: SocketAddr) -> SocketAddr {
    balancer_from(LOCALHOST, gateway, claimed).await
}

/// [`balancer`] connecting to the gateway from `src`.
pub(crate) async fn balancer_from(src: IpAddr, gateway: SocketAddr, claimed: SocketAddr) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut out = raw::tcp_from(src, gateway).await;
                out.write_all(&thingate::proxy_protocol::v2_header(claimed, gateway)).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_gives_limits_and_thinstat_the_real_address() {
    let gw = TestGateway::with_ini("AcceptProxyProtocol 1\nDosProtection_MaxConnectionsPerIp 3").await;
    let far: std::net::SocketAddr = "198.51.100.23:40000".parse().unwrap();
    let lb_far = balancer(gw.addr, far).await;
    let lb_near = balancer(gw.addr, "127.0.0.1:40001".parse().unwrap()).await;
    // An office PC behind the balancer is listed with its real address.
    let _pc = gw.office_pc("behind-lb", "pw").via(gw.dir.link(lb_far)).await;
    let (status, body) = https::get(lb_near, gw.ca(), "/thinstat/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("IpAddress[0] 198.51.100.23"), "{body}");
    // The loopback-only pages refuse a far client even though the TCP peer is loopback.
    let (status, _) = https::get(lb_far, gw.ca(), "/thinstat/").await;
    assert_eq!(status, 403);
    // Per-IP limits count the real address: the office PC holds 1 of 3 slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(lb_far).await.unwrap());
    }
    gw.wait_connections_from("3 connections from the far address", far.ip(), 3).await;
    let mut extra = tokio::net::TcpStream::connect(lb_far).await.unwrap();
    assert!(closed_soon(&mut extra).await, "over the per-IP limit of the real address");
    // A connection without a header is dropped.
    let mut raw = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    raw.write_all(b"GET /thingate/ HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(closed_soon(&mut raw).await);
    gw.shutdown().await;
}

/// Opens `n` silent TCP connections from `src` to `gw` as fast as it can and
/// keeps them open (garbage is refused by the handshake, see above; silence
/// holds a slot longest).
async fn flood(src: std::net::IpAddr, gw: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::new(src, 0)).unwrap();
        if let Ok(s) = sock.connect(gw).await {
            out.push(s);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_loopback_is_held_at_the_limits_and_sessions_carry_on() {
    use std::sync::atomic::Ordering::Relaxed;
    let gw = TestGateway::with_ini(
        "DosProtection_MaxConnectionsPerIp 16\nDosProtection_MaxUnestablishedConnections 40\nHandshakeTimeout 60000",
    )
    .await;
    let _pc = gw.office_pc("flooded", "pw").await;
    let tunnel = gw.connect("flooded", "pw").await;

    // Three attacking addresses (all of 127/8 is loopback), 300 connections each.
    let attackers: Vec<std::net::IpAddr> = (2..5).map(|i| format!("127.0.0.{i}").parse().unwrap()).collect();
    let floods: Vec<_> = attackers.iter().map(|&ip| tokio::spawn(flood(ip, gw.addr, 300))).collect();
    let gwc = gw.state();
    let ips = attackers.clone();
    let watcher = tokio::spawn(async move {
        // The most connections admitted from one attacker, and from all of them, at any sample.
        let (mut per_ip, mut all) = (0, 0);
        for _ in 0..400 {
            let now: Vec<usize> = ips.iter().map(|&ip| gwc.limits.connections_from(ip)).collect();
            per_ip = per_ip.max(*now.iter().max().unwrap());
            all = all.max(now.iter().sum());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (per_ip, all)
    });
    // The established tunnel keeps relaying during the flood.
    assert_tunnel_echo(&tunnel, 2 << 20, 7).await;
    let mut held = Vec::new();
    for f in floods {
        held.extend(f.await.unwrap());
    }
    let (per_ip, all) = watcher.await.unwrap();
    assert!(per_ip > 0 && per_ip <= 16, "at most 16 connections per address at once, saw {per_ip}");
    assert!(all <= 40, "at most 40 unestablished connections at once, saw {all}");
    // No slot frees during the flood (silent peers, long handshake timeout): exactly
    // 40 are admitted (16 + 16 + 8) and every other one is refused at once.
    let refused = gw.gateway.metrics.connections_refused.load(Relaxed) as usize;
    assert!(held.len() >= 850, "{} of 900 connects succeeded", held.len());
    assert_eq!(refused, held.len() - 40, "refused of {} flood connections", held.len());
    assert!(gw.gateway.metrics.connections_open.load(Relaxed) <= 40 + 2);

    // Attackers that go away release their slots.
    drop(held);
    let gwc = gw.state();
    let attackers2 = attackers.clone();
    wait_for("the flood's slots to be released", Duration::from_secs(10), || {
        let n: usize = attackers2.iter().map(|&ip| gwc.limits.connections_from(ip)).sum();
        async move { (n == 0).then_some(()) }
    })
    .await;
    // A new client gets through afterwards, and the first tunnel still works.
    let fresh = gw.connect("flooded", "pw").await;
    assert_tunnel_echo(&fresh, 1 << 20, 8).await;
    assert_tunnel_echo(&tunnel, 1 << 20, 9).await;
    gw.shutdown().await;
}

/// True when `s` ends (EOF or reset) within 5 s without a single byte.
async fn closed_without_a_byte(s: &mut tokio::net::TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_are_taken_only_from_the_balancers_of_proxy_protocol_from() {
    use std::sync::atomic::Ordering::Relaxed;
    let gw = TestGateway::with_ini("AcceptProxyProtocol 1\nProxyProtocolFrom 127.0.0.2").await;
    let lo = |last: u8| IpAddr::from([127, 0, 0, last]);
    // The listed balancer passes its clients' addresses on.
    let near = balancer_from(lo(2), gw.addr, "127.0.0.1:40001".parse().unwrap()).await;
    assert_eq!(https::get(near, gw.ca(), "/thinstat/").await.0, 200);
    let far = balancer_from(lo(2), gw.addr, "198.51.100.23:40000".parse().unwrap()).await;
    assert_eq!(https::get(far, gw.ca(), "/thinstat/").await.0, 403);
    // Anyone else claiming loopback in a header of their own gets nothing back, not even TLS.
    let header = thingate::proxy_protocol::v2_header("127.0.0.1:1".parse().unwrap(), gw.addr);
    let mut s = raw::tcp_from(lo(1), gw.addr).await;
    let _ = s.write_all(&header).await;
    let _ = s.write_all(b"GET /thinstat/ HTTP/1.1\r\n\r\n").await;
    assert!(closed_without_a_byte(&mut s).await, "a header from 127.0.0.1 (not listed) is not read");
    // Nor can fresh addresses in headers get round the per-address limits.
    let mut claims = Vec::new();
    for i in 0..50u8 {
        let mut s = raw::tcp_from(lo(3), gw.addr).await;
        let claimed = SocketAddr::new(IpAddr::from([198, 51, 100, i]), 1000);
        let _ = s.write_all(&thingate::proxy_protocol::v2_header(claimed, gw.addr)).await;
        claims.push((claimed.ip(), s));
    }
    for (ip, s) in &mut claims {
        assert!(closed_without_a_byte(s).await, "claimed {ip}");
        assert_eq!(gw.gateway.limits.connections_from(*ip), 0);
    }
    assert_eq!(gw.gateway.metrics.proxy_untrusted.load(Relaxed), 51);
    assert_eq!(https::get(near, gw.ca(), "/thingate/").await.0, 200, "the balancer still works");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_proxy_protocol_from_only_loopback_may_send_headers_and_the_start_says_so() {
    init_logging();
    let gw = TestGateway::with_ini("AcceptProxyProtocol 1").await;
    // The gateway's task says it as it starts, which may be just after `with_ini` returns.
    let said = "AcceptProxyProtocol 1 without ProxyProtocolFrom: PROXY headers are trusted from loopback only";
    wait_for("the start-up warning", Duration::from_secs(10), || async {
        thin_e2e::logs::captured().contains(said).then_some(())
    })
    .await;
    let trusted = thingate::server::proxy_peers(&gw.gateway.cfg).expect("AcceptProxyProtocol 1");
    for peer in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
        assert!(trusted.contains(peer.parse().unwrap()), "{peer}");
    }
    for peer in ["192.0.2.7", "10.0.0.1", "fd00::2", "::ffff:192.0.2.7"] {
        assert!(!trusted.contains(peer.parse().unwrap()), "{peer}");
    }
    // A balancer on loopback works.
    let lb = balancer(gw.addr, "198.51.100.23:40000".parse().unwrap()).await;
    assert_eq!(https::get(lb, gw.ca(), "/thinstat/").await.0, 403, "the real (far) client is seen");
    assert_eq!(https::get(lb, gw.ca(), "/thingate/").await.0, 200);
    let plain = TestGateway::start().await;
    assert!(thingate::server::proxy_peers(&plain.gateway.cfg).is_none());
    plain.shutdown().await;
    gw.shutdown().await;
}

/// An office PC that serves `pcid` but never opens a data connection.
async fn deaf_server(gw: &TestGateway, pcid: &str) -> RawServer {
    let mut pc = RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    assert!(matches!(pc.register(pcid, None).await, GateToServer::Registered { .. }));
    assert!(matches!(pc.serve().await, GateToServer::Serving { .. }));
    pc
}

/// The first answer a client gets, and when.
async fn first_answer(mut c: raw::Tls) -> (GateToTunnel, Instant) {
    let m = tokio::time::timeout(Duration::from_secs(20), read_frame::<GateToTunnel, _>(&mut c)).await;
    (m.expect("an answer within 20 s").expect("a frame"), Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_per_session_are_counted_from_the_request_on_so_a_rush_cannot_pass_the_limit() {
    let gw = TestGateway::with_ini("MaxTunnelsPerSession 3\nHandshakeTimeout 3000").await;
    let mut pc = deaf_server(&gw, "rushed").await;
    // 20 clients at once, while none of them is paired.
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let (addr, ca) = (gw.addr, gw.ca().to_string());
            tokio::spawn(async move { first_answer(raw::client_connect(addr, &ca, "rushed").await).await })
        })
        .collect();
    let mut incoming = 0;
    while let Ok(m) = tokio::time::timeout(Duration::from_millis(1500), pc.recv()).await {
        assert!(matches!(m, GateToServer::Incoming { .. }), "{m:?}");
        incoming += 1;
    }
    assert_eq!(incoming, 3, "the office PC was asked for 3 data connections, not 20");
    let (mut busy, mut timed_out) = (0, 0);
    for c in clients {
        match c.await.unwrap().0 {
            GateToTunnel::Error { code: ErrorCode::Busy, message } => {
                assert!(message.contains("already has 3 connections"), "{message}");
                busy += 1;
            }
            GateToTunnel::Error { code: ErrorCode::Timeout, .. } => timed_out += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((busy, timed_out), (17, 3));
    // Each count is released as its client's task ends, just after the answer.
    let session = gw.gateway.sessions.get("rushed").unwrap();
    wait_for("every count released", Duration::from_secs(10), || {
        let n = session.num_clients.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n == 0).then_some(()) }
    })
    .await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_for_a_data_connection_that_never_comes_times_out() {
    let gw = TestGateway::with_ini("HandshakeTimeout 1500").await;
    let mut pc = deaf_server(&gw, "deaf").await;
    let started = Instant::now();
    let client = raw::client_connect(gw.addr, gw.ca(), "deaf").await;
    assert!(matches!(pc.recv().await, GateToServer::Incoming { .. }));
    assert_eq!(gw.gateway.pending.len(), 1);
    let (answer, at) = first_answer(client).await;
    let GateToTunnel::Error { code: ErrorCode::Timeout, message } = answer else { panic!("{answer:?}") };
    assert!(message.contains("did not answer within 1 s"), "{message}");
    let waited = at - started;
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5), "{waited:?}");
    assert!(gw.gateway.pending.is_empty(), "the wait is withdrawn");
    assert_eq!(gw.gateway.mail_gate.open_tickets(), 0, "and its mail ticket");
    gw.shutdown().await;
}

/// A client of `pcid` paired by hand with a data connection of `pc`.
async fn pair(gw: &TestGateway, pc: &mut RawServer, pcid: &str) -> (raw::Tls, raw::Tls) {
    let mut client = raw::client_connect(gw.addr, gw.ca(), pcid).await;
    let GateToServer::Incoming { tunnel_id } = pc.recv().await else { panic!("no Incoming") };
    let mut data = raw::attach(gw.addr, gw.ca(), &tunnel_id).await;
    for s in [&mut client, &mut data] {
        assert!(matches!(read_frame::<GateToTunnel, _>(s).await.unwrap(), GateToTunnel::Paired { .. }));
    }
    (client, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_tunnel_where_neither_side_sends_is_closed_after_the_tunnel_timeout() {
    use std::sync::atomic::Ordering::Relaxed;
    let gw = TestGateway::with_ini("TunnelTimeout 2000\nTunnelKeepAlive 500").await;
    let mut pc = deaf_server(&gw, "quiet").await;
    // The silent tunnel's timeout runs from its own pairing, which happens
    // after this instant (and before this side reads `Paired`).
    let paired = Instant::now();
    let (mut silent_c, mut silent_d) = pair(&gw, &mut pc, "quiet").await;
    let (mut busy_c, mut busy_d) = pair(&gw, &mut pc, "quiet").await;
    assert_eq!(gw.gateway.metrics.tunnels_open.load(Relaxed), 2);
    // One pair stays silent; the other sends a byte every 400 ms for 4 s.
    let talker = tokio::spawn(async move {
        for _ in 0..10 {
            busy_c.write_all(b"k").await.unwrap();
            let mut b = [0u8; 1];
            busy_d.read_exact(&mut b).await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        (busy_c, busy_d)
    });
    for s in [&mut silent_c, &mut silent_d] {
        assert!(closed_soon(s).await, "a silent tunnel is closed");
    }
    let closed = paired.elapsed();
    assert!(closed >= Duration::from_millis(2000) && closed < Duration::from_secs(5), "closed after {closed:?}");
    let (mut busy_c, _busy_d) = talker.await.unwrap();
    busy_c.write_all(b"still open").await.expect("a tunnel with traffic stays open past the timeout");
    wait_for("one tunnel left", Duration::from_secs(5), || {
        let n = gw.gateway.metrics.tunnels_open.load(Relaxed);
        async move { (n == 1).then_some(()) }
    })
    .await;
    gw.shutdown().await;
}
