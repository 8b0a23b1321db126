//! Relay benchmark with the real release binaries (`thingate`, `thinsvr`,
//! `thinclient`) on loopback. Prints single- and 4-stream throughput, new-stream
//! set-up latency inside an established session (p50/p99), and, with 1,000
//! idle office PCs: the gateway's RSS per idle session, keepalive round trips
//! while they all ping, and how long a client waits to reach each of them.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p thin-e2e --bench relay`.
//! `RELAY_IDLE=1000,10000` sets the idle-session counts measured (each with a
//! fresh gateway); `RELAY_THROUGHPUT=0` skips the throughput part;
//! `RELAY_DNS=0` turns the reverse DNS look-up of the office PCs' addresses
//! off (`NoLookupDnsHostname 1`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thin_e2e::bench::{cpu_seconds, gbit, quantile_ms, setup_times, sink_server, upload};
use thin_e2e::procs::{rss_kib, thinclient_connect, thinsvr, Proc};
use thin_e2e::raw::{upgraded_from, RawServer, Tls};
use thin_e2e::GateDir;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::messages::{GateToServer, GateToTunnel, Hello, ServerToGate};
use tokio::sync::mpsc;

fn start_gateway(g: &GateDir) -> (Proc, SocketAddr) {
    g.spawn(&[("RUST_LOG", "warn")])
}

async fn throughput_and_latency() {
    let g = GateDir::new("TunnelTimeout 30000\nTunnelKeepAlive 10000");
    let (_gw, addr) = start_gateway(&g);
    let ep = g.entry_point(addr);
    let target = sink_server().await;
    let cfg = tempfile::tempdir().unwrap();
    let reg = thinsvr(&ep, cfg.path(), &["register", "--pcid", "bench", "--password-stdin"]);
    let (st, err) = Proc::spawn(reg, Some("bench copper lantern river\n")).finish(Duration::from_secs(30));
    assert!(st.success(), "{err}");
    let mut run = thinsvr(&ep, cfg.path(), &["run", "--target", &target.to_string()]);
    run.env("RUST_LOG", "warn");
    let mut svr = Proc::spawn(run, None);
    svr.wait_line("online as bench", Duration::from_secs(20));
    let mut cli = Proc::spawn(thinclient_connect(&ep, "bench"), Some("bench copper lantern river\n"));
    let local: SocketAddr = cli.wait_line("listening on ", Duration::from_secs(30)).parse().unwrap();

    upload(local, 64 << 20).await; // warm-up
    let size: u64 = 1 << 30;
    let t = Instant::now();
    let got = upload(local, size).await;
    let single = t.elapsed();
    assert_eq!(got, size);
    println!("single stream: {:.2} Gbit/s ({} MiB in {:.2} s)", gbit(size, single), size >> 20, single.as_secs_f64());

    let t = Instant::now();
    let per = size / 4;
    let tasks: Vec<_> = (0..4).map(|_| tokio::spawn(upload(local, per))).collect();
    for h in tasks {
        assert_eq!(h.await.unwrap(), per);
    }
    let four = t.elapsed();
    println!(
        "4 streams:     {:.2} Gbit/s aggregate ({} MiB in {:.2} s)",
        gbit(size, four),
        size >> 20,
        four.as_secs_f64()
    );

    let lat = setup_times(local, 100, 1000).await;
    let p = |q: f64| quantile_ms(&lat, q);
    println!(
        "new stream set-up (connect + first byte round trip), {} samples: p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        p(0.50),
        p(0.99)
    );
}

/// Loopback source address of the `i`-th connection of a kind (`kind` 0:
/// office PCs, 1: clients, 2: data connections), so that no source runs out
/// of ports.
fn source(kind: u8, i: usize) -> IpAddr {
    IpAddr::from([127, 10 + kind, (i / 200) as u8, (i % 200 + 1) as u8])
}

