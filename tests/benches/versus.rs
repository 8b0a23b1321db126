//! The whole chain against the tunnels it is compared with, in one run on one
//! machine: thinclient -> thingate -> thinsvr (TLS legs, end-to-end records,
//! yamux) against rathole with its TLS transport (visitor -> server -> client
//! -> service, the same job) and bore (a plain-TCP tunnel, the set-up
//! latency reference). Each chain carries the same uploads to the same sink.
//!
//! For each chain, three repetitions (the chains take turns, so the noise of
//! a shared machine spreads over all of them): single-stream and 4-stream
//! throughput, new-connection set-up p50/p99 over 1,000 connections, the CPU
//! seconds the relay process (thingate, rathole's server, bore's server)
//! used per GiB carried, and how busy the whole machine was; and for the
//! four-stream run, the CPU seconds per GiB of each process of the chain and
//! of the bench itself (visitors and sink).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p thin-e2e --bench versus`.
//! rathole and bore are built once into `target/anchors` (crates.io; rathole
//! without `--locked`, as its lock file pins a `time` release that no longer
//! compiles). `VERSUS_MIB` sets the bytes per throughput run (1024);
//! `VERSUS_BASE_DIR` names a folder holding an earlier build's `thingate`,
//! `thinclient` and `thinsvr` (any of them missing is taken from this build)
//! to run as a fourth chain, "thin-base", so a change is measured against
//! what it replaced in the same run; `VERSUS_BASE_THINGATE` names an earlier
//! `thingate` alone. `VERSUS_HOP=1` adds "rathole+hop": rathole behind a
//! plain-TCP forwarder process (this bench run again as one, 64 KiB copies
//! each way, no crypto), so the visitor's bytes cross as many processes and
//! loopback hops as through thinclient, thingate and thinsvr.
//! `VERSUS_STRIPES=N` adds "thin xN": N thinclients, so N tunnels (each its
//! own TLS connection on both legs) through the same thingate to the same
//! thinsvr, with the four streams spread over them: what striping one tunnel's
//! streams over N connections could give at most, measured before building it.
//! `VERSUS_SLOW=1` prints when each chain's 15 slowest set-ups happened.
//! `VERSUS_SETUP_ONLY=N` measures only the set-ups, in N repetitions (the
//! chains taking turns), and prints each chain's p50, p90 and p99 over all of
//! them: a quick comparison while working on the set-up path;
//! `VERSUS_SKIP=rathole,...` leaves the chains named out of it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use thin_e2e::bench::{
    cpu_seconds, gbit, machine_ticks, probe, quantile_ms, setup_series, setup_times, sink_server, sorted_times,
    timed_upload, timed_upload_over, upload,
};
use thin_e2e::procs::{thinclient_connect, thinsvr, Proc};
use thin_e2e::{free_port, GateDir, Pki};

const PASSWORD: &str = "versus copper lantern river";

/// One running tunnel: the port a visitor connects to, and its relay process.
struct Chain {
    name: &'static str,
    /// The ports a visitor connects to: one, but for the striped chain,
    /// whose four-stream run sends its streams to each in turn.
    stripes: Vec<SocketAddr>,
    relay_pid: u32,
    _procs: Vec<Proc>,
    _dirs: Vec<tempfile::TempDir>,
    _gate: Option<GateDir>,
}

impl Chain {
    /// The port the single stream and the set-ups go through.
    fn local(&self) -> SocketAddr {
        self.stripes[0]
    }
}

fn anchors_dir() -> PathBuf {
    // target/release/deps/versus-... -> target/anchors
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("anchors")
}

/// rathole and bore, built from crates.io the first time.
fn anchors() -> (PathBuf, PathBuf) {
    let root = anchors_dir();
    let (rathole, bore) = (root.join("bin/rathole"), root.join("bin/bore"));
    let install = |args: &[&str]| {
        eprintln!("building {args:?} into {}", root.display());
        let st = Command::new(env!("CARGO")).arg("install").args(args).arg("--root").arg(&root).status().unwrap();
        assert!(st.success(), "cargo install {args:?} failed");
    };
    if !rathole.exists() {
        install(&["rathole@0.5.0"]);
    }
    if !bore.exists() {
        install(&["--locked", "bore-cli@0.6.0"]);
    }
    (rathole, bore)
}

