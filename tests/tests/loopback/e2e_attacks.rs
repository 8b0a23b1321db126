//! Attacks on the end-to-end channel and the login, through a real gateway.
//!
//! The man in the middle holds a certificate of the company CA (here the
//! gateway's own), which is what the gateway's operator, an attacker on the
//! gateway host, or anyone who obtained such a certificate has: it terminates
//! the home PC's TLS, opens its own to the gateway, passes the HTTP upgrade and
//! the login through, records what the home PC sends, then attacks. It
//! asks the gateway for no bare records (it strips `bare_records` from the
//! home PC's hello), so these attacks meet the legs sealed to the end;
//! `bare_records.rs` attacks the bare ones.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_e2e::*;
use thin_protocol::auth::ClientAuth;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::messages::{E2e, ErrorCode, GateToTunnel};
use thin_tunnel::client_agent::ClientError;
use thin_tunnel::e2e::LoginError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    /// Pass everything through (and record it).
    None,
    /// Flip one bit of the first byte the home PC sends after the login.
    Flip,
    /// Send a new yamux stream (SYN, then the "forward" kind byte) in clear.
    InjectYamux,
    /// Send a record-shaped frame of random bytes.
    InjectRecord,
}

/// Reads an HTTP head (up to the blank line) byte by byte.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    head
}

/// Reads one length-prefixed frame, raw.
async fn read_raw_frame<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.unwrap();
    let mut f = len.to_vec();
    f.resize(4 + u32::from_be_bytes(len) as usize, 0);
    r.read_exact(&mut f[4..]).await.unwrap();
    f
}

