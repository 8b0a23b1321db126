//! Reading a screenshot's text with Tesseract, to check that a string is
//! visibly in a window (not only in its accessibility tree); the windows'
//! screenshots and the builder's Wine tests use it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The text Tesseract reads in `png` (English). The picture is cut to the
/// window first (a window on a large black screen makes Tesseract read
/// nothing at all), then enlarged three times and made grey: the windows'
/// text, about 14 px high, is below the size Tesseract reads reliably.
pub fn read(png: &Path) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let big: PathBuf =
        std::env::temp_dir().join(format!("ocr-{}-{}.png", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let o = Command::new("convert")
        .arg(png)
        .args(["-fuzz", "5%", "-trim", "+repage", "-resize", "300%", "-colorspace", "Gray"])
        .arg(&big)
        .output()
        .expect("run convert (ImageMagick)");
    assert!(o.status.success(), "convert {}: {}", png.display(), String::from_utf8_lossy(&o.stderr));
    let o = Command::new("tesseract").arg(&big).args(["stdout", "-l", "eng"]).output().expect("run tesseract");
    let _ = std::fs::remove_file(&big);
    assert!(o.status.success(), "tesseract {}: {}", png.display(), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Screenshots taken with `shoot` into `png`, read until one shows `phrase`
/// (at most `max_edits` edits, as [`contains_approx`]), every half second for
/// up to `within`; `Err` with the last text read when none did.
pub fn wait_for(
    png: &Path,
    phrase: &str,
    max_edits: usize,
    within: std::time::Duration,
    mut shoot: impl FnMut(&Path),
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        shoot(png);
        let text = read(png);
        if contains_approx(&text, phrase, max_edits) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(text);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The letters and digits of `s`, in lower case.
pub fn normalize(s: &str) -> Vec<char> {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether `text` holds `phrase` with at most `max_edits` single-letter
/// edits (what OCR misreads: `I` as `l`, `0` as `O`), comparing only letters
/// and digits and ignoring case (approximate substring search, Sellers 1980).
pub fn contains_approx(text: &str, phrase: &str, max_edits: usize) -> bool {
    let (t, p) = (normalize(text), normalize(phrase));
    if p.is_empty() {
        return true;
    }
    // col[i]: fewest edits turning phrase[..i] into a suffix of the text read so far.
    let mut col: Vec<usize> = (0..=p.len()).collect();
    for &c in &t {
        let mut diag = col[0]; // col[0] stays 0: the match may start anywhere
        for i in 1..=p.len() {
            let next = (diag + usize::from(p[i - 1] != c)).min(col[i] + 1).min(col[i - 1] + 1);
            diag = col[i];
            col[i] = next;
        }
        if col[p.len()] <= max_edits {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::contains_approx;

    #[test]
    fn approximate_phrases_are_found_and_others_are_not() {
        let read = "Welcome to Thin Telework.\nYour office PC is one computer lD away.\nComputer ID";
        assert!(!contains_approx(read, "Your office PC is one computer ID away", 0));
        assert!(contains_approx(read, "Your office PC is one computer ID away", 1));
        assert!(contains_approx(read, "welcome to thin telework", 0));
        assert!(!contains_approx(read, "E2E patched welcome", 3));
        assert!(!contains_approx("", "x", 0));
        assert!(contains_approx("abc", "", 0));
    }
}
