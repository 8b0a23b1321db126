//! The built-in desktop (issue 15) as an employee meets it: an office PC
//! with no RDP host (an Xvfb display with an xterm showing a known text),
//! the real `thinsvr` serving it through a real gateway, the real
//! `thinclient` connecting from the home PC and starting the real
//! `xfreerdp` on a second Xvfb display. The viewer's screenshot shows the
//! office text (Tesseract; the office display is two RandR monitors and the
//! text crosses from one to the other), and keys typed into the viewer with `xdotool`
//! reach the office PC's xterm; text copied on either side is pasted on the
//! other (xclip as the apps), and not once the owner turns the clipboard
//! off; when the office display shrinks (RandR), the
//! viewer's window follows; when the home PC goes away with a key held,
//! the office PC is left with none held, and the next session gets the
//! desktop. A viewer with the wrong password gets no desktop.
//!
//! Needs Xvfb, xterm, xfreerdp (Debian's freerdp2-x11), xdotool, xclip, xprop (x11-utils),
//! ImageMagick and Tesseract (`scripts/setup.sh`); skipped when they are
//! missing, except under CI. Needs the binaries (`cargo build --workspace --bins`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thin_e2e::ocr;
use thin_e2e::procs::{bin, thinsvr, Proc};
use thin_e2e_gui::xvfb::{tool_exists, Xvfb};

const TOOLS: [&str; 9] =
    ["Xvfb", "xterm", "xfreerdp", "xdotool", "xclip", "xprop", "/usr/bin/import", "/usr/bin/convert", "tesseract"];

fn tools_missing() -> bool {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !tool_exists(t)).collect();
    if missing.is_empty() {
        return false;
    }
    assert!(std::env::var_os("CI").is_none(), "desktop tests: {missing:?} missing; run scripts/setup.sh");
    println!("skipped: {missing:?} not installed (scripts/setup.sh installs them)");
    true
}

/// A child killed on drop.
struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("THIN_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("target folder").join("screenshots")
}

fn shoot_root(display: &str, png: &Path) {
    let st =
        Command::new("/usr/bin/import").args(["-window", "root"]).arg(png).env("DISPLAY", display).status().unwrap();
    assert!(st.success(), "import {}", png.display());
}