async fn wait_ready(name: &str, local: SocketAddr, procs: &mut [Proc]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), probe(local)).await {
            return;
        }
        if std::time::Instant::now() > deadline {
            let report: Vec<String> = procs.iter_mut().map(|p| p.report()).collect();
            panic!("{name} did not carry a connection within 30 s:\n{}", report.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An earlier build's binaries, to measure a change in the same run.
#[derive(Default)]
struct Base {
    gate: Option<PathBuf>,
    dir: Option<PathBuf>,
}

impl Base {
    fn from_env() -> Option<Base> {
        let dir = std::env::var_os("VERSUS_BASE_DIR").map(PathBuf::from);
        let gate = std::env::var_os("VERSUS_BASE_THINGATE")
            .map(PathBuf::from)
            .or_else(|| dir.as_ref().map(|d| d.join("thingate")).filter(|p| p.exists()));
        (gate.is_some() || dir.is_some()).then_some(Base { gate, dir })
    }

    /// `cmd` with the earlier build's binary `name` in place of this build's, if there is one.
    fn swap(&self, cmd: Command, name: &str) -> Command {
        let Some(p) = self.dir.as_ref().map(|d| d.join(name)).filter(|p| p.exists()) else { return cmd };
        let mut c = Command::new(p);
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }
}

/// The project's chain, with `base`'s binaries where it has them (none:
/// `Base::default()`).
async fn start_thin(name: &'static str, base: &Base, sink: SocketAddr) -> Chain {
    start_thin_striped(name, base, sink, 1).await
}

/// The project's chain with `stripes` thinclients (tunnels) to the one office PC.
async fn start_thin_striped(name: &'static str, base: &Base, sink: SocketAddr, stripes: usize) -> Chain {
    let g = GateDir::new("TunnelTimeout 30000\nTunnelKeepAlive 10000");
    let (gw, addr) = match &base.gate {
        None => g.spawn(&[("RUST_LOG", "warn")]),
        Some(bin) => {
            let mut cmd = Command::new(bin);
            cmd.arg("run").arg("--config").arg(g.ini()).env("RUST_LOG", "warn");
            let mut p = Proc::spawn(cmd, None);
            let addr: SocketAddr = p.wait_line("listening on ", Duration::from_secs(20)).parse().unwrap();
            (p, addr)
        }
    };
    let relay_pid = gw.child.id();
    let ep = g.entry_point(addr);
    let cfg = tempfile::tempdir().unwrap();
    let reg = base.swap(thinsvr(&ep, cfg.path(), &["register", "--pcid", "versus", "--password-stdin"]), "thinsvr");
    let (st, err) = Proc::spawn(reg, Some(&format!("{PASSWORD}\n"))).finish(Duration::from_secs(30));
    assert!(st.success(), "{err}");
    let mut run = base.swap(thinsvr(&ep, cfg.path(), &["run", "--target", &sink.to_string()]), "thinsvr");
    run.env("RUST_LOG", "warn");
    let mut svr = Proc::spawn(run, None);
    svr.wait_line("online as versus", Duration::from_secs(20));
    let mut procs = vec![gw, svr];
    let mut locals = Vec::new();
    for _ in 0..stripes {
        let cli = base.swap(thinclient_connect(&ep, "versus"), "thinclient");
        let mut cli = Proc::spawn(cli, Some(&format!("{PASSWORD}\n")));
        let local: SocketAddr = cli.wait_line("listening on ", Duration::from_secs(30)).parse().unwrap();
        procs.push(cli);
        wait_ready(name, local, &mut procs).await;
        locals.push(local);
    }
    Chain { name, stripes: locals, relay_pid, _procs: procs, _dirs: vec![cfg], _gate: Some(g) }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Env var that makes this binary a plain-TCP forwarder: `listen,target`.
const FORWARD_ENV: &str = "VERSUS_FORWARD";

/// The forwarder: every connection to `listen` is copied both ways to
/// `target` (what thinclient does, without the tunnel).
fn forward(spec: &str) {
    let (listen, target) = spec.split_once(',').expect("VERSUS_FORWARD=listen,target");
    let (listen, target): (SocketAddr, SocketAddr) = (listen.parse().unwrap(), target.parse().unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(listen).await.unwrap();
        loop {
            let (mut a, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut b) = tokio::net::TcpStream::connect(target).await else { return };
                let _ = a.set_nodelay(true);
                let _ = b.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, 64 * 1024, 64 * 1024).await;
            });
        }
    });
}