/// An idle office PC spoken by hand: its reader answers the gateway's pings,
/// attaches a data connection for each `Incoming`, and reports the round
/// trip of its own pings.
struct Idle {
    /// Frames to send.
    tx: mpsc::UnboundedSender<ServerToGate>,
    /// When the ping in flight was sent.
    ping_sent: Arc<Mutex<Option<Instant>>>,
}

impl Idle {
    fn start(
        i: usize,
        s: Tls,
        addr: SocketAddr,
        ca: Arc<String>,
        rtts: mpsc::UnboundedSender<Duration>,
        ending: Arc<AtomicBool>,
    ) -> Idle {
        let (mut r, mut w) = tokio::io::split(s);
        let (tx, mut rx) = mpsc::unbounded_channel::<ServerToGate>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if write_frame(&mut w, &m).await.is_err() {
                    return;
                }
            }
        });
        let ping_sent = Arc::new(Mutex::new(None::<Instant>));
        let (sent, pong) = (ping_sent.clone(), tx.clone());
        tokio::spawn(async move {
            let mut attached = 0;
            loop {
                match read_frame::<GateToServer, _>(&mut r).await {
                    Ok(GateToServer::Ping) => {
                        let _ = pong.send(ServerToGate::Pong);
                    }
                    Ok(GateToServer::Pong) => {
                        if let Some(t) = sent.lock().unwrap().take() {
                            let _ = rtts.send(t.elapsed());
                        }
                    }
                    Ok(GateToServer::Incoming { tunnel_id }) => {
                        let (ca, src) = (ca.clone(), source(2, i * 4 + attached % 4));
                        attached += 1;
                        tokio::spawn(async move {
                            let mut d = upgraded_from(src, addr, &ca).await;
                            let hello = Hello::Attach {
                                version: thin_protocol::PROTOCOL_VERSION,
                                tunnel_id,
                                bare_records: false,
                            };
                            write_frame(&mut d, &hello).await.unwrap();
                            let paired: GateToTunnel = read_frame(&mut d).await.unwrap();
                            assert!(matches!(paired, GateToTunnel::Paired { .. }), "{paired:?}");
                        });
                    }
                    Ok(other) => panic!("idle office PC {i}: unexpected {other:?}"),
                    Err(_) if ending.load(Ordering::SeqCst) => return,
                    Err(e) => panic!("idle office PC {i} lost its session: {e}"),
                }
            }
        });
        Idle { tx, ping_sent }
    }

    fn ping(&self) {
        *self.ping_sent.lock().unwrap() = Some(Instant::now());
        let _ = self.tx.send(ServerToGate::Ping);
    }
}

