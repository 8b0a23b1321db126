//! Registration flood benchmark: 10,000 fresh keys register as fast as 64
//! concurrent strangers can (each a new TLS connection, key proof and
//! `Register`), while a serving office PC measures its keepalive round trip
//! and a paired tunnel measures its relay round trip. Prints both before and
//! during the flood, the flood's rate, and how many saves of
//! `MachineDatabase.config` it took.
//!
//! The gateway runs in-process on a runtime of its own (2 workers, like the
//! 2-core host), the flood on another, the probes on a third thread.
//!
//! Run: `cargo bench -p thin-e2e --bench registration`

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use thin_e2e::raw::{self, RawServer};
use thin_e2e::GateDir;
use thin_protocol::frame::read_frame;
use thin_protocol::identity::Identity;
use thin_protocol::messages::{GateToServer, GateToTunnel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STRANGERS: usize = 64;

/// Registrations in the flood: 10,000, or `THIN_BENCH_REGISTRATIONS` (for a
/// quick try in a debug build).
fn registrations() -> usize {
    std::env::var("THIN_BENCH_REGISTRATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000)
}

/// Latency figures: p50, p99, max in ms, and the count.
fn figures(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)", at(0.5), at(0.99), at(1.0), v.len())
}

/// Probes a keepalive and a relay round trip every 10 ms until `stop` fires.
async fn probe(
    pc: &mut RawServer,
    tunnel: &mut (raw::Tls, raw::Tls),
    stop: tokio_util::sync::CancellationToken,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut pings, mut relays) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 64];
    while !stop.is_cancelled() {
        pings.push(pc.ping().await);
        let t = Instant::now();
        tunnel.0.write_all(&buf).await.unwrap();
        tunnel.1.read_exact(&mut buf).await.unwrap();
        tunnel.1.write_all(&buf).await.unwrap();
        tunnel.0.read_exact(&mut buf).await.unwrap();
        relays.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (pings, relays)
}

/// `n` registrations by 64 strangers from 127.0.0.2-65; returns how many succeeded.
async fn flood(addr: SocketAddr, ca: String, n: usize) -> usize {
    let workers: Vec<_> = (0..STRANGERS)
        .map(|w| {
            let ca = ca.clone();
            tokio::spawn(async move {
                let src = IpAddr::from([127, 0, 0, 2 + w as u8]);
                let mut ok = 0;
                for i in (w..n).step_by(STRANGERS) {
                    let mut s = RawServer::login_from(src, addr, &ca, Identity::generate()).await;
                    ok += matches!(s.register(&format!("flood-{i}"), None).await, GateToServer::Registered { .. })
                        as usize;
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        ok += w.await.unwrap();
    }
    ok
}

fn main() {
    let threads = |n| tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build().unwrap();
    let (gw_rt, flood_rt) = (threads(2), threads(2));
    let probe_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!(
        "registration flood benchmark on {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let g = GateDir::new(
        "TunnelTimeout 600000\nTunnelKeepAlive 60000\nHandshakeTimeout 60000\n\
         RegisterLimitPerSource 1000000\nRegisterLimitTotal 1000000\n\
         DosProtection_MaxConnectionsPerIp 100000\nDosProtection_MaxUnestablishedConnections 100000\nSaveLog 0",
    );
    let ca = g.pki.ca_pem.clone();
    let gw = gw_rt.block_on(g.start());
    let (addr, state) = (gw.addr, gw.state());

    // The probes: a serving office PC and a tunnel paired by hand to it.
    let (mut pc, mut tunnel) = probe_rt.block_on(async {
        let mut pc = RawServer::login(addr, &ca, Identity::generate()).await;
        assert!(matches!(pc.register("probe", None).await, GateToServer::Registered { .. }));
        assert!(matches!(pc.serve().await, GateToServer::Serving { .. }));
        let mut client = raw::client_connect(addr, &ca, "probe").await;
        let GateToServer::Incoming { tunnel_id } = pc.recv().await else { panic!("no Incoming") };
        let mut data = raw::attach(addr, &ca, &tunnel_id).await;
        for s in [&mut client, &mut data] {
            assert!(matches!(read_frame::<GateToTunnel, _>(s).await.unwrap(), GateToTunnel::Paired { .. }));
        }
        (pc, (client, data))
    });

    // Idle figures for 3 s.
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        s.cancel();
    });
    let (idle_pings, idle_relays) = probe_rt.block_on(probe(&mut pc, &mut tunnel, stop));

    // The flood, probed all along.
    let saves_before = state.registry.saves();
    let stop = tokio_util::sync::CancellationToken::new();
    let n = registrations();
    let t = Instant::now();
    let flooding = {
        let (stop, ca) = (stop.clone(), ca.clone());
        let handle = flood_rt.spawn(async move {
            let ok = flood(addr, ca, n).await;
            stop.cancel();
            ok
        });
        move || flood_rt.block_on(handle).unwrap()
    };
    let (pings, relays) = probe_rt.block_on(probe(&mut pc, &mut tunnel, stop));
    let ok = flooding();
    let took = t.elapsed();
    let saves = state.registry.saves() - saves_before;
    assert_eq!(ok, n, "every registration succeeded");

    println!(
        "{n} registrations by {STRANGERS} concurrent strangers (new TLS connection, key proof, Register each): \
         {:.1} s, {:.0} per second; {saves} saves of MachineDatabase.config (0 -> {} machines)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        state.registry.registered_count()
    );
    println!("keepalive round trip, idle:         {}", figures(idle_pings));
    println!("keepalive round trip, during flood: {}", figures(pings));
    println!("relay round trip (64 B), idle:         {}", figures(idle_relays));
    println!("relay round trip (64 B), during flood: {}", figures(relays));
    let backups = std::fs::read_dir(gw.dir.path("backup.MachineDatabase.config")).map_or(0, |d| d.count());
    println!("backups kept: {backups}");
    drop((pc, tunnel));
    gw_rt.block_on(gw.shutdown());
}
