//! The built-in desktop's speed (issue 15, point 6), release build, on a
//! 1920x1080 X display:
//! - **idle**: bytes per second the server sends while nothing changes;
//! - **busy**: screen updates per second and bytes per second while a
//!   960x540 window (25 % of the screen) is repainted 60 times a second with
//!   a new pattern of rectangles each time (every pixel of it changes);
//! - **key to screen**: from a key pressed on the home display (XTEST into
//!   the viewer's window) to the echo of that key by an xterm on the office
//!   display showing in the viewer's window, polled every millisecond on the
//!   home display.
//!
//! The office display runs the real X11 screen (DAMAGE, GetImage, XTEST)
//! and the real `DesktopServer`, fed a loopback TCP stream (the tunnel is
//! issue 14's benchmark); the viewer is the real `xfreerdp` on a second
//! Xvfb, with the one-time password on its standard input as thinclient
//! gives it; a loopback proxy between them counts the bytes. Floors: at
//! least 15 updates per second for the 25 % change, key to screen under
//! 150 ms, idle under 10 KB/s.
//!
//! The peer, measured the same way in the same run: FreeRDP's own shadow
//! server (`freerdp-shadow-cli`, Debian's freerdp2-shadow-x11), which serves
//! an X11 display over RDP as the built-in desktop does.
//!
//! Run: `cargo bench -p thin-e2e-gui --bench desktop` (needs Xvfb, xterm,
//! xfreerdp and xdotool: scripts/setup.sh; the peer needs
//! `apt-get install freerdp2-shadow-x11` and is skipped without it).

#[cfg(target_os = "linux")]
mod run {
    use std::io::Write;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use thin_e2e_gui::xvfb::{tool_exists, Xvfb};
    use thin_tunnel::desktop::screen::Screen;
    use thin_tunnel::desktop::server::{DesktopServer, ScreenOpener};
    use thin_tunnel::desktop::DesktopInfo;
    use thin_tunnel::platform::x11::X11Screen;
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{self, ConnectionExt as _};
    use x11rb::protocol::xtest::ConnectionExt as _;
    use x11rb::rust_connection::RustConnection;

    /// The busy window: 25 % of 1920x1080.
    const BUSY: (i16, i16, u16, u16) = (900, 500, 960, 540);
    /// Where the office xterm echoes keys (its top-left corner), on both screens.
    const ECHO: (i16, i16, u16, u16) = (0, 0, 520, 140);

