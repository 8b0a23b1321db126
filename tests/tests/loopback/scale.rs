//! Scale within one tunnel: a thinclient carries up to
//! `mux::MAX_CONNECTIONS` local connections at once, and refuses the ones
//! past it one by one while the tunnel and its other connections go on.

use std::time::Duration;

use thin_e2e::*;
use thin_tunnel::mux::{MAX_CONNECTIONS, WINDOW_GROWTH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Sends 64 bytes made from `seed` and reads them back.
async fn round_trip(s: &mut TcpStream, seed: u64) -> std::io::Result<()> {
    let msg: Vec<u8> = (0..64u64).map(|i| (seed.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8).collect();
    s.write_all(&msg).await?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await?;
    assert_eq!(back, msg, "connection {seed} got other bytes back");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thinclient_carries_its_connection_limit_and_refuses_the_next_ones_one_by_one() {
    init_logging();
    thin_tunnel::platform::limits::raise_open_files();
    let gw = TestGateway::start().await;
    let _pc = gw.office_pc("crowded", "crowded harbour lantern nine").await;
    let tunnel = gw.connect("crowded", "crowded harbour lantern nine").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(tunnel.serve(listener, stop.clone()));

    // Every connection up to the limit is carried, all open at once.
    let mut open = Vec::new();
    for seed in 0..MAX_CONNECTIONS as u64 {
        open.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(local).await.unwrap();
            round_trip(&mut s, seed).await.unwrap_or_else(|e| panic!("connection {seed}: {e}"));
            s
        }));
    }
    let mut conns = Vec::new();
    for h in open {
        conns.push(h.await.unwrap());
    }
    let mut open = conns;
    assert_eq!(open.len(), MAX_CONNECTIONS);

    // The next ones are refused one by one: accepted, then closed unanswered.
    for extra in 0..16u64 {
        let mut s = TcpStream::connect(local).await.unwrap();
        let _ = s.write_all(b"past the limit").await;
        let mut b = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(20), s.read(&mut b)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "connection {extra} past the limit was not refused: {r:?}");
    }

    // The tunnel and every connection in it are still up.
    assert!(!serving.is_finished(), "the tunnel closed");
    for (seed, s) in open.iter_mut().enumerate() {
        round_trip(s, seed as u64 + 5000).await.unwrap_or_else(|e| panic!("connection {seed} after the refusals: {e}"));
    }

    // Closing some frees their places for new connections.
    open.truncate(MAX_CONNECTIONS - 8);
    let mut again = wait_for("a new connection after eight closed", Duration::from_secs(20), || async {
        let mut s = TcpStream::connect(local).await.ok()?;
        round_trip(&mut s, 9000).await.ok().map(|_| s)
    })
    .await;
    round_trip(&mut again, 9001).await.unwrap();
    assert!(!serving.is_finished(), "the tunnel closed");
    stop.cancel();
    serving.await.unwrap().unwrap();
    gw.shutdown().await;
}

