//! Screenshots of both windows of the Linux build under Xvfb (software
//! OpenGL), in English and Japanese, kept under `<target>/screenshots/`
//! (`THIN_SCREENSHOT_DIR` overrides) for CI to keep as artifacts. Each window
//! runs in a child process (this program again, with `THIN_GUI_CHILD`), with
//! stand-in backends; one is also driven with `xdotool` as a user would (type
//! an ID, Enter, a wrong password, Enter). Checks: every window reports its
//! first frame, and each screenshot shows the brand's header and icon BMPs
//! pixel for pixel, and ThinClient's English window shows the brand's patched
//! welcome text (read back with Tesseract; the Japanese one must not, since
//! the phrase is English). Prints the time from start to the first frame.
//!
//! `gui_wake_from_the_window`: the real `thinclient` window against a real
//! gateway wakes a sleeping office PC through the real `thinsvr` in its wake
//! group, typed in with `xdotool`; the magic packet reaches a UDP listener on
//! loopback (`THIN_TEST_WOL_BROADCAST`) and the window says it was sent.
//!
//! Needs Xvfb, ImageMagick, xdotool and Tesseract (`scripts/setup.sh`);
//! skipped when they are missing, except under CI. The wake test also needs
//! the binaries (`cargo build --workspace --bins`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use thin_e2e::ocr;
use thin_e2e_gui::xvfb::{self, Window, Xvfb};
use thin_ui::strings::Key;

const TESTS: [&str; 2] = ["gui_screenshots", "gui_wake_from_the_window"];

fn main() {
    xvfb::child_main();
    // `cargo test NAME`: run only the tests the filter names.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<&str> =
        TESTS.into_iter().filter(|t| filters.is_empty() || filters.iter().any(|f| t.contains(f.as_str()))).collect();
    if chosen.is_empty() {
        return;
    }
    let tools = ["Xvfb", "xdotool", "/usr/bin/import", "/usr/bin/convert", "tesseract"];
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !xvfb::tool_exists(t)).collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("CI").is_none(), "gui_screens: {missing:?} missing; run scripts/setup.sh");
        println!("gui_screens: skipped ({missing:?} not installed; scripts/setup.sh installs them)");
        println!("gui_screens: 0 passed, 0 failed, 1 skipped");
        return;
    }
    let out = screenshot_dir();
    std::fs::create_dir_all(&out).unwrap();
    let x = Xvfb::start();
    let mut passed = 0;
    if chosen.contains(&"gui_screenshots") {
        passed += gui_screenshots(&x, &out);
    }
    if chosen.contains(&"gui_wake_from_the_window") {
        gui_wake_from_the_window(&x, &out);
        passed += 1;
    }
    println!("gui_screens: {passed} passed, 0 failed");
}

/// Both windows in both languages, on both painters, and typed into.
fn gui_screenshots(x: &Xvfb, out: &Path) -> usize {
    let out = out.to_path_buf();
    let brand = thin_ui::gui::brand();
    let header = thin_ui::gui::artwork::decode_bmp(brand.header_bmp).unwrap();
    let icon = thin_ui::gui::artwork::decode_bmp(brand.icon_bmp).unwrap();
    // The brand's patched welcome text, as the English window must show it.
    assert!(
        thin_tunnel::brand::get().patch_en.contains("APP_WELCOME"),
        "the default brand's English patch names APP_WELCOME"
    );
    let welcome = thin_ui::strings::text_in(thin_ui::strings::Lang::En, Key::APP_WELCOME).into_owned();
    let mut passed = 0;
    for (which, lang) in [("client", "en"), ("client", "ja"), ("server", "en"), ("server", "ja"), ("server-new", "ja")]
    {
        let w = Window::open(x, which, lang);
        assert_eq!(w.renderer.as_deref(), Some("opengl"), "{which} ({lang}): OpenGL paints where it can");
        // A few more frames after the first one.
        std::thread::sleep(Duration::from_millis(500));
        let png = out.join(format!("{which}-{lang}.png"));
        w.shoot(&png);
        check_artwork(&png, &header, &icon);
        if which == "client" {
            check_text(&png, &welcome, lang == "en");
        }
        println!("gui_screens: {} ({} ms to the first frame, debug build)", png.display(), w.ready_after.as_millis());
        passed += 1;
    }
    // Painted on the CPU when asked for (THIN_RENDERER=software). (Mesa's
    // `MESA_GL_VERSION_OVERRIDE=1.1` does not stop GLX here, so the automatic
    // choice is tested under Wine, where it stops WGL: builder's outputs.)
    let w = Window::open_with(x, "client", "en", &[("THIN_RENDERER", "software")]);
    assert_eq!(w.renderer.as_deref(), Some("software"), "the window painted on the CPU");
    std::thread::sleep(Duration::from_millis(500));
    let png = out.join("client-en-software.png");
    w.shoot(&png);
    check_artwork(&png, &header, &icon);
    check_text(&png, &welcome, true);
    println!("gui_screens: {} ({} ms to the first frame, debug build)", png.display(), w.ready_after.as_millis());
    passed += 1;
    drop(w);
    // Driven by keyboard, as a user: ID, Enter, wrong password, Enter.
    let w = Window::open(x, "client-empty", "en");
    w.focus();
    std::thread::sleep(Duration::from_millis(300));
    w.xdotool(&["type", "--delay", "30", "desk-01"]);
    w.xdotool(&["key", "Return"]);
    std::thread::sleep(Duration::from_millis(500));
    w.xdotool(&["type", "--delay", "30", "not-the-password"]);
    w.xdotool(&["key", "Return"]);
    std::thread::sleep(Duration::from_millis(1500));
    let png = out.join("client-wrong-password-en.png");
    w.shoot(&png);
    check_artwork(&png, &header, &icon);
    let idle = load_rgb(&out.join("client-en.png"));
    let typed = load_rgb(&png);
    assert!(idle.px != typed.px, "typing changed the window");
    println!("gui_screens: {}", png.display());
    passed += 1;
    drop(w);
    // The same on the CPU painter: keys reach the window and it repaints.
    let w = Window::open_with(x, "client-empty", "en", &[("THIN_RENDERER", "software")]);
    let before = out.join("client-empty-en-software.png");
    w.shoot(&before);
    w.focus();
    std::thread::sleep(Duration::from_millis(300));
    w.xdotool(&["type", "--delay", "30", "desk-01"]);
    std::thread::sleep(Duration::from_millis(800));
    let png = out.join("client-typed-en-software.png");
    w.shoot(&png);
    assert!(load_rgb(&before).px != load_rgb(&png).px, "typing changed the window painted on the CPU");
    let text = ocr::read(&png);
    assert!(
        ocr::contains_approx(&text, "desk-01", 1),
        "{}: the typed ID is not shown; Tesseract read:\n{text}",
        png.display()
    );
    println!("gui_screens: {}", png.display());
    passed += 1;
    passed
}