fn yamux_header(kind: u8, flags: u16, stream: u32, len: u32) -> Vec<u8> {
    let mut h = vec![0, kind];
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&stream.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// The hello frame `f` without `bare_records`.
fn sealed_to_the_end(f: &[u8]) -> Vec<u8> {
    let mut hello: serde_json::Value = serde_json::from_slice(&f[4..]).unwrap();
    hello.as_object_mut().unwrap().remove("bare_records").expect("the app asks for bare records");
    let body = serde_json::to_vec(&hello).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Starts the man in the middle in front of the gateway; returns its address
/// and everything the home PCs sent through it.
async fn mitm(gw: &TestGateway, attack: Attack) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let tls = thin_protocol::tls::server_config(&gw.dir.path("ThinGate.cer"), &gw.dir.path("ThinGate.key")).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let (upstream, ca) = (gw.addr, gw.ca().to_string());
    let rec = recorded.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, ca, rec) = (acceptor.clone(), ca.clone(), rec.clone());
            tokio::spawn(async move {
                let Ok(client) = acceptor.accept(tcp).await else { return };
                let gate = https::tls_connect(upstream, &ca).await;
                let (mut cr, mut cw) = tokio::io::split(client);
                let (mut gr, mut gw) = tokio::io::split(gate);
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut gr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
                // Upgrade request, then the client's hello, LoginStart and LoginFinish.
                let mut sent = read_head(&mut cr).await;
                gw.write_all(&sent).await.unwrap();
                for i in 0..3 {
                    let mut f = read_raw_frame(&mut cr).await;
                    if i == 0 {
                        f = sealed_to_the_end(&f);
                    }
                    gw.write_all(&f).await.unwrap();
                    sent.extend(f);
                }
                match attack {
                    Attack::None | Attack::Flip => {}
                    Attack::InjectYamux => {
                        let mut forged = yamux_header(1, 1, 1001, 0);
                        forged.extend(yamux_header(0, 0, 1001, 1));
                        forged.push(1);
                        gw.write_all(&forged).await.unwrap();
                    }
                    Attack::InjectRecord => {
                        let mut forged = 64u32.to_be_bytes().to_vec();
                        forged.extend((0..64).map(|_| rand::random::<u8>()));
                        gw.write_all(&forged).await.unwrap();
                    }
                }
                let mut flipped = attack != Attack::Flip;
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    sent.extend_from_slice(&buf[..n]);
                    if !flipped {
                        // A byte of the first record's ciphertext or tag.
                        buf[n.min(40) - 1] ^= 0x01;
                        flipped = true;
                    }
                    if gw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = gw.shutdown().await;
                let _ = down.await;
                rec.lock().unwrap().extend(sent);
            });
        }
    });
    (addr, recorded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_alters_injects_or_replays_fails_closed_and_the_target_sees_nothing() {
    let gw = TestGateway::start().await;
    let (target, accepted) = thin_e2e::net::echo_server_counting().await;
    let _pc = gw.office_pc("e2e-desk", "pw").target(target).await;

    // Through the man in the middle, untouched: it works, and it sees no plaintext.
    let (addr, recorded) = mitm(&gw, Attack::None).await;
    let t = connect(&gw.dir.link(addr), "e2e-desk", "pw").await;
    assert!(echo_works(&t).await, "the untouched relay carries the tunnel");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    drop(t);
    let session = wait_for("the recorded session", Duration::from_secs(10), || {
        let r = recorded.lock().unwrap().clone();
        async move { (!r.is_empty()).then_some(r) }
    })
    .await;
    assert!(!session.windows(24).any(|w| w == b"hello through the tunnel"), "plaintext crossed the relay");

    // Altered, or with a stream of the attacker's: the login succeeds, then the
    // tunnel fails closed (already at the home-PC check, the first stream
    // after the login) and the office PC connects nothing.
    for attack in [Attack::Flip, Attack::InjectYamux, Attack::InjectRecord] {
        let (addr, _) = mitm(&gw, attack).await;
        match gw_try_connect(&gw, addr).await {
            Ok(t) => assert!(!echo_works(&t).await, "{attack:?}: the tunnel carried data after the attack"),
            Err(ClientError::Refused(m)) if m.starts_with("the office PC's check failed") => {}
            Err(e) => panic!("{attack:?}: the login itself failed: {e}"),
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "{attack:?} reached the target");
    }

    // The recorded session replayed to the gateway: the office PC answers the
    // old first message with a new challenge, the old proof fails, and the
    // recorded records are never opened.
    let mut s = https::tls_connect(gw.addr, gw.ca()).await;
    s.write_all(&session).await.unwrap();
    let head = thin_protocol::http::read_response(&mut s).await.unwrap();
    assert_eq!(head.status, 101);
    assert!(matches!(read_frame::<GateToTunnel, _>(&mut s).await.unwrap(), GateToTunnel::Paired { .. }));
    assert!(matches!(read_frame::<E2e, _>(&mut s).await.unwrap(), E2e::LoginResponse { .. }));
    match read_frame::<E2e, _>(&mut s).await {
        Ok(E2e::Refused { code: ErrorCode::WrongPassword, .. }) | Err(_) => {}
        Ok(other) => panic!("the replay got {other:?}"),
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the replay reached the target");

    // The office PC still serves the real user.
    let t = gw.connect("e2e-desk", "pw").await;
    assert!(echo_works(&t).await);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    gw.shutdown().await;
}

async fn gw_try_connect(
    gw: &TestGateway,
    addr: SocketAddr,
) -> Result<thin_tunnel::client_agent::ClientTunnel, ClientError> {
    try_connect(&gw.dir.link(addr), "e2e-desk", "pw").await
}

/// One raw login attempt with a wrong password: true when the office PC
/// answered KE1 with KE2 (which lets the caller test one password offline).
async fn wrong_login(gw: SocketAddr, ca: &str, pcid: &str, hold: &tokio::sync::Barrier) -> Option<ErrorCode> {
    let mut s = https::tls_connect(gw, ca).await;
    thin_protocol::http::write_upgrade_request(&mut s, "gw").await.unwrap();
    assert_eq!(thin_protocol::http::read_response(&mut s).await.unwrap().status, 101);
    write_frame(&mut s, &thin_e2e::raw::client_hello(pcid, None, false)).await.unwrap();
    let paired = read_frame::<GateToTunnel, _>(&mut s).await.unwrap();
    assert!(matches!(paired, GateToTunnel::Paired { .. }), "{paired:?}");
    let (_, ke1) = ClientAuth::start("not the password").unwrap();
    // All start at once.
    hold.wait().await;
    write_frame(&mut s, &E2e::LoginStart { version: thin_protocol::E2E_VERSION, ke1 }).await.unwrap();
    match read_frame::<E2e, _>(&mut s).await.unwrap() {
        E2e::LoginResponse { .. } => {
            let _ = write_frame(&mut s, &E2e::LoginAbort).await;
            let _ = read_frame::<E2e, _>(&mut s).await;
            None
        }
        E2e::Refused { code, .. } => Some(code),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_parallel_wrong_logins_get_at_most_five_answers_and_the_lock_holds() {
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("race-desk", "right password").await;
    let hold = Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (addr, ca, hold) = (gw.addr, gw.ca().to_string(), hold.clone());
        tasks.spawn(async move { wrong_login(addr, &ca, "race-desk", &hold).await });
    }
    let mut answered = 0;
    let mut refused = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            None => answered += 1,
            Some(code) => refused.push(code),
        }
    }
    assert!(answered <= 5, "{answered} of 30 parallel logins were answered with KE2 (limit 5)");
    assert!(refused.iter().all(|c| matches!(c, ErrorCode::Busy | ErrorCode::LockedOut)), "{refused:?}");
    // Sequential attempts take the count to the limit, then the lock holds,
    // for the right password too.
    let one = tokio::sync::Barrier::new(1);
    for _ in answered..5 {
        assert_eq!(wrong_login(gw.addr, gw.ca(), "race-desk", &one).await, None);
    }
    assert_eq!(wrong_login(gw.addr, gw.ca(), "race-desk", &one).await, Some(ErrorCode::LockedOut));
    match gw.try_connect("race-desk", "right password").await {
        Err(ClientError::Login(LoginError::Refused { code: ErrorCode::LockedOut, .. })) => {}
        other => panic!("expected the lock, got {:?}", other.err()),
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_survives_a_restart_of_the_office_pc() {
    let gw = TestGateway::start().await;
    let target = echo_server().await;
    let pc = gw
        .office_pc("restart-desk", "right password")
        .target(target)
        .settings(|s| {
            s.lockout_attempts = 3;
            s.lockout_seconds = 600;
        })
        .await;
    for _ in 0..2 {
        let r = gw.try_connect("restart-desk", "wrong").await;
        assert!(matches!(r, Err(ClientError::Login(LoginError::WrongPassword))), "{:?}", r.err());
    }
    // Restart in the middle of the count.
    pc.stop.cancel();
    pc.task.await.unwrap().unwrap();
    let pc = thin_e2e::office::OfficePc::run_with(pc.dir, &gw.link, target, Default::default()).await;
    let r = gw.try_connect("restart-desk", "wrong").await;
    assert!(matches!(r, Err(ClientError::Login(LoginError::WrongPassword))), "{:?}", r.err());
    // Locked now, and still after another restart.
    pc.stop.cancel();
    pc.task.await.unwrap().unwrap();
    let _pc = thin_e2e::office::OfficePc::run_with(pc.dir, &gw.link, target, Default::default()).await;
    match gw.try_connect("restart-desk", "right password").await {
        Err(ClientError::Login(LoginError::Refused { code: ErrorCode::LockedOut, retry_after_s: Some(s), .. })) => {
            assert!(s > 500, "{s}")
        }
        other => panic!("expected the lock to survive the restart, got {:?}", other.err()),
    }
    gw.shutdown().await;
}

/// An authenticated home PC that floods the office PC's multiplexer with
/// pings (each answered with a pong) and window updates, and never reads:
/// the real `thinsvr`'s memory stays bounded, and it serves others after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_and_window_update_flood_leaves_the_office_pc_memory_flat() {
    let gw = TestGateway::start().await;
    let target = echo_server().await;
    let pc = RegisteredPc::register(&gw.link, "flood-desk", "pw").await;
    let ep = gw.entry_point();
    let args = ["run", "--target", &target.to_string()];
    let svc = procs::Proc::spawn(procs::thinsvr(&ep, pc.dir.path(), &args), None);
    gw.wait_sessions("thinsvr online", 1, Duration::from_secs(20)).await;
    let pid = svc.child.id();

    let mut io = thin_e2e::raw::logged_in(&gw.link, "flood-desk", "pw").await;
    io.write_all(&yamux_header(1, 1, 1, 0)).await.unwrap();
    let before = procs::rss_kib(pid);

    // Pings and window updates, 10,000 of each per write, until 8 million
    // pings are sent or the writes stall (the office PC stopped reading).
    let mut batch = Vec::new();
    for i in 0..10_000u32 {
        batch.extend(yamux_header(2, 1, 0, i));
        batch.extend(yamux_header(1, 0, 1, 1));
    }
    let mut pings = 0u64;
    while pings < 8_000_000 {
        match tokio::time::timeout(Duration::from_secs(3), io.write_all(&batch)).await {
            Ok(Ok(())) => pings += 10_000,
            Ok(Err(e)) => panic!("the office PC closed the tunnel after {pings} pings: {e}"),
            Err(_) => break,
        }
    }
    let during = procs::rss_kib(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = procs::rss_kib(pid);
    let grew_mib = (after.max(during) - before.min(after)) / 1024;
    // Unbounded, every ping would leave a queued pong behind (~80 bytes each:
    // over 600 MiB for 8 million); bounded, the queue stops at its limit.
    assert!(grew_mib < 160, "thinsvr grew by {grew_mib} MiB during a flood of {pings} pings");
    assert!(after.saturating_sub(during) / 1024 < 16, "thinsvr kept growing after the flood stalled");
    drop(io);

    let t = gw.connect("flood-desk", "pw").await;
    assert_tunnel_echo(&t, 64 << 10, 9).await;
    eprintln!("flood: {pings} pings sent; thinsvr RSS {before} -> {during} -> {after} KiB");
    drop(svc);
    gw.shutdown().await;
}