/// Tunnels (client logins, each relayed through the gateway on a stream of
/// its own) carried at once by one gateway.
const TUNNELS: usize = 1000;
/// Office PCs they are spread over (each takes `TUNNELS / OFFICE_PCS`, below
/// `MaxTunnelsPerSession`; logins to one PC run one at a time, as a PC allows two).
const OFFICE_PCS: usize = 8;
/// Bytes each tunnel echoes while the stalled one holds its data.
const PER_TUNNEL: usize = 256 * 1024;
/// Bytes the stalled tunnel sends: more than every window and buffer on its
/// way may hold, so a writer that got them all out found memory that grows.
/// Its way holds: between thinclient's multiplexer and the office PC's, the
/// stream's receive window (flow control is end to end through the gateway,
/// so the TLS legs and the relay hold less than it), which grows to 256 KiB
/// plus the tunnel's `WINDOW_GROWTH` while the office PC reads; past the
/// office PC, the connection to the echo target both ways in the kernel
/// (which autotuning may grow to tens of MiB on its own, CI saw 64 MiB taken
/// in 10 s with `tcp_rmem` at 32 MiB); and the way back's window, 256 KiB.
/// Half as much again for what the apps and the echo target hold in passing
/// (a few buffers of 64 KiB at most): 157 MiB with `tcp_rmem` at 32 MiB.
fn stalled_bytes() -> usize {
    let held = 256 * 1024 + WINDOW_GROWTH + 2 * tcp_direction_capacity() + 256 * 1024;
    (held + held / 2).max(64 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tunnels_through_one_gateway_lose_no_byte_and_a_stalled_reader_stalls_only_its_own() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    init_logging();
    thin_tunnel::platform::limits::raise_open_files();
    // Every connection comes from 127.0.0.1: the per-address limit is off.
    let gw = TestGateway::with_ini("DisableDoSProtection 1").await;
    let mut pcs = Vec::new();
    for i in 0..OFFICE_PCS {
        pcs.push(gw.office_pc(&format!("busy-{i}"), "busy harbour lantern nine").await);
    }

    // One login after another per office PC, the PCs in parallel.
    let started = Instant::now();
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..OFFICE_PCS {
        let link = gw.link.clone();
        logins.spawn(async move {
            let mut tunnels = Vec::new();
            for _ in 0..TUNNELS / OFFICE_PCS {
                tunnels.push(connect(&link, &format!("busy-{i}"), "busy harbour lantern nine").await);
            }
            tunnels
        });
    }
    let mut tunnels = Vec::new();
    while let Some(t) = logins.join_next().await {
        tunnels.extend(t.unwrap());
    }
    assert_eq!(tunnels.len(), TUNNELS);
    eprintln!("{TUNNELS} tunnels logged in within {:?}", started.elapsed());
    let tunnels: Vec<Arc<_>> = tunnels.into_iter().map(Arc::new).collect();

    // The stalled tunnel: it sends more than the way holds and reads nothing.
    let stalled_total = stalled_bytes();
    let stalled = tunnels[0].open_stream().await.unwrap();
    let (mut stalled_r, mut stalled_w) = tokio::io::split(stalled);
    let sent = Arc::new(AtomicUsize::new(0));
    let stall_began = Instant::now();
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            use rand::{RngCore, SeedableRng};
            use sha2::{Digest, Sha256};
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            while sent.load(Ordering::SeqCst) < stalled_total {
                rng.fill_bytes(&mut buf);
                h.update(&buf);
                stalled_w.write_all(&buf).await.unwrap();
                sent.fetch_add(buf.len(), Ordering::SeqCst);
            }
            stalled_w.shutdown().await.unwrap();
            hex::encode(h.finalize())
        })
    };

    // Every other tunnel moves its bytes meanwhile, all at once, and gets
    // them back unchanged.
    let mut echoes = tokio::task::JoinSet::new();
    for (n, t) in tunnels.iter().enumerate().skip(1) {
        let t = t.clone();
        echoes.spawn(async move {
            let stream = t.open_stream().await.unwrap_or_else(|e| panic!("tunnel {n}: open a stream: {e}"));
            let (sent, got, len) = echo_check(stream, PER_TUNNEL, n as u64).await;
            assert_eq!((&sent, len), (&got, PER_TUNNEL), "tunnel {n} lost or changed bytes");
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(r) = echoes.join_next().await {
            r.unwrap();
        }
    })
    .await;
    all.expect("the other tunnels did not finish while one reader was stalled");
    eprintln!("{} tunnels echoed {PER_TUNNEL} bytes each within {:?}", TUNNELS - 1, stall_began.elapsed());
    // The stalled writer was held back by its reader: its bytes wait in
    // windows and buffers instead of piling up in memory.
    let early = sent.load(Ordering::SeqCst);
    assert!(early < stalled_total, "the stalled tunnel took all {stalled_total} bytes without a reader");

    // It reads nothing for 10 s in all, then reads everything, unchanged.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stall_began.elapsed())).await;
    let held = sent.load(Ordering::SeqCst);
    assert!(held < stalled_total, "the stalled tunnel took all {stalled_total} bytes without a reader");
    let reading = tokio::spawn(async move {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        loop {
            let n = stalled_r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            got += n;
        }
        (hex::encode(h.finalize()), got)
    });
    let sent_hash = tokio::time::timeout(Duration::from_secs(120), writer).await.expect("stalled writer").unwrap();
    let (got_hash, got) =
        tokio::time::timeout(Duration::from_secs(120), reading).await.expect("stalled reader").unwrap();
    assert_eq!((got_hash, got), (sent_hash, stalled_total), "the stalled tunnel lost or changed bytes");
    eprintln!(
        "the stalled tunnel took {held} of {stalled_total} bytes in 10 s without a reader ({early} when the others were done)"
    );
    drop(tunnels);
    gw.shutdown().await;
}
