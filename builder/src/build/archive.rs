//! Deterministic archives: sorted entries, fixed times (`SOURCE_DATE_EPOCH`),
//! owner root:root, fixed modes, no gzip name or time. Each archive is
//! written atomically with its final mode from the start (0600 when it holds
//! a private key), and a private key is archived from memory: it is never
//! staged on disk.

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What an archive entry holds.
#[derive(Debug, Clone)]
pub enum Source {
    /// The contents of a file on disk.
    File(PathBuf),
    /// These bytes.
    Bytes(Vec<u8>),
}

impl Source {
    fn read(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Source::File(p) => Ok(std::fs::read(p).at(p)?.into()),
            Source::Bytes(b) => Ok(b.as_slice().into()),
        }
    }
}

/// One file to archive: name inside the archive, contents, Unix mode.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the archive (`/`-separated).
    pub name: String,
    /// Contents.
    pub source: Source,
    /// Unix mode (`0o755`, `0o644`, `0o600`).
    pub mode: u32,
}

fn sorted(entries: &[Entry]) -> Vec<Entry> {
    let mut v = entries.to_vec();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Folders that the entries live in, parents first.
fn folders(entries: &[Entry]) -> Vec<String> {
    let mut dirs = std::collections::BTreeSet::new();
    for e in entries {
        let mut p = e.name.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(format!("{parent}/"));
            p = parent;
        }
    }
    dirs.into_iter().collect()
}

/// A bundle's files: path inside the bundle, contents, mode.
pub type Files = Vec<(String, Vec<u8>, u32)>;

/// Whether a file of that mode is private (a key: nobody but its owner may read it).
pub fn is_private(mode: u32) -> bool {
    mode & 0o077 == 0
}

/// Packs `files` as `<name>/...` into `out/<name>.tar.gz`, whose own mode is
/// `mode`. The public files are also written under `stage/<name>/` (only
/// those that changed); a private one is archived from memory, and a staged
/// copy an older builder left is deleted.
pub fn bundle(name: &str, files: Files, stage: &Path, out: &Path, epoch: i64, mode: u32) -> Result<PathBuf> {
    let dir = stage.join(name);
    let mut entries = Vec::new();
    for (rel, data, file_mode) in files {
        let path = dir.join(&rel);
        let source = if is_private(file_mode) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).at(&path),
                _ => {}
            }
            Source::Bytes(data)
        } else {
            super::compiled::write_if_changed(&path, &data)?;
            Source::File(path)
        };
        entries.push(Entry { name: format!("{name}/{rel}"), source, mode: file_mode });
    }
    let archive = out.join(format!("{name}.tar.gz"));
    tar_gz(&archive, &entries, epoch, mode)?;
    Ok(archive)
}

/// Writes a `.tar.gz` of mode `mode` (gzip level 6: level 9 takes twice as
/// long on the apps' 20 MB binaries for 1% less).
pub fn tar_gz(out: &Path, entries: &[Entry], epoch: i64, mode: u32) -> Result<()> {
    fsutil::write_atomic(out, mode, true, |file| {
        let gz = flate2::GzBuilder::new().mtime(0).write(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        let header = |size: u64, mode: u32, kind: tar::EntryType| {
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(mode);
            h.set_entry_type(kind);
            h.set_mtime(epoch.max(0) as u64);
            h.set_uid(0);
            h.set_gid(0);
            let _ = h.set_username("root");
            let _ = h.set_groupname("root");
            h
        };
        for d in folders(entries) {
            let mut h = header(0, 0o755, tar::EntryType::Directory);
            tar.append_data(&mut h, &d, std::io::empty())?;
        }
        for e in sorted(entries) {
            let data = e.source.read().map_err(std::io::Error::other)?;
            let mut h = header(data.len() as u64, e.mode, tar::EntryType::Regular);
            tar.append_data(&mut h, &e.name, &*data)?;
        }
        tar.into_inner()?.finish()?;
        Ok(())
    })
}

/// Writes a `.zip` (mode 0644).
pub fn zip(out: &Path, entries: &[Entry], epoch: i64) -> Result<()> {
    use zip::write::SimpleFileOptions;
    let t = time::OffsetDateTime::from_unix_timestamp(epoch.max(315_619_200)).expect("valid epoch");
    let when =
        zip::DateTime::from_date_and_time(t.year() as u16, t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
            .map_err(|e| Error::Tool { tool: "zip".into(), msg: e.to_string() })?;
    fsutil::write_atomic(out, fsutil::PUBLIC, true, |file| {
        let mut z = zip::ZipWriter::new(file);
        let base = SimpleFileOptions::default().last_modified_time(when).system(zip::System::Unix);
        for d in folders(entries) {
            z.add_directory(d, base.unix_permissions(0o755)).map_err(std::io::Error::other)?;
        }
        for e in sorted(entries) {
            let data = e.source.read().map_err(std::io::Error::other)?;
            let opts = base.compression_method(zip::CompressionMethod::Deflated).unix_permissions(e.mode);
            z.start_file(e.name.clone(), opts).map_err(std::io::Error::other)?;
            z.write_all(&data)?;
        }
        z.finish().map_err(std::io::Error::other)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_byte_identical_across_runs() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("f");
        std::fs::write(&src, b"hello").unwrap();
        let entries = vec![
            Entry { name: "top/sub/f".into(), source: Source::File(src.clone()), mode: 0o644 },
            Entry { name: "top/k".into(), source: Source::Bytes(b"key".to_vec()), mode: 0o600 },
        ];
        let (a, b) = (d.path().join("a.tgz"), d.path().join("b.tgz"));
        tar_gz(&a, &entries, 1_700_000_000, 0o644).unwrap();
        std::fs::write(&src, b"hello").unwrap();
        tar_gz(&b, &entries, 1_700_000_000, 0o644).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let (za, zb) = (d.path().join("a.zip"), d.path().join("b.zip"));
        zip(&za, &entries, 1_700_000_000).unwrap();
        zip(&zb, &entries, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&za).unwrap(), std::fs::read(&zb).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn a_bundle_with_a_key_never_stages_it_and_is_private() {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (stage, out) = (d.path().join("stage"), d.path().join("out"));
        std::fs::create_dir_all(&out).unwrap();
        // What an older builder left: a world-readable staged key, a world-readable archive.
        let stale = stage.join("b/ThinGate.key");
        std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
        std::fs::write(&stale, b"old key").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(out.join("b.tar.gz"), b"old").unwrap();
        std::fs::set_permissions(out.join("b.tar.gz"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let key = b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n".to_vec();
        let files: Files =
            vec![("ThinGate.key".into(), key.clone(), 0o600), ("ThinGate.ini".into(), b"ini".to_vec(), 0o644)];
        let archive = bundle("b", files, &stage, &out, 1_700_000_000, 0o600).unwrap();
        assert!(!stale.exists(), "the stale staged key is gone");
        assert_eq!(std::fs::read(stage.join("b/ThinGate.ini")).unwrap(), b"ini", "public files are staged");
        assert_eq!(std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600);
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&archive).unwrap()));
        let mut seen = Vec::new();
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((e.path().unwrap().display().to_string(), e.header().mode().unwrap(), data));
        }
        assert_eq!(
            seen,
            [
                ("b/".to_string(), 0o755, vec![]),
                ("b/ThinGate.ini".to_string(), 0o644, b"ini".to_vec()),
                ("b/ThinGate.key".to_string(), 0o600, key)
            ]
        );
    }
}
