//! The build number: every `builder build` of a brand gets the next one,
//! kept in `build-number.toml` in the brand folder (the default brand's in
//! `.brand-cache/default/`), which a brand repository commits.
//!
//! One counter per brand, never reset when the version changes (the original's
//! `BuildAll` does the same): so the number alone orders every build of a
//! brand, and the MSI's ProductVersion can be `major.minor.build` (see
//! [`msi_version`]). `--build-number N` takes N instead (CI passes its run
//! number, since a fresh checkout's file does not know the last build; a
//! rebuild of an old build passes its number to get the same bytes); the file
//! then keeps the larger of the two. Reading and writing the file happens
//! under an exclusive lock on the brand folder, so two builds of one brand at
//! once get two numbers; the file is replaced atomically.

use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// The file, in the brand folder.
pub const FILE: &str = "build-number.toml";

/// The largest build number: the third field of an MSI ProductVersion.
pub const MAX: u32 = 65535;

/// The number a build got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// This build's number.
    pub number: u32,
    /// The last number the file held before (0 when there was none).
    pub last: u32,
}

/// The MSI ProductVersion of `version` (major, minor, patch) at build `build`:
/// `major.minor.build`. Windows Installer compares only the first three fields
/// when it looks for an older product to replace (the fourth is ignored), so
/// `1.0.0.7` after `1.0.0.6` would install a second product beside the first;
/// the build number must sit in the third field, and since it grows with every
/// build whatever the version, it orders patch releases too.
pub fn msi_version(version: [u16; 3], build: u32) -> String {
    format!("{}.{}.{build}", version[0], version[1])
}

/// The Windows file version `major.minor.patch.build` (version resources, NSIS).
pub fn file_version(version: [u16; 3], build: u32) -> String {
    format!("{}.{}.{}.{build}", version[0], version[1], version[2])
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "{}: {what}; fix: write `last = N` (the last build number given, 0 to {MAX}), or delete the file to start again at 1 \
         (installed MSIs of higher builds are then not replaced)",
        path.display()
    ))
}

/// The last build number recorded in `path` (0 when the file does not exist).
pub fn read(path: &Path) -> Result<u32> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).at(path),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct State {
        last: i64,
    }
    let s: State = toml::from_str(&text).map_err(|e| bad(path, format!("[last] {}", e.message())))?;
    u32::try_from(s.last)
        .ok()
        .filter(|n| *n <= MAX)
        .ok_or_else(|| bad(path, format!("[last] {} is out of range", s.last)))
}

fn render(last: u32) -> String {
    format!(
        "# The last build number `builder build` gave this brand; the next build gets the next one.\n\
         # Commit it with the brand. CI passes `--build-number` (its run number) instead.\n\
         last = {last}\n"
    )
}

/// Takes the next build number of the brand whose state lives in `dir`, or
/// `requested`, and records it. Holds an exclusive lock on `dir` meanwhile.
pub fn reserve(dir: &Path, requested: Option<u32>) -> Result<Reserved> {
    let path: PathBuf = dir.join(FILE);
    std::fs::create_dir_all(dir).at(dir)?;
    let lock = std::fs::File::open(dir).at(dir)?;
    lock.lock().at(dir)?;
    let last = read(&path)?;
    let number = match requested {
        Some(n) if n == 0 || n > MAX => {
            return Err(Error::Usage(format!(
                "--build-number {n}: a build number is 1 to {MAX} (the third field of the MSI ProductVersion holds at most {MAX})"
            )))
        }
        Some(n) => n,
        None if last >= MAX => {
            return Err(bad(
                &path,
                format!("[last] {last}: no build number is left ({MAX} is the largest an MSI ProductVersion field holds)"),
            ))
        }
        None => last + 1,
    };
    if number > last {
        crate::fsutil::write_generated(&path, render(number).as_bytes())?;
    }
    // The lock goes with the file handle.
    Ok(Reserved { number, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_count_up_and_a_requested_one_raises_the_counter() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(reserve(d.path(), None).unwrap(), Reserved { number: 1, last: 0 });
        assert_eq!(reserve(d.path(), None).unwrap(), Reserved { number: 2, last: 1 });
        assert_eq!(reserve(d.path(), Some(40)).unwrap(), Reserved { number: 40, last: 2 });
        // An older number reproduces an old build and leaves the counter.
        assert_eq!(reserve(d.path(), Some(7)).unwrap(), Reserved { number: 7, last: 40 });
        assert_eq!(reserve(d.path(), None).unwrap(), Reserved { number: 41, last: 40 });
        assert_eq!(read(&d.path().join(FILE)).unwrap(), 41);
        assert!(std::fs::read_to_string(d.path().join(FILE)).unwrap().contains("last = 41\n"));
    }

    #[test]
    fn builds_at_once_get_distinct_numbers() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || (0..5).map(|_| reserve(&dir, None).unwrap().number).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u32> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort();
        assert_eq!(all, (1..=40).collect::<Vec<_>>());
    }

    #[test]
    fn bad_files_and_numbers_are_named_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), "last = \"seven\"\n").unwrap();
        let e = reserve(d.path(), None).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("[last]") && e.contains("fix: write `last = N`"), "{e}");
        std::fs::write(d.path().join(FILE), "last = 65535\n").unwrap();
        let e = reserve(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("no build number is left"), "{e}");
        let e = reserve(d.path(), Some(0)).unwrap_err().to_string();
        assert!(e.contains("--build-number 0"), "{e}");
        assert!(reserve(d.path(), Some(65536)).is_err());
    }

    #[test]
    fn msi_version_holds_the_build_in_the_third_field() {
        assert_eq!(msi_version([1, 2, 3], 7), "1.2.7");
        assert_eq!(file_version([1, 2, 3], 7), "1.2.3.7");
    }
}
