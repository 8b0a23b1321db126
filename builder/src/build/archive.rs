//! Deterministic archives: sorted entries, fixed times (`SOURCE_DATE_EPOCH`),
//! owner root:root, fixed modes, no gzip name or time.

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One file to archive: name inside the archive, source file, Unix mode.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the archive (`/`-separated).
    pub name: String,
    /// File on disk.
    pub source: PathBuf,
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

/// Writes `files` under `stage/<name>/` (only those that changed) and packs
/// them as `<name>/...` into `out/<name>.tar.gz`, whose own mode is `mode`.
pub fn bundle(name: &str, files: Files, stage: &Path, out: &Path, epoch: i64, mode: u32) -> Result<PathBuf> {
    let dir = stage.join(name);
    let mut entries = Vec::new();
    for (rel, data, file_mode) in files {
        let path = dir.join(&rel);
        super::compiled::write_if_changed(&path, &data)?;
        entries.push(Entry { name: format!("{name}/{rel}"), source: path, mode: file_mode });
    }
    let archive = out.join(format!("{name}.tar.gz"));
    tar_gz(&archive, &entries, epoch)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(mode)).at(&archive)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(archive)
}

/// Writes a `.tar.gz` (gzip level 6: level 9 takes twice as long on the apps'
/// 20 MB binaries for 1% less).
pub fn tar_gz(out: &Path, entries: &[Entry], epoch: i64) -> Result<()> {
    let file = std::fs::File::create(out).at(out)?;
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
        tar.append_data(&mut h, &d, std::io::empty()).at(out)?;
    }
    for e in sorted(entries) {
        let data = std::fs::read(&e.source).at(&e.source)?;
        let mut h = header(data.len() as u64, e.mode, tar::EntryType::Regular);
        tar.append_data(&mut h, &e.name, data.as_slice()).at(out)?;
    }
    let gz = tar.into_inner().at(out)?;
    gz.finish().at(out)?.sync_all().at(out)
}

/// Writes a `.zip`.
pub fn zip(out: &Path, entries: &[Entry], epoch: i64) -> Result<()> {
    use zip::write::SimpleFileOptions;
    let err = |e: zip::result::ZipError| Error::Tool { tool: "zip".into(), msg: format!("{}: {e}", out.display()) };
    let t = time::OffsetDateTime::from_unix_timestamp(epoch.max(315_619_200)).expect("valid epoch");
    let when =
        zip::DateTime::from_date_and_time(t.year() as u16, t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
            .map_err(|e| Error::Tool { tool: "zip".into(), msg: e.to_string() })?;
    let file = std::fs::File::create(out).at(out)?;
    let mut z = zip::ZipWriter::new(file);
    let base = SimpleFileOptions::default().last_modified_time(when).system(zip::System::Unix);
    for d in folders(entries) {
        z.add_directory(d, base.unix_permissions(0o755)).map_err(err)?;
    }
    for e in sorted(entries) {
        let data = std::fs::read(&e.source).at(&e.source)?;
        let opts = base.compression_method(zip::CompressionMethod::Deflated).unix_permissions(e.mode);
        z.start_file(e.name.clone(), opts).map_err(err)?;
        z.write_all(&data).at(out)?;
    }
    z.finish().map_err(err)?.sync_all().at(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_byte_identical_across_runs() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("f");
        std::fs::write(&src, b"hello").unwrap();
        let entries = vec![Entry { name: "top/sub/f".into(), source: src.clone(), mode: 0o644 }];
        let (a, b) = (d.path().join("a.tgz"), d.path().join("b.tgz"));
        tar_gz(&a, &entries, 1_700_000_000).unwrap();
        std::fs::write(&src, b"hello").unwrap();
        tar_gz(&b, &entries, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let (za, zb) = (d.path().join("a.zip"), d.path().join("b.zip"));
        zip(&za, &entries, 1_700_000_000).unwrap();
        zip(&zb, &entries, 1_700_000_000).unwrap();
        assert_eq!(std::fs::read(&za).unwrap(), std::fs::read(&zb).unwrap());
    }
}
