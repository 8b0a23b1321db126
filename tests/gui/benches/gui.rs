//! The windows' two latencies (issue 4), release build:
//! - cold start of ThinClient's window: from spawning a new process to its
//!   first frame, under Xvfb with software OpenGL (llvmpipe); the process is
//!   this bench again (`THIN_GUI_CHILD=client`), which opens the same window
//!   and code as the app;
//! - connecting to an online office PC: from the connector's start (what OK
//!   in the password prompt does) to the viewer's start, through a gateway
//!   and an office PC on loopback (in-process), with the real connector
//!   (TLS, pairing, OPAQUE login with Argon2, local port, viewer command).
//!
//! Run: `cargo bench -p thin-e2e-gui --bench gui` (needs Xvfb and xdotool; see scripts/setup.sh).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thin_e2e::TestGateway;
use thin_e2e_gui::xvfb::{self, Window, Xvfb};
use thin_protocol::secret::Secret;
use thin_ui::gui::{ClientEvent, Connector, RealConnector, Session};
use tokio_util::sync::CancellationToken;

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} min {:.0} ms, median {:.0} ms, max {:.0} ms",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    );
}

fn cold_start(runs: usize) {
    if !xvfb::tool_exists("Xvfb") || !xvfb::tool_exists("xdotool") {
        println!("cold start: skipped (Xvfb or xdotool missing)");
        return;
    }
    let x = Xvfb::start();
    let mut v = Vec::new();
    for lang in ["en", "ja"] {
        // One warm-up so the binary and Mesa are in the page cache, as after any earlier start.
        drop(Window::open(&x, "client", lang));
        for _ in 0..runs {
            v.push(Window::open(&x, "client", lang).ready_after);
        }
    }
    stats("ThinClient window, new process -> first frame (en+ja)", v);
}

fn connect(runs: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gw = rt.block_on(TestGateway::start());
    let pc = rt.block_on(gw.office_pc("bench-pc", "bench-password").start());
    // `true` exits at once: the session ends right after the viewer started.
    let conn = RealConnector::new(gw.link.clone()).with_viewer(Some("true".into()));
    let mut v = Vec::new();
    for _ in 0..runs {
        let (tx, rx) = mpsc::channel();
        // The session wakes the window after each event: note when.
        let stamps = Arc::new(Mutex::new(Vec::new()));
        let s2 = stamps.clone();
        let session =
            Session::new(tx, CancellationToken::new(), Arc::new(move || s2.lock().unwrap().push(Instant::now())));
        let t = Instant::now();
        conn.run("bench-pc", Secret::new("bench-password"), &session).expect("connects");
        let events: Vec<ClientEvent> = rx.try_iter().collect();
        let i = events.iter().position(|e| matches!(e, ClientEvent::ViewerStarted(_))).expect("the viewer started");
        v.push(stamps.lock().unwrap()[i] - t);
    }
    stats("connect to an online office PC -> viewer started", v);
    pc.stop.cancel();
    let _ = rt.block_on(pc.task);
    rt.block_on(gw.shutdown());
}

fn main() {
    xvfb::child_main();
    let runs = std::env::var("GUI_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    cold_start(runs);
    connect(runs * 2);
}