/// rathole with a forwarder process in front of its visitor port.
async fn start_rathole_hop(bin: &Path, sink: SocketAddr) -> Chain {
    let mut chain = start_rathole(bin, sink).await;
    let local: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(FORWARD_ENV, format!("{local},{}", chain.local()));
    chain._procs.push(Proc::spawn(c, None));
    wait_ready("rathole+hop", local, &mut chain._procs).await;
    chain.name = "rathole+hop";
    chain.stripes = vec![local];
    chain
}

async fn start_rathole(bin: &Path, sink: SocketAddr) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let cert = write(dir.path(), "cert.pem", &pki.cert_pem);
    let key = write(dir.path(), "key.pem", &pki.key_pem);
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    let pfx = dir.path().join("identity.pfx");
    let st = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:versus", "-out"])
        .arg(&pfx)
        .arg("-inkey")
        .arg(&key)
        .arg("-in")
        .arg(&cert)
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl pkcs12 failed");
    let (control, visitor) = (free_port(), free_port());
    let server = write(
        dir.path(),
        "server.toml",
        &format!(
            "[server]\nbind_addr = \"127.0.0.1:{control}\"\n[server.transport]\ntype = \"tls\"\n\
             [server.transport.tls]\npkcs12 = \"{}\"\npkcs12_password = \"versus\"\n\
             [server.services.bench]\ntoken = \"versus-token\"\nbind_addr = \"127.0.0.1:{visitor}\"\n",
            pfx.display()
        ),
    );
    let client = write(
        dir.path(),
        "client.toml",
        &format!(
            "[client]\nremote_addr = \"localhost:{control}\"\n[client.transport]\ntype = \"tls\"\n\
             [client.transport.tls]\ntrusted_root = \"{}\"\nhostname = \"localhost\"\n\
             [client.services.bench]\ntoken = \"versus-token\"\nlocal_addr = \"{sink}\"\n",
            ca.display()
        ),
    );
    let mut s = Command::new(bin);
    s.env("RUST_LOG", "warn").arg("--server").arg(&server);
    let srv = Proc::spawn(s, None);
    let relay_pid = srv.child.id();
    let mut c = Command::new(bin);
    c.env("RUST_LOG", "warn").arg("--client").arg(&client);
    let cli = Proc::spawn(c, None);
    let local: SocketAddr = format!("127.0.0.1:{visitor}").parse().unwrap();
    let mut procs = vec![srv, cli];
    wait_ready("rathole", local, &mut procs).await;
    Chain { name: "rathole", stripes: vec![local], relay_pid, _procs: procs, _dirs: vec![dir], _gate: None }
}