/// The X window of `name` on `display`, waited for up to `within`.
fn window(display: &str, name: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let out = Command::new("xdotool").args(["search", "--name", name]).env("DISPLAY", display).output().unwrap();
        let id = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        if !id.is_empty() {
            return id;
        }
        assert!(Instant::now() < deadline, "no window named {name:?} on {display} within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The office PC: its display, an xterm on it that shows `text` and writes
/// the first line typed into it to `typed`.
fn office_display(text: &str, typed: &Path) -> (Xvfb, Kill) {
    let x = Xvfb::start();
    let script = format!("printf '%s\\n' '{text}'; head -n 1 > '{}'; sleep 600", typed.display());
    let log = typed.with_extension("xterm.log");
    // xterm now and then exits at once when the display has just come up: start it again.
    for _ in 0..3 {
        let mut term = Kill(
            Command::new("xterm")
                .args([
                    "-fa",
                    "Monospace",
                    "-fs",
                    "16",
                    "-geometry",
                    "48x8+40+40",
                    "-title",
                    "office-term",
                    "-e",
                    "sh",
                    "-c",
                ])
                .arg(&script)
                .env("DISPLAY", &x.display)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("xterm starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && term.0.try_wait().unwrap().is_none() {
            let out = Command::new("xdotool")
                .args(["search", "--name", "office-term"])
                .env("DISPLAY", &x.display)
                .output()
                .unwrap();
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return (x, term);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("xterm on {} showed no window: {}", x.display, std::fs::read_to_string(&log).unwrap_or_default());
    }
    panic!("no xterm window on {}: {}", x.display, std::fs::read_to_string(&log).unwrap_or_default());
}

/// The test X server does not reset when its last client leaves (the viewer
/// killed at the end of a session): a reset throws away what was set on the
/// display, and a client connecting while it runs (the test's next xdotool)
/// gets "Can't open display", as CI once saw. A property set on the root
/// window by a client that then disconnects is still there.
#[test]
fn the_test_x_server_keeps_its_state_when_its_last_client_leaves() {
    if tools_missing() {
        return;
    }
    let x = Xvfb::start();
    let xprop = |args: &[&str]| Command::new("xprop").args(args).env("DISPLAY", &x.display).output().unwrap();
    let set = xprop(&["-root", "-f", "_THIN_NORESET", "8s", "-set", "_THIN_NORESET", "kept"]);
    assert!(set.status.success(), "xprop -set: {}", String::from_utf8_lossy(&set.stderr));
    // The last client has gone; ask until the server answers (a reset in
    // progress refuses), then the property must be there.
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let out = xprop(&["-root", "_THIN_NORESET"]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "the X server {} answers no client", x.display);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(got.contains("\"kept\""), "the X server reset when its last client left (start Xvfb with -noreset): {got}");
}

#[test]
fn builtin_desktop_through_the_gateway_shows_the_office_screen_and_takes_keys() {
    if tools_missing() {
        return;
    }
    let out = screenshot_dir();
    std::fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();
    let typed = work.path().join("typed.txt");
    const TEXT: &str = "QUARTERLY REPORT 4711";
    let (office, _term) = office_display(TEXT, &typed);
    // The office PC has two monitors, and the text crosses from the first
    // to the second: the viewer must get both, as one desktop.
    two_monitors(&office.display, Some(200));
    let home = Xvfb::start();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gw = rt.block_on(thin_e2e::GateDir::new("").start());
    let ep = gw.entry_point();
    let pc = rt.block_on(gw.register("desk-home", "office-password"));
    pc.edit_settings(|s| s.desktop = thin_tunnel::desktop::DesktopMode::Builtin);
    // The real thinsvr on the office display; its RDP target answers nothing.
    let mut cmd = thinsvr(&ep, pc.dir.path(), &["run", "--target", "127.0.0.1:9"]);
    cmd.env("DISPLAY", &office.display);
    let mut svr = Proc::spawn(cmd, None);
    rt.block_on(gw.wait_sessions("desk-home online", 1, Duration::from_secs(30)));
    let (_, stat) = rt.block_on(gw.get("/thinstat/"));
    let mask: u64 = stat.lines().find_map(|l| l.strip_prefix("ServerMask64[0] ")).unwrap().parse().unwrap();
    assert_eq!(mask & 1, 1, "ServerMask64 bit 1 (built-in desktop) is set while it serves: {stat}");

    // The real thinclient starts the real viewer on the home display.
    let mut client = home_client(&ep, &home.display);
    let viewer = window(&home.display, "FreeRDP", Duration::from_secs(60));

    // The office's text on the home screen.
    let png = out.join("builtin-desktop-viewer.png");
    if let Err(text) = ocr::wait_for(&png, TEXT, 2, Duration::from_secs(60), |p| shoot_root(&home.display, p)) {
        panic!(
            "{}: {TEXT:?} is not on the viewer's screen; Tesseract read:\n{text}\nthinclient: {}",
            png.display(),
            client.report()
        );
    }
    println!("desktop: {}", png.display());

    // Keys typed into the viewer reach the office PC's xterm. The viewer
    // gets the focus; the pointer goes over the xterm, which takes keys
    // where the pointer is.
    let xdo = |args: &[&str]| {
        let st = Command::new("xdotool").args(args).env("DISPLAY", &home.display).status().unwrap();
        assert!(st.success(), "xdotool {args:?}");
    };
    xdo(&["windowfocus", "--sync", &viewer]);
    xdo(&["mousemove", "--window", &viewer, "200", "100"]);
    xdo(&["click", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        xdo(&["type", "--delay", "60", "hello4711"]);
        xdo(&["key", "Return"]);
        std::thread::sleep(Duration::from_millis(700));
        if let Ok(t) = std::fs::read_to_string(&typed) {
            assert!(t.trim().ends_with("hello4711"), "the office xterm got {t:?}");
            break;
        }
        assert!(Instant::now() < deadline, "keys typed into the viewer did not reach the office PC");
    }

    // The clipboard, both ways: a copy at home is pasted at the office, and a
    // copy at the office is pasted at home.
    let _home_app = copy_on(&home.display, "pasted from home 4711\nsecond line");
    let got = wait_clipboard(&office.display, "pasted from home 4711\nsecond line");
    assert!(got.is_ok(), "the home copy is not on the office clipboard: {got:?}\n{}", svr.stderr());
    let _office_app = copy_on(&office.display, "copied at the office 815");
    let got = wait_clipboard(&home.display, "copied at the office 815");
    assert!(got.is_ok(), "the office copy is not on the home clipboard: {got:?}\n{}", svr.stderr());

    // The office display shrinks to 800x600 during the session: the viewer
    // is reactivated at the new size, its window follows, and the office
    // text is still on it.
    assert_eq!(geometry(&home.display, &viewer), (1024, 768), "the viewer starts at the office's size");
    two_monitors(&office.display, None);
    set_screen_size(&office.display, 800, 600);
    svr.wait_stderr("the desktop size changed", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while geometry(&home.display, &viewer) != (800, 600) {
        assert!(
            Instant::now() < deadline,
            "the viewer's window stayed {:?} after the office display became 800x600: {}",
            geometry(&home.display, &viewer),
            svr.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let png = out.join("builtin-desktop-viewer-800x600.png");
    if let Err(text) = ocr::wait_for(&png, TEXT, 2, Duration::from_secs(30), |p| shoot_root(&home.display, p)) {
        panic!("{}: {TEXT:?} gone after the resize; read:\n{text}", png.display());
    }
    assert!(client.child.try_wait().unwrap().is_none(), "thinclient ended with the resize: {}", client.report());

    // The home PC goes away while Shift is held in the viewer: the office
    // PC is not left with Shift down, and the next session gets the desktop.
    const SHIFT_L: u8 = 50;
    xdo(&["keydown", "shift"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !keys_down(&office.display).contains(&SHIFT_L) {
        assert!(Instant::now() < deadline, "Shift held in the viewer is not down on the office display");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(client);
    svr.wait_stderr("the viewer left keys or buttons held: released", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !keys_down(&office.display).is_empty() {
        let down = keys_down(&office.display);
        assert!(
            Instant::now() < deadline,
            "keys {down:?} still down on the office display after the viewer went: {}",
            svr.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    xdo(&["keyup", "shift"]);
    // The owner turns the clipboard off: the next session shares none.
    pc.edit_settings(|s| s.clipboard = false);
    let mut client = home_client(&ep, &home.display);
    let deadline = Instant::now() + Duration::from_secs(60);
    while svr.stderr().matches("desktop session started").count() < 2 {
        assert!(Instant::now() < deadline, "no second desktop session: {}\n{}", svr.stderr(), client.report());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = svr.stderr_plain();
    let started: Vec<&str> = log.lines().filter(|l| l.contains("desktop session started")).collect();
    assert!(started[0].contains("clipboard=true") && started[1].contains("clipboard=false"), "{started:?}");
    let _home_app = copy_on(&home.display, "not for the office");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(clipboard_of(&office.display).as_deref(), Some("copied at the office 815"));
    drop(client);
    rt.block_on(gw.shutdown());
}

/// The real thinclient connecting to `desk-home` (password on stdin), which
/// starts the real viewer on `display`; waited for until it listens.
fn home_client(ep: &Path, display: &str) -> Proc {
    let mut cmd = Command::new(bin("thinclient"));
    cmd.arg("--entry-point")
        .arg(ep)
        .args(["connect", "desk-home", "--password-stdin", "--listen", "127.0.0.1:0"])
        .env("DISPLAY", display)
        .env_remove("THIN_VIEWER")
        .env_remove("THIN_VIEWER_BUILTIN");
    let mut client = Proc::spawn(cmd, Some("office-password\n"));
    client.wait_line("listening on", Duration::from_secs(30));
    client
}

/// An app on `display` that copied `text` (xclip, serving it until another
/// app copies).
fn copy_on(display: &str, text: &str) -> Kill {
    use std::io::Write;
    let mut c = Command::new("xclip")
        .args(["-selection", "clipboard", "-i", "-quiet"])
        .env("DISPLAY", display)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xclip");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    Kill(c)
}

/// The text an app pasting on `display` gets (`None`: no text).
fn clipboard_of(display: &str) -> Option<String> {
    let out = Command::new("xclip")
        .args(["-selection", "clipboard", "-o"])
        .env("DISPLAY", display)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits up to 30 s for `display`'s clipboard to hold `text`; the last
/// text seen otherwise.
fn wait_clipboard(display: &str, text: &str) -> Result<(), Option<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = clipboard_of(display);
        if now.as_deref() == Some(text) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(now);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The keycodes held down on `display` now (QueryKeymap).
fn keys_down(display: &str) -> Vec<u8> {
    use x11rb::protocol::xproto::ConnectionExt as _;
    let (c, _) = x11rb::connect(Some(display)).expect("the office display");
    let map = c.query_keymap().unwrap().reply().unwrap().keys;
    (0..=255u8).filter(|k| map[usize::from(*k / 8)] & (1 << (k % 8)) != 0).collect()
}

/// The size of the X window `id` on `display` (`xdotool getwindowgeometry`).
fn geometry(display: &str, id: &str) -> (u32, u32) {
    let out = Command::new("xdotool").args(["getwindowgeometry", id]).env("DISPLAY", display).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let g = text.lines().find_map(|l| l.trim().strip_prefix("Geometry: ")).unwrap_or_default();
    let (w, h) = g.split_once('x').unwrap_or_default();
    (w.trim().parse().unwrap_or(0), h.trim().parse().unwrap_or(0))
}

/// Changes the size of `display`'s screen through RandR (as a user changing
/// the resolution, or a laptop docking, does). Xvfb only shrinks (its
/// framebuffer stays), and only once no CRTC shows a mode bigger than the new
/// size, so its CRTC is turned off first, as `xrandr --fb` would need too.
/// Makes `display` two monitors side by side (RandR 1.5 monitors), the
/// first `split` pixels wide; `None` takes them away again.
fn two_monitors(display: &str, split: Option<u16>) {
    use x11rb::connection::Connection;
    use x11rb::protocol::randr::{self, ConnectionExt as _};
    use x11rb::protocol::xproto::ConnectionExt as _;
    let (c, screen) = x11rb::connect(Some(display)).expect("the office display");
    let s = &c.setup().roots[screen];
    let (root, width, height) = (s.root, s.width_in_pixels, s.height_in_pixels);
    c.randr_query_version(1, 5).unwrap().reply().unwrap();
    let names = ["THIN-LEFT", "THIN-RIGHT"].map(|n| c.intern_atom(false, n.as_bytes()).unwrap().reply().unwrap().atom);
    let Some(split) = split else {
        for name in names {
            c.randr_delete_monitor(root, name).unwrap().check().unwrap();
        }
        return;
    };
    let mm = |px: u16| u32::from(px) * 254 / 960;
    for (i, (x, w)) in [(0, split), (split, width - split)].into_iter().enumerate() {
        let m = randr::MonitorInfo {
            name: names[i],
            primary: i == 0,
            automatic: false,
            x: x as i16,
            y: 0,
            width: w,
            height,
            width_in_millimeters: mm(w),
            height_in_millimeters: mm(height),
            outputs: Vec::new(),
        };
        c.randr_set_monitor(root, m).unwrap().check().unwrap();
    }
    let monitors = c.randr_get_monitors(root, false).unwrap().reply().unwrap().monitors;
    let ours = monitors.iter().filter(|m| names.contains(&m.name)).count();
    assert_eq!(ours, 2, "Xvfb did not take the two monitors: {monitors:?}");
}

fn set_screen_size(display: &str, width: u16, height: u16) {
    use x11rb::connection::{Connection, RequestConnection};
    use x11rb::protocol::randr::{self, ConnectionExt as _};
    let (c, screen) = x11rb::connect(Some(display)).expect("the office display");
    assert!(c.extension_information(randr::X11_EXTENSION_NAME).unwrap().is_some(), "Xvfb has no RandR");
    let root = c.setup().roots[screen].root;
    c.randr_query_version(1, 2).unwrap().reply().unwrap();
    let res = c.randr_get_screen_resources(root).unwrap().reply().unwrap();
    for crtc in &res.crtcs {
        let info = c.randr_get_crtc_info(*crtc, res.config_timestamp).unwrap().reply().unwrap();
        if info.mode != 0 {
            let off = c
                .randr_set_crtc_config(
                    *crtc,
                    x11rb::CURRENT_TIME,
                    res.config_timestamp,
                    0,
                    0,
                    0,
                    randr::Rotation::ROTATE0,
                    &[],
                )
                .unwrap()
                .reply()
                .unwrap();
            assert_eq!(off.status, randr::SetConfig::SUCCESS, "Xvfb refused to turn its CRTC off");
        }
    }
    // Millimetres at 96 dpi.
    let mm = |px: u16| u32::from(px) * 254 / 960;
    c.randr_set_screen_size(root, width, height, mm(width), mm(height)).unwrap().check().unwrap();
}

#[test]
fn a_viewer_without_the_one_time_password_gets_no_desktop_and_cannot_knock_the_employee_off() {
    if tools_missing() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (office, _term) = office_display("SECRET PLANS", &work.path().join("typed.txt"));
    let home = Xvfb::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gw = rt.block_on(thin_e2e::GateDir::new("").start());
    let ep = gw.entry_point();
    let pc = rt.block_on(gw.register("desk-locked", "office-password"));
    pc.edit_settings(|s| s.desktop = thin_tunnel::desktop::DesktopMode::Builtin);
    let mut cmd = thinsvr(&ep, pc.dir.path(), &["run", "--target", "127.0.0.1:9"]);
    cmd.env("DISPLAY", &office.display);
    let mut svr = Proc::spawn(cmd, None);
    rt.block_on(gw.wait_sessions("desk-locked online", 1, Duration::from_secs(30)));

    // The employee's tunnel is up; with --no-launch thinclient prints what
    // the viewer needs, and the employee starts it (password on stdin).
    let mut client = Proc::spawn(thin_e2e::procs::thinclient_connect(&ep, "desk-locked"), Some("office-password\n"));
    let line = client.wait_line("listening on", Duration::from_secs(30));
    let addr = line.rsplit(' ').next().unwrap().trim().to_string();
    let creds = client.wait_line("the office PC serves its built-in desktop", Duration::from_secs(30));
    let words: Vec<&str> = creds.split(' ').map(|w| w.trim_end_matches(',')).collect();
    let password = words[words.iter().position(|w| *w == "password").unwrap() + 1].to_string();
    let sha: Vec<String> =
        words.last().unwrap().trim().as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let pin = format!("/cert:fingerprint:sha256:{}", sha.join(":"));
    let viewer = |args: &[&str], stdin: Option<&str>| {
        let mut c = Command::new("xfreerdp");
        c.arg(format!("/v:{addr}"))
            .args(args)
            .arg(&pin)
            .env("DISPLAY", &home.display)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        Kill(child)
    };
    let mut employee = viewer(&["/u:thin", "/from-stdin:force"], Some(&format!("{password}\n")));
    window(&home.display, "FreeRDP", Duration::from_secs(60));
    svr.wait_stderr("desktop session started", Duration::from_secs(20));

    // Another user of the home PC points a viewer at the port with a guess.
    let started = Instant::now();
    let mut guess = viewer(&["/u:thin", "/p:0123456789abcdef0123456789abcdef"], None);
    let status = loop {
        if let Some(st) = guess.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a viewer with a wrong password was not turned away in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success(), "xfreerdp with a wrong password exited {status}");
    // The office PC turned it away before any pixel left, and the employee's viewer goes on.
    svr.wait_stderr("did not present this tunnel's one-time credentials", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert!(employee.0.try_wait().unwrap().is_none(), "the guess knocked the employee's viewer off");
    assert!(!svr.stderr().contains("took over"), "{}", svr.stderr());

    // The employee's own second viewer takes over, and the first one ends:
    // the desktop is never locked by a viewer that went away.
    let _second = viewer(&["/u:thin", "/from-stdin:force"], Some(&format!("{password}\n")));
    svr.wait_stderr("another viewer took over the desktop", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while employee.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the first viewer still runs after the second took over");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(client);
    rt.block_on(gw.shutdown());
}
