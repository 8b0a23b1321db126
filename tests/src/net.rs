//! Loopback network helpers: an echo target, free ports, and checking that
//! bytes come back unchanged.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback port that was free a moment ago (for programs that must be
/// told a port; everything else binds port 0 and reads the address back).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The most one direction of a loopback TCP connection can hold in the kernel
/// on this machine: the sender's send buffer plus the receiver's receive
/// buffer, at the ceilings autotuning grows them to (the third field of
/// `net.ipv4.tcp_wmem` and `net.ipv4.tcp_rmem`; Linux's defaults, 4 MiB and
/// 6 MiB, where they cannot be read). Kernels since 6.x raise `tcp_rmem` to
/// 32 MiB, so what a stalled reader's path holds depends on the machine.
pub fn tcp_direction_capacity() -> usize {
    fn ceiling(sysctl: &str, default: usize) -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{sysctl}"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(default)
    }
    ceiling("tcp_wmem", 4 << 20) + ceiling("tcp_rmem", 6 << 20)
}

/// A TCP echo service on loopback (stands in for the remote desktop).
pub async fn echo_server() -> SocketAddr {
    echo_server_counting().await.0
}

/// [`echo_server`] that also counts the connections it accepted (to show
/// that nothing reached the target).
pub async fn echo_server_counting() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, count)
}

/// [`echo_server`] for tests without a tokio runtime (the Wine tests): it runs
/// on a thread of its own as long as the test binary.
pub fn echo_server_blocking() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let _ = tx.send(echo_server().await);
            std::future::pending::<()>().await
        })
    });
    rx.recv().expect("echo server")
}

/// [`assert_tcp_echo`] for tests without a tokio runtime, within `limit`.
pub fn assert_tcp_echo_blocking(addr: SocketAddr, len: usize, seed: u64, limit: std::time::Duration) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let echo = tokio::time::timeout(limit, assert_tcp_echo(addr, len, seed)).await;
        echo.unwrap_or_else(|_| panic!("the echo of {len} bytes through {addr} did not come back within {limit:?}"))
    })
}

/// Sends `len` random bytes through `stream` while reading the echo; returns
/// (SHA-256 sent, SHA-256 received, bytes received).
pub async fn echo_check<S>(stream: S, len: usize, seed: u64) -> (String, String, usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use rand::{RngCore, SeedableRng};
    use sha2::{Digest, Sha256};
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            rng.fill_bytes(&mut buf[..n]);
            h.update(&buf[..n]);
            w.write_all(&buf[..n]).await.unwrap();
            left -= n;
        }
        w.shutdown().await.unwrap();
        hex::encode(h.finalize())
    });
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        got += n;
    }
    (writer.await.unwrap(), hex::encode(h.finalize()), got)
}

/// Asserts that `len` bytes sent through `stream` come back complete and
/// unchanged (same length, same SHA-256).
pub async fn assert_echo<S>(stream: S, len: usize, seed: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sent, got, n) = echo_check(stream, len, seed).await;
    assert_eq!((sent, n), (got, len), "the echo of {len} bytes (seed {seed}) differs");
}

/// Asserts that `len` bytes come back unchanged through a new stream of `tunnel`.
pub async fn assert_tunnel_echo(tunnel: &thin_tunnel::client_agent::ClientTunnel, len: usize, seed: u64) {
    assert_echo(tunnel.open_stream().await.expect("open a stream"), len, seed).await;
}

/// Asserts that `len` bytes come back unchanged through a TCP connection to `addr`
/// (e.g. `thinclient`'s local port).
pub async fn assert_tcp_echo(addr: SocketAddr, len: usize, seed: u64) {
    assert_echo(tokio::net::TcpStream::connect(addr).await.expect("connect"), len, seed).await;
}
