//! Soak benchmark: a real `thingate` (release build) under a steady churn of
//! client connects, checked transfers and disconnects, with office PCs that
//! now and then drop their session and come back, for `SOAK_SECS` (600). Every
//! 10 s it samples the gateway's RSS, open file descriptors and threads; at
//! the end it prints the curve and compares the last third with the samples
//! just after warm-up (the first minute), so that a leak shows as growth.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p thin-e2e --bench soak`.
//! `SOAK_SECS=120` for a short run; `SOAK_CSV=path` writes the samples as CSV.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thin_e2e::procs::rss_kib;
use thin_e2e::{echo_check, echo_server, try_connect, GateDir, OfficePc};

/// Office PCs serving; clients pick one at random.
const OFFICE_PCS: usize = 4;
/// Clients churning at once.
const CLIENTS: usize = 6;
const PASSWORD: &str = "soak copper lantern river";

/// One sample of the gateway process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: usize,
    threads: usize,
    tunnels: u64,
    bytes: u64,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// One client's churn: connect, move 1-3 streams of 64 KiB - 1 MiB each with
/// a checksum, disconnect; again until `until`.
async fn churn(
    n: usize,
    link: thin_tunnel::link::Link,
    until: Instant,
    tunnels: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    while Instant::now() < until {
        let pc = rng.gen_range(0..OFFICE_PCS);
        // A PC that is reconnecting right now refuses; try again.
        let Ok(t) = try_connect(&link, &format!("soak-{pc}"), PASSWORD).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let streams = rng.gen_range(1..=3);
        let mut moving = tokio::task::JoinSet::new();
        for k in 0..streams {
            let len = rng.gen_range(64 * 1024..=1 << 20);
            let Ok(st) = t.open_stream().await else { break };
            let seed = rng.gen::<u64>() ^ k;
            moving.spawn(async move {
                let (sent, got, n) = echo_check(st, len, seed).await;
                assert_eq!((sent, n), (got, len), "a transfer lost or changed bytes");
                len as u64
            });
        }
        while let Some(r) = moving.join_next().await {
            bytes.fetch_add(r.unwrap() * 2, Ordering::Relaxed);
        }
        tunnels.fetch_add(1, Ordering::Relaxed);
        drop(t);
    }
}

async fn soak(secs: u64) -> Vec<Sample> {
    let g = GateDir::new("DisableDoSProtection 1");
    let (gw, addr) = g.spawn(&[("RUST_LOG", "warn")]);
    let pid = gw.child.id();
    let link = g.link(addr);
    let target = echo_server().await;
    let mut pcs = Vec::new();
    for i in 0..OFFICE_PCS {
        pcs.push(OfficePc::start(&link, &format!("soak-{i}"), PASSWORD, target).await);
    }
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let (tunnels, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..CLIENTS {
        clients.spawn(churn(n, link.clone(), until, tunnels.clone(), bytes.clone()));
    }

    // Every 30 s one office PC drops its session and comes back.
    let mut samples = Vec::new();
    let mut next_sample = start;
    let mut next_bounce = start + Duration::from_secs(30);
    let mut bounced = 0;
    while Instant::now() < until {
        let now = Instant::now();
        if now >= next_sample {
            samples.push(Sample {
                at_s: now.duration_since(start).as_secs_f64(),
                rss_kib: rss_kib(pid),
                fds: fds(pid),
                threads: threads(pid),
                tunnels: tunnels.load(Ordering::Relaxed),
                bytes: bytes.load(Ordering::Relaxed),
            });
            next_sample += Duration::from_secs(10);
        }
        if now >= next_bounce {
            let i = bounced % OFFICE_PCS;
            let pc = pcs.remove(i);
            pc.stop.cancel();
            let _ = pc.task.await;
            let dir = pc.dir;
            pcs.insert(i, OfficePc::run_with(dir, &link, target, Default::default()).await);
            bounced += 1;
            next_bounce += Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    // Quiet again: what is left once every client has gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    samples.push(Sample {
        at_s: start.elapsed().as_secs_f64(),
        rss_kib: rss_kib(pid),
        fds: fds(pid),
        threads: threads(pid),
        tunnels: tunnels.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
    });
    drop(pcs);
    samples
}

fn main() {
    thin_tunnel::platform::limits::raise_open_files();
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "soak benchmark: {secs} s, {CLIENTS} clients churning over {OFFICE_PCS} office PCs, on {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let samples = rt.block_on(soak(secs));
    println!("   t (s)  RSS (KiB)  fds  threads  tunnels  MiB moved");
    for s in &samples {
        println!("{:8.0} {:10} {:4} {:8} {:8} {:10}", s.at_s, s.rss_kib, s.fds, s.threads, s.tunnels, s.bytes >> 20);
    }
    if let Ok(path) = std::env::var("SOAK_CSV") {
        let mut csv = String::from("t_s,rss_kib,fds,threads,tunnels,bytes\n");
        for s in &samples {
            csv.push_str(&format!("{:.1},{},{},{},{},{}\n", s.at_s, s.rss_kib, s.fds, s.threads, s.tunnels, s.bytes));
        }
        std::fs::write(&path, csv).unwrap();
    }
    // Warm-up: the first minute (or the first fifth of a short run).
    let warm = (secs as f64 / 5.0).min(60.0);
    let churning: Vec<&Sample> = samples[..samples.len() - 1].iter().collect();
    let after_warm: Vec<&&Sample> = churning.iter().filter(|s| s.at_s >= warm).collect();
    let third = after_warm.len() / 3;
    if third == 0 {
        println!("too short to compare warm-up and end");
        return;
    }
    let mean = |v: &[&&Sample], f: fn(&Sample) -> f64| v.iter().map(|s| f(s)).sum::<f64>() / v.len() as f64;
    let (early, late) = (&after_warm[..third], &after_warm[after_warm.len() - third..]);
    let rss = (mean(early, |s| s.rss_kib as f64), mean(late, |s| s.rss_kib as f64));
    let fd = (mean(early, |s| s.fds as f64), mean(late, |s| s.fds as f64));
    let last = samples.last().unwrap();
    let first = samples.first().unwrap();
    println!(
        "after warm-up: RSS {:.0} -> {:.0} KiB ({:+.1} %), fds {:.1} -> {:.1}; {} tunnels, {} MiB moved; \
         idle at the end: RSS {} KiB, {} fds (at the start: {} KiB, {} fds)",
        rss.0,
        rss.1,
        (rss.1 / rss.0 - 1.0) * 100.0,
        fd.0,
        fd.1,
        last.tunnels,
        last.bytes >> 20,
        last.rss_kib,
        last.fds,
        first.rss_kib,
        first.fds
    );
}
