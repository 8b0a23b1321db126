//! Cluster scale benchmark (issue 17, acceptance 6): a real single-member etcd
//! (Debian's `etcd`, in a temp dir on the machine's disk) holding 300,000
//! registered machines and 10,000 live sessions, written and read through the
//! gateway's own etcd code (`EtcdRegistry`, `etcd_transfer::import`,
//! `EtcdDirectory`; the key layout of `docs/cluster.md`). Prints:
//!
//! - registration throughput through the product's path (`EtcdRegistry::register`,
//!   one claim transaction per machine) over a sample, one at a time and with
//!   64 office PCs registering at once; the rest is loaded with `thingate
//!   cluster import`'s batches (50 machines per transaction), its rate printed too;
//! - how long a member takes to load the registry's cache at start;
//! - the look-up a client's connect makes at a member the office PC is not
//!   at (`SessionDirectory::locate`, a linearizable read of `online/<pcid>`):
//!   p50/p99 one at a time and with 64 at once;
//! - the time until a dead member's sessions are withdrawn (its lease
//!   expires, `ClusterLeaseTtl`), measured from its death;
//! - etcd's disk use (its data dir, and the backend size it reports) and
//!   memory (RSS and peak from /proc).
//!
//! Sizes: `CLUSTER_SCALE_MACHINES` (300000), `CLUSTER_SCALE_SESSIONS` (10000,
//! spread over `CLUSTER_SCALE_MEMBERS`, 10), `CLUSTER_SCALE_SAMPLE` (2000
//! registrations through the product's path), `CLUSTER_SCALE_TTL_MS` (10000,
//! the default `ClusterLeaseTtl`).
//!
//! Run: `cargo bench -p thin-e2e --bench cluster_scale`; a quick check:
//! `CLUSTER_SCALE_MACHINES=5000 CLUSTER_SCALE_SESSIONS=1000 CLUSTER_SCALE_SAMPLE=300 cargo bench -p thin-e2e --bench cluster_scale`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thin_e2e::etcd::EtcdServer;
use thin_e2e::procs::rss_kib;
use thingate::config::ClusterSettings;
use thingate::machine_db::{Machine, MachineDb};
use thingate::registry::etcd_transfer;
use thingate::registry::{Claim, EtcdDirectory, EtcdLink, EtcdRegistry, MachineRegistry, Presence, SessionDirectory};

/// Office PCs registering (and clients looking up) at once.
const CONCURRENCY: usize = 64;

fn env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a whole number; unset it or give one")),
        Err(_) => default,
    }
}

/// p50, p99, max in ms of `v`.
fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)", at(0.5), at(0.99), at(1.0), v.len())
}

fn pcid(i: usize) -> String {
    format!("pc-{i:07}")
}

/// A machine as a registration writes it (an MSID and certificate hash of
/// the real lengths, dates, addresses).
fn machine(i: usize) -> Machine {
    use sha2::Digest;
    let hash = hex::encode_upper(sha2::Sha256::digest(format!("bench machine {i}").as_bytes()));
    let mut m = Machine::new(format!("MSID-DESK-{}", &hash[..40]), pcid(i));
    let now = thingate::machine_db::now_ms();
    m.cert_hash = hash;
    m.create_date = now;
    m.update_date = now;
    m.create_host = format!("desk-{i}.office.example.org");
    m.create_ip = format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
    m.last_ip = m.create_ip.clone();
    m
}