/// The real ThinClient window wakes `wake-b` through `wake-a` (the real
/// thinsvr, same wake group), typed in as a user would.
fn gui_wake_from_the_window(x: &Xvfb, out: &Path) {
    use thin_e2e::procs::{bin, Proc};
    const MAC: &str = "02-00-5E-10-00-02";
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = thin_e2e::GateDir::new("");
    dir.write_policy("WOL_GROUP floor1 wake-a, wake-b\n");
    let gw = rt.block_on(dir.start());
    let ep = gw.entry_point();
    // The target serves once (reporting its MAC address), then sleeps.
    let target = rt.block_on(async { gw.office_pc("wake-b", "pw").settings(|s| s.wol_macs = vec![MAC.into()]).await });
    target.stop.cancel();
    rt.block_on(gw.wait_sessions("the target asleep", 0, Duration::from_secs(10)));
    // The PC that sends the packet: the real thinsvr, broadcasting to loopback.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let via = rt.block_on(gw.register("wake-a", "via-password"));
    let mut cmd = thin_e2e::procs::thinsvr(&ep, via.dir.path(), &["run", "--target", "127.0.0.1:9"]);
    cmd.env(thin_tunnel::wake::TEST_BROADCAST_ENV, udp.local_addr().unwrap().to_string());
    let _via = Proc::spawn(cmd, None);
    rt.block_on(gw.wait_sessions("wake-a online", 1, Duration::from_secs(20)));

    // The real window, with a home folder of its own (no recent IDs).
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("thinclient"));
    cmd.arg("--entry-point").arg(&ep).arg("window").env("HOME", home.path()).env("XDG_CONFIG_HOME", home.path());
    let w = Window::open_command(x, cmd, "thinclient window", "en");
    w.focus();
    std::thread::sleep(Duration::from_millis(300));
    // The ID field has the focus: Tab to Connect, Tab to the wake section, open it.
    w.xdotool(&["key", "Tab", "Tab", "Return"]);
    std::thread::sleep(Duration::from_millis(500));
    w.xdotool(&["key", "Tab"]);
    w.xdotool(&["type", "--delay", "30", "wake-b"]);
    w.xdotool(&["key", "Tab"]);
    w.xdotool(&["type", "--delay", "30", "wake-a"]);
    w.xdotool(&["key", "Return"]);
    // Typed only once the window asks for wake-a's password (a loaded
    // machine may paint the step late; keys before it would go elsewhere).
    // The step's heading is the marker, "Computer ID: wake-a": Tesseract
    // misses the small label beside the empty field.
    let asked = out.join("client-wake-password-en.png");
    let label = thin_ui::strings::text_in(thin_ui::strings::Lang::En, Key::THINCLIENT_PCID_LABEL);
    if let Err(text) = ocr::wait_for(&asked, &format!("{label}: wake-a"), 1, Duration::from_secs(30), |p| w.shoot(p)) {
        panic!("{}: no password step for wake-a; Tesseract read:\n{text}", asked.display());
    }
    std::thread::sleep(Duration::from_millis(300));
    w.xdotool(&["type", "--delay", "30", "via-password"]);
    w.xdotool(&["key", "Return"]);

    // The packet: 102 bytes, 6 x FF, then the MAC 16 times. Without it, the
    // failure shows what the window said.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 2048];
    let n = loop {
        if let Ok((n, _)) = udp.recv_from(&mut buf) {
            break n;
        }
        if Instant::now() >= deadline {
            let waiting = out.join("client-wake-waiting-en.png");
            w.shoot(&waiting);
            panic!(
                "no magic packet within 60 s; {} shows, as Tesseract read it:\n{}",
                waiting.display(),
                ocr::read(&waiting)
            );
        }
    };
    assert_eq!(n, 102);
    assert_eq!(&buf[..6], &[0xff; 6]);
    let mac = thin_protocol::policy::parse_mac(MAC).unwrap();
    assert!(buf[6..n].chunks(6).all(|c| c == mac), "{:02x?}", &buf[..n]);
    // The window says so.
    let said = thin_ui::strings::fmt(Key::WAKE_SENT, &[&"wake-a", &"wake-b", &1]);
    let png = out.join("client-wake-sent-en.png");
    let edits = ocr::normalize(&said).len() / 10;
    if let Err(text) = ocr::wait_for(&png, &said, edits, Duration::from_secs(30), |p| w.shoot(p)) {
        panic!("{}: {said:?} is not shown; Tesseract read:\n{text}", png.display());
    }
    println!("gui_screens: {}", png.display());
    drop(w);
    rt.block_on(gw.shutdown());
}

fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("THIN_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    // <target>/debug/deps/gui_screens-HASH
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("target folder").join("screenshots")
}

struct Rgb {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

fn load_rgb(png: &Path) -> Rgb {
    let out = Command::new("/usr/bin/convert").arg(png).arg("ppm:-").output().unwrap();
    assert!(out.status.success(), "convert {}", png.display());
    let mut data = &out.stdout[..];
    let mut fields = Vec::new();
    // P6 <w> <h> <max>, separated by whitespace, then one whitespace byte.
    while fields.len() < 4 {
        while data[0].is_ascii_whitespace() {
            data = &data[1..];
        }
        let end = data.iter().position(|b| b.is_ascii_whitespace()).unwrap();
        fields.push(String::from_utf8_lossy(&data[..end]).to_string());
        data = &data[end..];
    }
    data = &data[1..];
    assert_eq!(fields[0], "P6");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let mut px = Vec::new();
    data.take((w * h * 3) as u64).read_to_end(&mut px).unwrap();
    assert_eq!(px.len(), w * h * 3);
    Rgb { w, h, px }
}

/// Where `art` appears in `img` pixel for pixel (a small tolerance for the
/// OpenGL path), if it does.
fn find(img: &Rgb, art: &thin_ui::gui::egui::ColorImage) -> Option<(usize, usize)> {
    let [aw, ah] = art.size;
    let close = |x: usize, y: usize, ax: usize, ay: usize| {
        let p = &img.px[(y * img.w + x) * 3..][..3];
        let a = art.pixels[ay * aw + ax];
        p[0].abs_diff(a.r()) <= 6 && p[1].abs_diff(a.g()) <= 6 && p[2].abs_diff(a.b()) <= 6
    };
    if img.w < aw || img.h < ah {
        return None;
    }
    for y in 0..=img.h - ah {
        for x in 0..=img.w - aw {
            if (0..aw).all(|ax| close(x + ax, y, ax, 0))
                && (1..ah).all(|ay| (0..aw).all(|ax| close(x + ax, y + ay, ax, ay)))
            {
                return Some((x, y));
            }
        }
    }
    None
}

/// Reads `png` with Tesseract: `phrase` must be there (with an OCR misread
/// per ten letters) when `shown`, and must not be there otherwise.
fn check_text(png: &Path, phrase: &str, shown: bool) {
    let text = ocr::read(png);
    let edits = ocr::normalize(phrase).len() / 10;
    assert_eq!(
        ocr::contains_approx(&text, phrase, edits),
        shown,
        "{}: {phrase:?} {} in the window; Tesseract read:\n{text}",
        png.display(),
        if shown { "is not" } else { "unexpectedly is" }
    );
}

fn check_artwork(png: &Path, header: &thin_ui::gui::egui::ColorImage, icon: &thin_ui::gui::egui::ColorImage) {
    let img = load_rgb(png);
    assert!(img.w >= 300 && img.h >= 300, "{}: {}x{}", png.display(), img.w, img.h);
    assert!(find(&img, header).is_some(), "{}: the brand's header BMP is not in the window", png.display());
    assert!(find(&img, icon).is_some(), "{}: the brand's icon BMP is not in the window", png.display());
}