    /// A child killed on drop.
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn xdotool(display: &str, args: &[&str]) -> String {
        let o = Command::new("xdotool").args(args).env("DISPLAY", display).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_window(display: &str, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(id) = xdotool(display, &["search", "--name", name]).lines().last() {
                return id.trim().to_string();
            }
            assert!(Instant::now() < deadline, "no window {name:?} on {display}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn connect(display: &str) -> (RustConnection, u32) {
        let (c, n) = x11rb::connect(Some(display)).unwrap();
        let root = c.setup().roots[n].root;
        (c, root)
    }

    fn grab(c: &RustConnection, root: u32, (x, y, w, h): (i16, i16, u16, u16)) -> Vec<u8> {
        c.get_image(xproto::ImageFormat::Z_PIXMAP, root, x, y, w, h, !0).unwrap().reply().unwrap().data
    }

    /// Repaints the busy window 60 times a second until `stop`: a new
    /// background and 150 rectangles of new colours each time.
    fn animate(display: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
        std::thread::spawn(move || {
            let (c, root) = connect(&display);
            let (x, y, w, h) = BUSY;
            let win = c.generate_id().unwrap();
            let aux = xproto::CreateWindowAux::new().background_pixel(0).override_redirect(1);
            c.create_window(24, win, root, x, y, w, h, 0, xproto::WindowClass::INPUT_OUTPUT, 0, &aux).unwrap();
            c.map_window(win).unwrap();
            let gc = c.generate_id().unwrap();
            c.create_gc(gc, win, &xproto::CreateGCAux::new()).unwrap();
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut frames = 0;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let r = next();
                c.change_gc(gc, &xproto::ChangeGCAux::new().foreground((r & 0xff_ffff) as u32)).unwrap();
                c.poly_fill_rectangle(win, gc, &[xproto::Rectangle { x: 0, y: 0, width: w, height: h }]).unwrap();
                for _ in 0..150 {
                    let r = next();
                    c.change_gc(gc, &xproto::ChangeGCAux::new().foreground((r >> 40) as u32 & 0xff_ffff)).unwrap();
                    let rect = xproto::Rectangle {
                        x: (r % u64::from(w)) as i16,
                        y: ((r >> 16) % u64::from(h)) as i16,
                        width: 8 + ((r >> 24) % 200) as u16,
                        height: 8 + ((r >> 32) % 60) as u16,
                    };
                    c.poly_fill_rectangle(win, gc, &[rect]).unwrap();
                }
                c.get_input_focus().unwrap().reply().unwrap();
                frames += 1;
                let due = start + Duration::from_micros(16_667 * frames);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            c.destroy_window(win).unwrap();
            c.flush().unwrap();
            frames
        })
    }

    fn kbs(bytes: u64, secs: f64) -> f64 {
        bytes as f64 / secs / 1000.0
    }

    /// A loopback TCP proxy to `to` counting the bytes that come back (what
    /// the viewer receives); one connection at a time, for as long as the runtime runs.
    async fn counting_proxy(to: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let count = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut viewer, _)) = listener.accept().await {
                let Ok(mut server) = tokio::net::TcpStream::connect(to).await else { continue };
                let _ = (viewer.set_nodelay(true), server.set_nodelay(true));
                let count = count.clone();
                tokio::spawn(async move {
                    let (mut vr, mut vw) = viewer.split();
                    let (mut sr, mut sw) = server.split();
                    let up = tokio::io::copy(&mut vr, &mut sw);
                    let down = async {
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = tokio::io::AsyncReadExt::read(&mut sr, &mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            count.fetch_add(n as u64, Ordering::Relaxed);
                            tokio::io::AsyncWriteExt::write_all(&mut vw, &buf[..n]).await?;
                        }
                    };
                    let _ = tokio::join!(up, down);
                });
            }
        });
        (addr, sent)
    }

    /// What one server did.
    struct Figures {
        idle_kbs: f64,
        busy_kbs: f64,
        updates_per_s: Option<f64>,
        keys_ms: Vec<f64>,
    }

    /// Measures the server at `server` with `xfreerdp ARGS /v:PROXY` on `home`
    /// (`stdin`: what is written to the viewer's standard input).
    fn measure(
        rt: &tokio::runtime::Runtime,
        (office, home): (&str, &str),
        server: std::net::SocketAddr,
        args: &[String],
        stdin: Option<&str>,
        updates: Option<&DesktopServer>,
    ) -> Figures {
        let (proxy, sent) = rt.block_on(counting_proxy(server));
        let mut viewer = Command::new("xfreerdp")
            .arg(format!("/v:{proxy}"))
            .args(args)
            .env("DISPLAY", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pipe = viewer.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let _viewer = Kill(viewer);
        let win = wait_window(home, "FreeRDP");
        // The first picture: bytes flow, then stop for a second.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = (0, Instant::now());
        loop {
            let now = sent.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            } else if now > 0 && last.1.elapsed() > Duration::from_secs(1) {
                break;
            }
            assert!(Instant::now() < deadline, "the viewer got no picture");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(2));

        // Idle.
        let (b0, t0) = (sent.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(Duration::from_secs(10));
        let idle_kbs = kbs(sent.load(Ordering::Relaxed) - b0, t0.elapsed().as_secs_f64());

        // Busy: 25 % of the screen changes 60 times a second.
        let stop = Arc::new(AtomicBool::new(false));
        let painter = animate(office.to_string(), stop.clone());
        std::thread::sleep(Duration::from_secs(2));
        let count = || updates.map_or(0, |u| u.updates_sent());
        let (b0, u0, t0) = (sent.load(Ordering::Relaxed), count(), Instant::now());
        std::thread::sleep(Duration::from_secs(10));
        let secs = t0.elapsed().as_secs_f64();
        let updates_per_s = updates.map(|_| (count() - u0) as f64 / secs);
        let busy_kbs = kbs(sent.load(Ordering::Relaxed) - b0, secs);
        stop.store(true, Ordering::Relaxed);
        painter.join().unwrap();
        std::thread::sleep(Duration::from_secs(2));

        // Key to screen: XTEST key presses on the home display, into the
        // viewer; the office xterm echoes them; the home display's pixels
        // where the echo shows are polled every millisecond.
        xdotool(home, &["windowfocus", "--sync", &win]);
        xdotool(home, &["mousemove", "--window", &win, "100", "40"]);
        xdotool(home, &["click", "1"]);
        std::thread::sleep(Duration::from_millis(500));
        let (c, root) = connect(home);
        // Keycodes of q w e r t y u i o p on Xvfb's evdev map (24-33); 36 is Return.
        let press = |key: u8| {
            c.xtest_fake_input(xproto::KEY_PRESS_EVENT, key, 0, root, 0, 0, 0).unwrap();
            c.xtest_fake_input(xproto::KEY_RELEASE_EVENT, key, 0, root, 0, 0, 0).unwrap();
            c.flush().unwrap();
        };
        let mut keys_ms = Vec::new();
        for (i, key) in (24u8..=33).cycle().take(30).enumerate() {
            // A new line now and then keeps the echo inside the polled area.
            if i % 10 == 0 {
                press(36);
                std::thread::sleep(Duration::from_millis(300));
            }
            let before = grab(&c, root, ECHO);
            let t = Instant::now();
            press(key);
            while grab(&c, root, ECHO) == before {
                assert!(t.elapsed() < Duration::from_secs(5), "key {i} never showed on the viewer");
                std::thread::sleep(Duration::from_millis(1));
            }
            keys_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(150));
        }
        keys_ms.sort_by(f64::total_cmp);
        Figures { idle_kbs, busy_kbs, updates_per_s, keys_ms }
    }

    fn report(name: &str, f: &Figures) {
        let k = &f.keys_ms;
        println!("{name}:");
        println!("  idle: {:.2} KB/s sent", f.idle_kbs);
        match f.updates_per_s {
            Some(u) => println!("  busy (960x540 repainted at 60 Hz): {u:.1} updates/s sent, {:.0} KB/s", f.busy_kbs),
            None => println!("  busy (960x540 repainted at 60 Hz): {:.0} KB/s", f.busy_kbs),
        }
        println!(
            "  key to screen: n={} min {:.1} ms, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            k.len(),
            k[0],
            k[k.len() / 2],
            k[k.len() * 9 / 10],
            k[k.len() - 1]
        );
    }

    pub fn main() {
        for t in ["Xvfb", "xterm", "xfreerdp", "xdotool"] {
            if !tool_exists(t) {
                println!("desktop bench: skipped ({t} is not installed; scripts/setup.sh installs it)");
                return;
            }
        }
        let office = Xvfb::start_sized("1920x1080");
        let home = Xvfb::start_sized("1920x1080");
        // An xterm that echoes keys (`cat` in its terminal), top left of the office screen.
        let _term = Kill(
            Command::new("xterm")
                .args(["-fa", "Monospace", "-fs", "14", "-geometry", "40x5+0+0", "-title", "office-term"])
                .args(["-e", "cat"])
                .env("DISPLAY", &office.display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_window(&office.display, "office-term");
        let displays = (office.display.as_str(), home.display.as_str());
        println!("desktop bench: 1920x1080 office screen {}, xfreerdp on {}", office.display, home.display);

        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let display = office.display.clone();
        let open: ScreenOpener =
            Arc::new(move || X11Screen::open(Some(&display)).map(|s| Box::new(s) as Box<dyn Screen>));
        let server = Arc::new(DesktopServer::new(open).unwrap());
        let DesktopInfo::Builtin { sha256 } = server.info() else { unreachable!() };
        let password = "5f1c0a9e7b3d42868e0f1a2b3c4d5e6f".to_string();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let ours = listener.local_addr().unwrap();
        {
            let (server, password) = (server.clone(), password.clone());
            rt.spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let _ = tcp.set_nodelay(true);
                    let (server, password) = (server.clone(), password.clone());
                    tokio::spawn(async move { server.serve_detached(tcp, password, true).await });
                }
            });
        }
        let fingerprint: Vec<&str> = sha256.as_bytes().chunks(2).map(|p| std::str::from_utf8(p).unwrap()).collect();
        let args = [
            "/u:thin".to_string(),
            "/from-stdin:force".to_string(),
            format!("/cert:fingerprint:sha256:{}", fingerprint.join(":")),
        ];
        let f = measure(&rt, displays, ours, &args, Some(&format!("{password}\n")), Some(&server));
        report("built-in desktop (thinsvr)", &f);
        println!("  floors: at least 15 updates/s at 25 % change, key to screen under 150 ms, idle under 10 KB/s");

        // The peer: FreeRDP's own shadow server on the same display, same viewer.
        if !tool_exists("freerdp-shadow-cli") {
            println!("FreeRDP shadow server: skipped (apt-get install freerdp2-shadow-x11)");
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let _shadow = Kill(
            Command::new("freerdp-shadow-cli")
                .args([format!("/port:{port}"), "/bind-address:127.0.0.1".into(), "/sec:tls".into(), "-auth".into()])
                .env("DISPLAY", &office.display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(peer).is_err() {
            assert!(Instant::now() < deadline, "freerdp-shadow-cli did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = ["/u:thin".to_string(), "/p:x".to_string(), "/cert:ignore".to_string()];
        let p = measure(&rt, displays, peer, &args, None, None);
        report("FreeRDP shadow server (freerdp-shadow-cli, same display and viewer)", &p);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        println!(
            "ratios (built-in / FreeRDP shadow): busy bandwidth {:.2}x, key-to-screen median {:.2}x",
            ratio(f.busy_kbs, p.busy_kbs),
            ratio(f.keys_ms[f.keys_ms.len() / 2], p.keys_ms[p.keys_ms.len() / 2])
        );
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    run::main();
    #[cfg(not(target_os = "linux"))]
    println!("desktop bench: Linux only (the built-in desktop serves X11)");
}
