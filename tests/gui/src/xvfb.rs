//! Windows of the Linux build on a private X server (Xvfb, software OpenGL),
//! for screenshots and the start-up benchmark. A window runs in a child
//! process: the calling program again, with `THIN_GUI_CHILD=<which>` (see
//! [`child_main`] and `thin_ui::gui::stand_in::run_demo_window`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// In a program that opens windows as children of itself: when this process
/// is such a child, runs its window and exits.
pub fn child_main() {
    if let Ok(which) = std::env::var("THIN_GUI_CHILD") {
        if let Err(e) = thin_ui::gui::stand_in::run_demo_window(&which) {
            eprintln!("gui child {which}: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
}

/// True when `t` (a name on PATH, or a path) exists.
pub fn tool_exists(t: &str) -> bool {
    if t.contains('/') {
        return Path::new(t).exists();
    }
    thin_e2e::procs::on_path(t)
}

/// A private X server; stopped on drop.
pub struct Xvfb {
    child: Child,
    /// `:N`.
    pub display: String,
}

impl Xvfb {
    /// Starts one on a free display and waits until it accepts clients.
    pub fn start() -> Self {
        Self::start_sized("1024x768")
    }

    /// [`Self::start`] with a screen of `size` (`"1920x1080"`), 24-bit.
    pub fn start_sized(size: &str) -> Self {
        // -noreset: without it the server resets when its last client goes (a
        // viewer killed at the end of a session), and a client connecting
        // during the reset gets "Can't open display" (4 in 20 tries here).
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", &format!("{size}x24"), "-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        // Xvfb writes its display number once it accepts clients.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let n: u32 = line.trim().parse().unwrap_or_else(|_| panic!("Xvfb display number: {line:?}"));
        Self { child, display: format!(":{n}") }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A window in a child process; killed on drop.
pub struct Window {
    child: Child,
    display: String,
    /// X window id.
    pub id: String,
    /// From spawning the process to its first frame.
    pub ready_after: Duration,
    /// The painter that shows it (`opengl`, `software`), as it reported.
    pub renderer: Option<String>,
}

impl Window {
    /// Opens demo window `which` in language `lang` and waits for its first frame.
    pub fn open(x: &Xvfb, which: &str, lang: &str) -> Self {
        Self::open_with(x, which, lang, &[])
    }

    /// [`Window::open`] with extra environment (`THIN_RENDERER`, Mesa's settings).
    pub fn open_with(x: &Xvfb, which: &str, lang: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env("THIN_GUI_CHILD", which).envs(env.iter().copied());
        Self::open_command(x, cmd, which, lang)
    }

    /// Runs `cmd` (a real app's window, e.g. `thinclient window`), named
    /// `which` in messages, in language `lang`, and waits for its first frame.
    pub fn open_command(x: &Xvfb, mut cmd: Command, which: &str, lang: &str) -> Self {
        let started = Instant::now();
        // The painter is chosen automatically unless the caller names one.
        if !cmd.get_envs().any(|(k, _)| k == "THIN_RENDERER") {
            cmd.env_remove("THIN_RENDERER");
        }
        let mut child = cmd
            .env("THIN_LANG", lang)
            .env("THIN_GUI_REPORT_READY", "1")
            .env("DISPLAY", &x.display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut log: Vec<String> = Vec::new();
        let ready_after = loop {
            match rx.recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed())) {
                Ok(l) if l.contains("thin-gui: ready") => break started.elapsed(),
                Ok(l) => log.push(l),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{which} ({lang}) showed no frame within 60 s; its output:\n{}", log.join("\n"));
                }
            }
        };
        let out = Command::new("xdotool")
            .args(["search", "--sync", "--pid", &child.id().to_string()])
            .env("DISPLAY", &x.display)
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        assert!(!id.is_empty(), "no X window of {which}");
        let renderer = log.iter().find_map(|l| l.split("thin-gui: renderer ").nth(1)).map(|r| r.trim().to_string());
        Self { child, display: x.display.clone(), id, ready_after, renderer }
    }

    /// Runs `xdotool ARGS` on this window's display (a few tries: a window that
    /// just drew its first frame may not be viewable yet).
    pub fn xdotool(&self, args: &[&str]) {
        let mut last = String::new();
        for _ in 0..20 {
            let out = Command::new("xdotool").args(args).env("DISPLAY", &self.display).output().unwrap();
            if out.status.success() {
                return;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(150));
        }
        panic!("xdotool {args:?} failed: {last}");
    }

    /// Gives the window the keyboard focus.
    pub fn focus(&self) {
        self.xdotool(&["windowfocus", &self.id]);
    }

    /// Saves a screenshot of the window (ImageMagick's `import`).
    pub fn shoot(&self, png: &Path) {
        let st = Command::new("/usr/bin/import")
            .args(["-window", &self.id])
            .arg(png)
            .env("DISPLAY", &self.display)
            .status()
            .unwrap();
        assert!(st.success(), "import {}", png.display());
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
