//! A private X server (Xvfb) for the windows of the Windows build under Wine,
//! screenshots of its whole screen (ImageMagick's `import`), and the search
//! for the brand's artwork in them (as `tests/gui/tests/gui_screens.rs` does for
//! the Linux build). Needs Xvfb and ImageMagick (`scripts/setup.sh`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A private X server (1024x768, 24 bits); stopped on drop.
pub struct Xvfb {
    child: Child,
    /// `:N`.
    pub display: String,
}

impl Xvfb {
    /// Starts one on a free display and waits until it accepts clients.
    pub fn start() -> Self {
        assert!(thin_e2e::procs::on_path("Xvfb"), "Xvfb is not on PATH; the screenshots need it: apt-get install xvfb");
        assert!(
            Path::new("/usr/bin/import").exists() && Path::new("/usr/bin/convert").exists(),
            "ImageMagick's import and convert are missing: apt-get install imagemagick"
        );
        // -noreset: without it the server resets when its last client goes (a
        // viewer killed at the end of a session), and a client connecting
        // during the reset gets "Can't open display" (4 in 20 tries here).
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1024x768x24", "-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start Xvfb");
        // Xvfb writes its display number once it accepts clients (EOF if it fails).
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let Ok(n) = line.trim().parse::<u32>() else {
            let _ = child.kill();
            let status = child.wait();
            panic!("Xvfb gave no display number ({line:?}, {status:?})");
        };
        Self { child, display: format!(":{n}") }
    }

    /// Process id of the X server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Saves a screenshot of the whole screen as PNG.
    pub fn shoot(&self, png: &Path) {
        let o = Command::new("/usr/bin/import")
            .args(["-window", "root", "-display", &self.display])
            .arg(png)
            .output()
            .expect("cannot run import");
        assert!(o.status.success(), "import {}: {}", png.display(), String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An 8-bit RGB picture.
pub struct Rgb {
    pub w: usize,
    pub h: usize,
    /// Rows top to bottom, 3 bytes a pixel.
    pub px: Vec<u8>,
}

impl Rgb {
    fn at(&self, x: usize, y: usize) -> &[u8] {
        &self.px[(y * self.w + x) * 3..][..3]
    }
}

/// A PNG (a screenshot), through ImageMagick's `convert FILE ppm:-`.
pub fn load_png(png: &Path) -> Rgb {
    let out = Command::new("/usr/bin/convert").arg(png).arg("ppm:-").output().expect("cannot run convert");
    assert!(out.status.success(), "convert {}: {}", png.display(), String::from_utf8_lossy(&out.stderr));
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
    assert_eq!(fields[0], "P6", "{}", png.display());
    assert_eq!(fields[3], "255", "{}: 8 bits a channel", png.display());
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let mut px = Vec::new();
    data.take((w * h * 3) as u64).read_to_end(&mut px).unwrap();
    assert_eq!(px.len(), w * h * 3, "{}", png.display());
    Rgb { w, h, px }
}

/// A brand BMP (24 or 32 bits, as the builder checks), decoded as the apps
/// decode it (`image`, alpha dropped: the artwork is opaque).
pub fn load_bmp(bmp: &Path) -> Rgb {
    let img = image::open(bmp).unwrap_or_else(|e| panic!("{}: {e}", bmp.display())).to_rgb8();
    Rgb { w: img.width() as usize, h: img.height() as usize, px: img.into_raw() }
}

/// Where `art` appears in `img`, each channel within `tolerance`, if it does.
pub fn find(img: &Rgb, art: &Rgb, tolerance: u8) -> Option<(usize, usize)> {
    let close = |x: usize, y: usize, ax: usize, ay: usize| {
        let (p, a) = (img.at(x, y), art.at(ax, ay));
        (0..3).all(|c| p[c].abs_diff(a[c]) <= tolerance)
    };
    if img.w < art.w || img.h < art.h {
        return None;
    }
    for y in 0..=img.h - art.h {
        for x in 0..=img.w - art.w {
            if (0..art.w).all(|ax| close(x + ax, y, ax, 0))
                && (1..art.h).all(|ay| (0..art.w).all(|ax| close(x + ax, y + ay, ax, ay)))
            {
                return Some((x, y));
            }
        }
    }
    None
}

/// For failure messages: the smallest per-channel tolerance (of 1, 2, 4,
/// ..., 64) at which `art` would be found in `img`.
pub fn tolerance_needed(img: &Rgb, art: &Rgb) -> Option<u8> {
    [1, 2, 4, 8, 16, 32, 64].into_iter().find(|&t| find(img, art, t).is_some())
}

/// Where screenshots go: `THIN_SCREENSHOT_DIR`, else `<target>/screenshots`
/// (beside the Linux build's, see `tests/tests/gui_screens.rs`).
pub fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("THIN_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target folder").join("screenshots")
}
