//! What the relay benchmarks share: a sink service, an uploader, the
//! connection set-up probe, and the CPU time of a process and of the machine.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A sink: reads to EOF and answers the byte count (8 bytes BE), then
/// closes; a connection whose first byte is `E` is echoed instead (the set-up
/// probe).
pub async fn sink_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if s.read_exact(&mut first).await.is_err() {
                    return;
                }
                if first[0] == b'E' {
                    let _ = s.write_all(b"E").await;
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    return;
                }
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 1u64;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = s.write_all(&n.to_be_bytes()).await;
            });
        }
    });
    addr
}

/// Sends `bytes` through `local` to the sink; returns the count the sink saw.
pub async fn upload(local: SocketAddr, bytes: u64) -> u64 {
    let mut s = tokio::net::TcpStream::connect(local).await.unwrap();
    s.set_nodelay(true).unwrap();
    let buf = vec![0x5au8; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..k]).await.unwrap();
        left -= k as u64;
    }
    s.shutdown().await.unwrap();
    let mut n = [0u8; 8];
    s.read_exact(&mut n).await.unwrap();
    u64::from_be_bytes(n)
}

/// Time to carry `total` bytes through `local` in `streams` parallel uploads.
pub async fn timed_upload(local: SocketAddr, total: u64, streams: u64) -> Duration {
    timed_upload_over(&[local], total, streams).await
}

/// [`timed_upload`] with the streams going to `locals` in turn.
pub async fn timed_upload_over(locals: &[SocketAddr], total: u64, streams: u64) -> Duration {
    let per = total / streams;
    let t = Instant::now();
    let tasks: Vec<_> = (0..streams as usize).map(|i| tokio::spawn(upload(locals[i % locals.len()], per))).collect();
    for h in tasks {
        assert_eq!(h.await.unwrap(), per, "the sink saw another byte count");
    }
    t.elapsed()
}

/// One new connection through `local`: connect, send a byte, get it back.
pub async fn probe(local: SocketAddr) -> std::io::Result<Duration> {
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(local).await?;
    s.set_nodelay(true)?;
    s.write_all(b"E").await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(t.elapsed())
}

/// Set-up times of `n` new connections in a row, after `warm` unmeasured ones, sorted.
pub async fn setup_times(local: SocketAddr, warm: usize, n: usize) -> Vec<Duration> {
    sorted_times(&setup_series(local, warm, n).await)
}

/// The set-up times of a [`setup_series`], sorted.
pub fn sorted_times(series: &[(Duration, Duration)]) -> Vec<Duration> {
    let mut lat: Vec<Duration> = series.iter().map(|&(_, d)| d).collect();
    lat.sort();
    lat
}

/// [`setup_times`] in the order they were made, each with when it began
/// (since the first measured one), to tell periodic stalls from scattered ones.
pub async fn setup_series(local: SocketAddr, warm: usize, n: usize) -> Vec<(Duration, Duration)> {
    for _ in 0..warm {
        probe(local).await.unwrap();
    }
    let start = Instant::now();
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        let at = start.elapsed();
        series.push((at, probe(local).await.unwrap()));
    }
    series
}

/// The `q` quantile of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Gigabits per second.
pub fn gbit(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

/// CPU seconds (user and system) process `pid` has used so far (Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name,
    // in clock ticks of 1/100 s (USER_HZ, fixed at 100 for /proc on Linux).
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

/// Busy and total CPU time of the whole machine so far, in ticks (Linux).
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> = stat.lines().next().unwrap().split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu[3] + cpu[4];
    (total - idle, total)
}