/// Registers and serves `n` office PCs, one after another, on a fresh gateway
/// with the product's timers; then measures the gateway's memory per idle
/// session, keepalive round trips while every session pings, and how long a
/// client waits until each office PC answers.
async fn idle_sessions(n: usize) {
    let limits = n * 2 + 100;
    let g = GateDir::new(&format!(
        "DosProtection_MaxConnectionsPerIp {limits}\nDosProtection_MaxUnestablishedConnections {limits}\nMaxServerSessions {limits}\nRegisterLimitPerSource {limits}\nRegisterLimitTotal {limits}\nNoLookupDnsHostname {}\nTunnelTimeout 30000\nTunnelKeepAlive 10000",
        u8::from(std::env::var("RELAY_DNS").as_deref() == Ok("0"))
    ));
    let (gw, addr) = start_gateway(&g);
    let pid = gw.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = rss_kib(pid);
    let ca = Arc::new(g.pki.ca_pem.clone());
    let (rtt_tx, mut rtt_rx) = mpsc::unbounded_channel();
    let ending = Arc::new(AtomicBool::new(false));
    let mut sessions = Vec::new();
    let mut reg_times = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        let r = Instant::now();
        let id = thin_protocol::identity::Identity::generate();
        let mut srv = RawServer::login_from(source(0, i), addr, &ca, id).await;
        assert!(matches!(srv.register(&format!("idle-{i}"), None).await, GateToServer::Registered { .. }));
        assert!(matches!(srv.serve().await, GateToServer::Serving { .. }));
        reg_times.push(r.elapsed());
        sessions.push(Idle::start(i, srv.s, addr, ca.clone(), rtt_tx.clone(), ending.clone()));
    }
    let setup = t.elapsed();
    let mut all = reg_times.clone();
    all.sort();
    let mut head = reg_times[..n / 10].to_vec();
    let mut tail = reg_times[n - n / 10..].to_vec();
    head.sort();
    tail.sort();
    println!(
        "{n} office PCs registered and serving in {:.1} s (each: p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms); \
         the last tenth took {:.2} ms each (median), the first tenth {:.2} ms",
        setup.as_secs_f64(),
        quantile_ms(&all, 0.5),
        quantile_ms(&all, 0.99),
        quantile_ms(&all, 1.0),
        quantile_ms(&tail, 0.5),
        quantile_ms(&head, 0.5)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = rss_kib(pid);
    println!(
        "gateway RSS: {base} KiB idle, {with} KiB with {n} server sessions -> {:.1} KiB per idle session",
        (with - base) as f64 / n as f64,
    );

    // Every session pings once a second (ten times the product's keepalive
    // rate), spread over the second, for three rounds.
    let rounds = 3;
    let slots = 100;
    let cpu0 = cpu_seconds(pid);
    let pinging = Instant::now();
    for _ in 0..rounds {
        for chunk in sessions.chunks(n.div_ceil(slots)) {
            for s in chunk {
                s.ping();
            }
            tokio::time::sleep(Duration::from_millis(1000 / slots as u64)).await;
        }
    }
    let mut rtts = Vec::with_capacity(n * rounds);
    while rtts.len() < n * rounds {
        let rtt = tokio::time::timeout(Duration::from_secs(30), rtt_rx.recv()).await;
        rtts.push(rtt.expect("a pong within 30 s").unwrap());
    }
    let (cpu, wall) = (cpu_seconds(pid) - cpu0, pinging.elapsed().as_secs_f64());
    rtts.sort();
    println!(
        "keepalive round trips while all {n} ping each second: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples); \
         gateway CPU {:.1} % of a core, {:.1} us per round trip (its own pings every 10 s included)",
        quantile_ms(&rtts, 0.5),
        quantile_ms(&rtts, 0.99),
        quantile_ms(&rtts, 1.0),
        rtts.len(),
        cpu / wall * 100.0,
        cpu / rtts.len() as f64 * 1e6
    );

    // A client asks for each office PC in turn (eight at a time): the time
    // until the gateway pairs it with the office PC's data connection.
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (ca, permit) = (ca.clone(), sem.clone().acquire_owned().await.unwrap());
        asks.spawn(async move {
            let t = Instant::now();
            let mut c = upgraded_from(source(1, i), addr, &ca).await;
            write_frame(&mut c, &thin_e2e::raw::client_hello(&format!("idle-{i}"), None, false)).await.unwrap();
            let paired: GateToTunnel = read_frame(&mut c).await.unwrap();
            assert!(matches!(paired, GateToTunnel::Paired { .. }), "idle-{i}: {paired:?}");
            drop(permit);
            t.elapsed()
        });
    }
    let mut waits = Vec::with_capacity(n);
    while let Some(w) = asks.join_next().await {
        waits.push(w.unwrap());
    }
    waits.sort();
    println!(
        "a client reaching each of the {n} office PCs (TLS, request, pairing): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        quantile_ms(&waits, 0.5),
        quantile_ms(&waits, 0.99),
        quantile_ms(&waits, 1.0)
    );
    ending.store(true, Ordering::SeqCst);
    drop(sessions);
    drop(gw);
}

fn main() {
    thin_tunnel::platform::limits::raise_open_files();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("relay benchmark on {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    if std::env::var("RELAY_THROUGHPUT").as_deref() != Ok("0") {
        rt.block_on(throughput_and_latency());
    }
    let counts = std::env::var("RELAY_IDLE").unwrap_or_else(|_| "1000".into());
    for n in counts.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
        rt.block_on(idle_sessions(n));
    }
}
