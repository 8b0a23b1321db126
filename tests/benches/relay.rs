//! Relay benchmark with the real release binaries (`thingate`, `thinsvr`,
//! `thinclient`) on loopback. Prints single- and 4-stream throughput, new-stream
//! set-up latency inside an established session (p50/p99), and the gateway's
//! RSS per idle server session with 1,000 sessions.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p thin-e2e --bench relay`.
//! `RELAY_IDLE=1000,10000` sets the idle-session counts measured (each with a
//! fresh gateway); `RELAY_THROUGHPUT=0` skips the throughput part.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thin_e2e::bench::{gbit, quantile_ms, setup_times, sink_server, upload};
use thin_e2e::procs::{rss_kib, thinclient_connect, thinsvr, Proc};
use thin_e2e::GateDir;
use thin_protocol::frame::{read_frame, write_frame};
use thin_protocol::messages::{GateToServer, Hello, ServerToGate};

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

async fn idle_sessions(n: usize) {
    let g = GateDir::new(&format!(
        "TunnelTimeout 60000\nTunnelKeepAlive 20000\nDosProtection_MaxConnectionsPerIp {}\nDosProtection_MaxUnestablishedConnections {}\nMaxServerSessions {}\nRegisterLimitPerSource {}\nRegisterLimitTotal {}",
        n * 2,
        n * 2,
        n * 2,
        n * 2,
        n * 2
    ));
    let (gw, addr) = start_gateway(&g);
    let pid = gw.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = rss_kib(pid);
    let ca = g.pki.ca_pem.clone();
    let mut conns = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        let id = thin_protocol::identity::Identity::generate();
        let mut s = thin_e2e::https::tls_connect(addr, &ca).await;
        thin_protocol::http::write_upgrade_request(&mut s, "gw").await.unwrap();
        thin_protocol::http::read_response(&mut s).await.unwrap();
        let hello = Hello::ServerHello { version: 1, public_key: id.public_key_hex(), hostname: format!("h{i}") };
        write_frame(&mut s, &hello).await.unwrap();
        let GateToServer::Challenge { nonce } = read_frame(&mut s).await.unwrap() else { panic!() };
        write_frame(&mut s, &ServerToGate::Proof { signature: id.sign_challenge(&nonce).unwrap() }).await.unwrap();
        let _welcome: GateToServer = read_frame(&mut s).await.unwrap();
        write_frame(&mut s, &ServerToGate::Register { pcid: format!("idle-{i}"), token: None }).await.unwrap();
        assert!(matches!(read_frame::<GateToServer, _>(&mut s).await.unwrap(), GateToServer::Registered { .. }));
        write_frame(&mut s, &ServerToGate::Serve { server_mask: 18, policy: false, macs: vec![] }).await.unwrap();
        assert!(matches!(read_frame::<GateToServer, _>(&mut s).await.unwrap(), GateToServer::Serving { .. }));
        conns.push(s);
    }
    let setup = t.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = rss_kib(pid);
    println!(
        "gateway RSS: {base} KiB idle, {with} KiB with {n} server sessions -> {:.1} KiB per idle session (registration + serve of {n} took {:.1} s)",
        (with - base) as f64 / n as f64,
        setup.as_secs_f64()
    );
    drop(conns);
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