/// Registers machines `range` through `EtcdRegistry::register`, `at_once`
/// claims in flight; returns each claim's latency.
async fn register(reg: &Arc<EtcdRegistry>, range: std::ops::Range<usize>, at_once: usize) -> Vec<Duration> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let mut tasks = Vec::new();
    for _ in 0..at_once {
        let (reg, next, end) = (reg.clone(), next.clone(), range.end);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return lat;
                }
                let m = machine(i);
                let claim = Claim {
                    msid: &m.msid,
                    cert_hash: &m.cert_hash,
                    pcid: &m.pcid,
                    host: &m.create_host,
                    ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                    allow_new: true,
                };
                let t = Instant::now();
                reg.register(claim).await.unwrap_or_else(|e| panic!("registering {}: {e}", m.pcid));
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Looks up `n` random online computer IDs out of `online`, `at_once` in flight.
async fn look_up(dir: &Arc<EtcdDirectory>, online: usize, n: usize, at_once: usize) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for w in 0..at_once {
        let dir = dir.clone();
        let share = n / at_once + usize::from(w < n % at_once);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(share);
            for _ in 0..share {
                let p = pcid(rand::random::<usize>() % online);
                let t = Instant::now();
                let found = dir.locate(&p).await.unwrap_or_else(|e| panic!("locating {p}: {e}"));
                lat.push(t.elapsed());
                assert!(found.is_some(), "{p} is not online");
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Bytes of the files under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap();
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

fn main() {
    let machines = env("CLUSTER_SCALE_MACHINES", 300_000);
    let sessions = env("CLUSTER_SCALE_SESSIONS", 10_000).min(machines);
    let members = env("CLUSTER_SCALE_MEMBERS", 10).max(2);
    let sample = env("CLUSTER_SCALE_SAMPLE", 2_000).min(machines);
    let ttl = Duration::from_millis(env("CLUSTER_SCALE_TTL_MS", 10_000) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let etcd = EtcdServer::start();
    let pid = etcd.pid() as u32;
    println!(
        "cluster_scale: {machines} machines, {sessions} sessions over {members} members, lease TTL {ttl:?}, etcd pid {pid} \
         data in {}",
        etcd.data_dir().display()
    );
    println!("etcd at start: RSS {:.1} MiB", rss_kib(pid) as f64 / 1024.0);
    let settings = |url: &str| {
        let mut s = ClusterSettings::plain(vec![etcd.url.clone()], url, "scale");
        s.lease_ttl = ttl;
        s
    };
    rt.block_on(async {
        let link = EtcdLink::connect(&settings("https://gw-0.scale.test/")).await.unwrap();

        // 1. The product's registration path, over a sample.
        let reg = Arc::new(EtcdRegistry::open(link.clone()).await.unwrap());
        let one = (sample / 10).max(1);
        let t = Instant::now();
        let lat = register(&reg, 0..one, 1).await;
        let rate = one as f64 / t.elapsed().as_secs_f64();
        println!("registration, one at a time (EtcdRegistry::register): {rate:.0} machines/s; {}", quantiles(lat));
        let t = Instant::now();
        let lat = register(&reg, one..sample, CONCURRENCY).await;
        let rate = (sample - one) as f64 / t.elapsed().as_secs_f64();
        println!("registration, {CONCURRENCY} at once (EtcdRegistry::register): {rate:.0} machines/s; {}", quantiles(lat));
        drop(reg);

        // 2. The rest, in `thingate cluster import`'s batches, 4 importers at once.
        let t = Instant::now();
        let importers = 4;
        let per = (machines - sample).div_ceil(importers);
        let mut tasks = Vec::new();
        for k in 0..importers {
            let link = link.clone();
            let range = (sample + k * per)..(sample + (k + 1) * per).min(machines);
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                for chunk in range.collect::<Vec<_>>().chunks(5_000) {
                    let mut db = MachineDb::in_memory(std::path::Path::new("bench"));
                    for &i in chunk {
                        db.upsert(machine(i));
                    }
                    let r = etcd_transfer::import(&link, &db).await.unwrap();
                    assert_eq!(r.imported, chunk.len(), "{:?}", r.conflicts);
                    done += r.imported;
                }
                done
            }));
        }
        let mut imported = 0;
        for task in tasks {
            imported += task.await.unwrap();
        }
        let took = t.elapsed();
        println!(
            "bulk load (etcd_transfer::import, 50 per transaction, {importers} at once): {imported} machines in {:.1} s, \
             {:.0} machines/s",
            took.as_secs_f64(),
            imported as f64 / took.as_secs_f64()
        );

        // 3. A member starting: its cache loads every machine.
        let before = rss_kib(std::process::id());
        let t = Instant::now();
        let reg = EtcdRegistry::open(link.clone()).await.unwrap();
        let took = t.elapsed();
        assert_eq!(reg.registered_count(), machines);
        println!(
            "member start: cache of {machines} machines loaded in {:.2} s, bench process RSS +{:.0} MiB",
            took.as_secs_f64(),
            (rss_kib(std::process::id()).saturating_sub(before)) as f64 / 1024.0
        );
        let t = Instant::now();
        let n = 100_000;
        let hits = (0..n).filter(|i| reg.is_registered(&pcid(i * 7919 % machines))).count();
        assert_eq!(hits, n);
        println!("  is_registered (cache): {:.2} us per look-up", t.elapsed().as_secs_f64() * 1e6 / n as f64);
        drop(reg);

        // 4. Live sessions: `members` gateways announce them under their leases.
        let mut dirs = Vec::new();
        for g in 0..members {
            let url = format!("https://gw-{g}.scale.test/");
            dirs.push(Arc::new(EtcdDirectory::join(link.clone(), &url, ttl).await.unwrap()));
        }
        let t = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let (dirs, next) = (dirs.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sessions {
                        return;
                    }
                    let d = &dirs[i % dirs.len()];
                    let m = machine(i);
                    let p = Presence {
                        msid: m.msid,
                        gateway: d.url().to_string(),
                        session: format!("{:032x}", rand::random::<u128>()),
                        since_ms: thingate::machine_db::now_ms(),
                    };
                    d.announce(&m.pcid, &p).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let took = t.elapsed();
        println!(
            "sessions announced (SessionDirectory::announce, {CONCURRENCY} at once): {sessions} in {:.1} s, {:.0}/s",
            took.as_secs_f64(),
            sessions as f64 / took.as_secs_f64()
        );

        // 5. A client's connect at a member the office PC is not at.
        let entry = dirs[0].clone();
        let lat = look_up(&entry, sessions, 5_000.min(sessions * 5), 1).await;
        println!("connect look-up (SessionDirectory::locate), one at a time: {}", quantiles(lat));
        let t = Instant::now();
        let n = 20_000.min(sessions * 20);
        let lat = look_up(&entry, sessions, n, CONCURRENCY).await;
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!("connect look-up, {CONCURRENCY} at once: {rate:.0}/s; {}", quantiles(lat));

        // 6. A member dies (no goodbye): its keep-alives stop and etcd
        // withdraws its sessions when the lease expires.
        let dead = dirs.pop().unwrap();
        let dead_url = dead.url().to_string();
        let count_dead = || {
            let (link, url) = (link.clone(), dead_url.clone());
            async move {
                let (kvs, _) = link.get_prefix(&link.keys.online_all()).await.unwrap();
                kvs.iter()
                    .filter(|kv| {
                        serde_json::from_slice::<Presence>(kv.value()).map(|p| p.gateway == url).unwrap_or(false)
                    })
                    .count()
            }
        };
        let held = count_dead().await;
        let dead = Arc::try_unwrap(dead).expect("nobody else holds the dead member");
        let t = Instant::now();
        drop(dead);
        let deadline = ttl * 3 + Duration::from_secs(30);
        let mut first_gone = None;
        loop {
            let left = count_dead().await;
            if left < held && first_gone.is_none() {
                first_gone = Some(t.elapsed());
            }
            if left == 0 {
                break;
            }
            assert!(t.elapsed() < deadline, "{left} of {held} sessions still announced {:?} after death", t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "dead member: its {held} sessions withdrawn {:.2} s after its death (first gone at {:.2} s; lease TTL {:.0} s, \
             renewed every TTL/3)",
            t.elapsed().as_secs_f64(),
            first_gone.unwrap_or_default().as_secs_f64(),
            ttl.as_secs_f64()
        );

        // 7. etcd's disk and memory.
        let st = link.client.maintenance_client().status().await.unwrap();
        println!(
            "etcd: data dir {:.1} MiB on disk (backend {:.1} MiB, {:.1} MiB in use; no compaction), RSS {:.1} MiB, peak \
             RSS {:.1} MiB",
            mib(du(&etcd.data_dir())),
            mib(st.db_size() as u64),
            mib(st.raft_used_db_size() as u64),
            rss_kib(pid) as f64 / 1024.0,
            peak_kib(pid) as f64 / 1024.0
        );
        for d in dirs {
            if let Ok(d) = Arc::try_unwrap(d) {
                let _ = d.leave().await;
            }
        }
    });
}