async fn start_bore(bin: &Path, sink: SocketAddr) -> Chain {
    // bore's control port is fixed (7835).
    let mut s = Command::new(bin);
    s.env("RUST_LOG", "warn").args(["server", "--bind-addr", "127.0.0.1", "--min-port", "1024"]);
    let srv = Proc::spawn(s, None);
    let relay_pid = srv.child.id();
    let remote = free_port();
    let mut procs = vec![srv];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect("127.0.0.1:7835").await.is_err() {
        assert!(std::time::Instant::now() < deadline, "bore server did not listen on 7835 within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = Command::new(bin);
    c.env("RUST_LOG", "warn").args(["local", &sink.port().to_string(), "--local-host", "127.0.0.1"]);
    c.args(["--to", "127.0.0.1", "--port", &remote.to_string()]);
    procs.push(Proc::spawn(c, None));
    let local: SocketAddr = format!("127.0.0.1:{remote}").parse().unwrap();
    wait_ready("bore", local, &mut procs).await;
    Chain { name: "bore", stripes: vec![local], relay_pid, _procs: procs, _dirs: vec![], _gate: None }
}

/// One repetition's figures for one chain.
#[derive(Clone, Debug)]
struct Figures {
    single: f64,
    four: f64,
    /// CPU seconds per GiB during the four-stream run: each process of the
    /// chain (name, seconds), then this bench process (the visitors and the
    /// sink, the same work for every chain).
    four_cpu: Vec<(String, f64)>,
    p50: f64,
    p99: f64,
    relay_cpu_per_gib: f64,
    machine_busy: f64,
}

async fn measure(c: &Chain, bytes: u64) -> Figures {
    upload(c.local(), 64 << 20).await; // warm-up
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let cpu0 = cpu_seconds(c.relay_pid);
    let (busy0, total0) = machine_ticks();
    let single = timed_upload(c.local(), bytes, 1).await;
    let pids: Vec<u32> = c._procs.iter().map(|p| p.child.id()).chain([std::process::id()]).collect();
    let before: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let four = timed_upload_over(&c.stripes, bytes, 4).await;
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let four_cpu = pids
        .iter()
        .zip(before)
        .map(|(&p, b)| {
            let name = if p == std::process::id() {
                "bench".to_string()
            } else {
                std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim().to_string()
            };
            (name, (cpu_seconds(p) - b) / gib)
        })
        .collect();
    let cpu = cpu_seconds(c.relay_pid) - cpu0;
    let (busy1, total1) = machine_ticks();
    let lat = chain_setups(c).await;
    Figures {
        single: gbit(bytes, single),
        four: gbit(bytes, four),
        four_cpu,
        p50: quantile_ms(&lat, 0.50),
        p99: quantile_ms(&lat, 0.99),
        relay_cpu_per_gib: cpu / (2.0 * bytes as f64 / (1u64 << 30) as f64),
        machine_busy: (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores * 100.0,
    }
}

/// One chain's 1,000 set-up times (after 100 unmeasured), sorted; with
/// `VERSUS_SLOW`, printing when the slowest happened.
async fn chain_setups(c: &Chain) -> Vec<Duration> {
    if std::env::var_os("VERSUS_SLOW").is_some() {
        setup_times_showing_slowest(c).await
    } else {
        setup_times(c.local(), 100, 1000).await
    }
}

/// [`setup_times`] that also prints when the 15 slowest set-ups happened
/// (`VERSUS_SLOW=1`): ms since the first measured one, and ms taken.
async fn setup_times_showing_slowest(c: &Chain) -> Vec<Duration> {
    let series = setup_series(c.local(), 100, 1000).await;
    let mut slow = series.clone();
    slow.sort_by_key(|&(_, d)| std::cmp::Reverse(d));
    slow.truncate(15);
    slow.sort();
    let shown: Vec<String> =
        slow.iter().map(|(at, d)| format!("{:.0}:{:.2}", at.as_secs_f64() * 1e3, d.as_secs_f64() * 1e3)).collect();
    println!("  {} set-up, slowest 15 (ms since start:ms taken): {}", c.name, shown.join(" "));
    sorted_times(&series)
}

/// CPU seconds per GiB of every process, the bench's included, during the
/// four-stream run: on a saturated machine, what bounds its throughput.
fn chain_cpu(f: &Figures) -> f64 {
    f.four_cpu.iter().map(|(_, s)| s).sum()
}

/// `VERSUS_SETUP_ONLY`: `reps` rounds of 1,000 set-ups per chain (after 100
/// unmeasured), the chains taking turns; each round's p50 and p99, then the
/// quantiles of all rounds together.
async fn setups_only(chains: &[Chain], reps: usize) {
    let skip = std::env::var("VERSUS_SKIP").unwrap_or_default();
    let chains: Vec<&Chain> = chains.iter().filter(|c| !skip.split(',').any(|s| s == c.name)).collect();
    println!("versus: set-ups only, {reps} repetitions of 1,000 per chain, chains taking turns");
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); chains.len()];
    for rep in 0..reps {
        for k in 0..chains.len() {
            let i = (k + rep) % chains.len();
            let lat = chain_setups(chains[i]).await;
            println!(
                "rep {} {:8}: set-up p50 {:.3} ms p99 {:.3} ms",
                rep + 1,
                chains[i].name,
                quantile_ms(&lat, 0.5),
                quantile_ms(&lat, 0.99)
            );
            all[i].extend(lat);
        }
    }
    println!();
    for (c, lat) in chains.into_iter().zip(&mut all) {
        lat.sort();
        let q = |x| quantile_ms(lat, x);
        println!("{:10} all rounds: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms", c.name, q(0.5), q(0.9), q(0.99));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if let Ok(spec) = std::env::var(FORWARD_ENV) {
        return forward(&spec);
    }
    thin_tunnel::platform::limits::raise_open_files();
    let mib: u64 = std::env::var("VERSUS_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let bytes = mib << 20;
    let (rathole, bore) = anchors();
    let setup_only: usize = std::env::var("VERSUS_SETUP_ONLY").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sink = sink_server().await;
        let mut chains = vec![
            start_thin("thin", &Base::default(), sink).await,
            start_rathole(&rathole, sink).await,
            start_bore(&bore, sink).await,
        ];
        if let Some(base) = Base::from_env() {
            chains.push(start_thin("thin-base", &base, sink).await);
        }
        if std::env::var_os("VERSUS_HOP").is_some() {
            chains.push(start_rathole_hop(&rathole, sink).await);
        }
        let stripes: usize = std::env::var("VERSUS_STRIPES").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        if stripes > 1 {
            let name: &'static str = format!("thin x{stripes}").leak();
            chains.push(start_thin_striped(name, &Base::default(), sink, stripes).await);
        }
        if setup_only > 0 {
            return setups_only(&chains, setup_only).await;
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        println!("versus: {cores} cores, {mib} MiB per throughput run, 3 repetitions, chains taking turns");
        let mut all: Vec<Vec<Figures>> = vec![Vec::new(); chains.len()];
        for rep in 0..3 {
            for k in 0..chains.len() {
                let i = (k + rep) % chains.len();
                let f = measure(&chains[i], bytes).await;
                println!(
                    "rep {} {:8}: single {:.2} Gbit/s, 4 streams {:.2} Gbit/s, set-up p50 {:.2} ms p99 {:.2} ms, \
                     relay CPU {:.3} s/GiB, machine {:.0} % busy",
                    rep + 1,
                    chains[i].name,
                    f.single,
                    f.four,
                    f.p50,
                    f.p99,
                    f.relay_cpu_per_gib,
                    f.machine_busy
                );
                let each: Vec<String> = f.four_cpu.iter().map(|(n, s)| format!("{n} {s:.2}")).collect();
                println!("      4 streams, CPU s/GiB: {}, all {:.2}", each.join(", "), chain_cpu(&f));
                all[i].push(f);
            }
        }
        let med = |i: usize, g: fn(&Figures) -> f64| median(all[i].iter().map(g).collect());
        println!();
        println!(
            "| medians of 3 | single stream | 4 streams | set-up p50 | set-up p99 | relay CPU per GiB | machine busy | all CPU per GiB, 4 streams |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (i, c) in chains.iter().enumerate() {
            println!(
                "| {} | {:.2} Gbit/s | {:.2} Gbit/s | {:.2} ms | {:.2} ms | {:.3} s | {:.0} % | {:.2} s |",
                c.name,
                med(i, |f| f.single),
                med(i, |f| f.four),
                med(i, |f| f.p50),
                med(i, |f| f.p99),
                med(i, |f| f.relay_cpu_per_gib),
                med(i, |f| f.machine_busy),
                med(i, chain_cpu)
            );
        }
        println!();
        println!("thin / rathole, single stream: {:.2}x (goal >= 1.0)", med(0, |f| f.single) / med(1, |f| f.single));
        println!("thin / rathole, 4 streams:     {:.2}x (goal >= 1.0)", med(0, |f| f.four) / med(1, |f| f.four));
        println!("thin / bore, set-up p99:       {:.2}x (goal <= 1.0)", med(0, |f| f.p99) / med(2, |f| f.p99));
        println!(
            "thingate / rathole server, CPU per GiB: {:.2}x (goal <= 0.5)",
            med(0, |f| f.relay_cpu_per_gib) / med(1, |f| f.relay_cpu_per_gib)
        );
        let find = |name: &str| chains.iter().position(|c| c.name == name);
        if let Some(b) = find("thin-base") {
            println!(
                "thin / thin-base: single {:.2}x, 4 streams {:.2}x, thingate CPU per GiB {:.2}x",
                med(0, |f| f.single) / med(b, |f| f.single),
                med(0, |f| f.four) / med(b, |f| f.four),
                med(0, |f| f.relay_cpu_per_gib) / med(b, |f| f.relay_cpu_per_gib)
            );
        }
        if let Some(x) = chains.iter().position(|c| c.stripes.len() > 1) {
            println!(
                "{} / thin: single {:.2}x, 4 streams {:.2}x, thingate CPU per GiB {:.2}x; {} / rathole, 4 streams {:.2}x",
                chains[x].name,
                med(x, |f| f.single) / med(0, |f| f.single),
                med(x, |f| f.four) / med(0, |f| f.four),
                med(x, |f| f.relay_cpu_per_gib) / med(0, |f| f.relay_cpu_per_gib),
                chains[x].name,
                med(x, |f| f.four) / med(1, |f| f.four)
            );
        }
        if let Some(h) = find("rathole+hop") {
            println!(
                "thin / rathole+hop: single {:.2}x, 4 streams {:.2}x; rathole+hop / rathole: single {:.2}x, 4 streams {:.2}x",
                med(0, |f| f.single) / med(h, |f| f.single),
                med(0, |f| f.four) / med(h, |f| f.four),
                med(h, |f| f.single) / med(1, |f| f.single),
                med(h, |f| f.four) / med(1, |f| f.four)
            );
        }
    });
}
