//! Scale within one tunnel: a thinclient carries up to
//! `mux::MAX_CONNECTIONS` local connections at once, and refuses the ones
//! past it one by one while the tunnel and its other connections go on.

use std::time::Duration;

use thin_e2e::*;
use thin_tunnel::mux::MAX_CONNECTIONS;
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
