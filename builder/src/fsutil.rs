//! File writing rules: private keys 0600, nothing replaced without a dated backup.

use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};

/// Writes a new file; fails if it exists.
pub fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    if path.exists() {
        return Err(Error::Exists(path.to_path_buf()));
    }
    write(path, data, false)
}

/// Writes a private key (mode 0600 from the start, never world-readable).
pub fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    if path.exists() {
        return Err(Error::Exists(path.to_path_buf()));
    }
    write(path, data, true)
}

fn write(path: &Path, data: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let mut f = opts.open(path).at(path)?;
    f.write_all(data).at(path)?;
    f.sync_all().at(path)
}

/// Writes (or replaces) a generated, non-secret file.
pub fn write_generated(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    std::fs::write(path, data).at(path)
}

/// Moves `files` (those that exist) into `<dir>/backup-<UTC date-time>/`, keeping
/// their names, and returns that folder. Two backups in one second get `-2`, `-3`...
pub fn backup(dir: &Path, files: &[PathBuf]) -> Result<Option<PathBuf>> {
    let present: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    if present.is_empty() {
        return Ok(None);
    }
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year][month][day]-[hour][minute][second]"))
        .map_err(|e| Error::Cert(e.to_string()))?;
    let mut target = dir.join(format!("backup-{stamp}"));
    let mut n = 2;
    while target.exists() {
        target = dir.join(format!("backup-{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir_all(&target).at(&target)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).at(&target)?;
    }
    for f in present {
        let name = f.file_name().expect("file name");
        let to = target.join(name);
        std::fs::copy(f, &to).at(&to)?;
        copy_mode(f, &to)?;
        std::fs::remove_file(f).at(f)?;
    }
    Ok(Some(target))
}

fn copy_mode(from: &Path, to: &Path) -> Result<()> {
    let perm = std::fs::metadata(from).at(from)?.permissions();
    std::fs::set_permissions(to, perm).at(to)
}

/// Copies a folder tree (files only), refusing to replace existing files.
pub fn copy_tree_new(from: &Path, to: &Path) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Io { path: from.into(), source: e.into() })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(from).expect("under root");
        let dest = to.join(rel);
        let data = std::fs::read(entry.path()).at(entry.path())?;
        write_new(&dest, &data)?;
        made.push(dest);
    }
    Ok(made)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_0600_and_backups_keep_files() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("k.key");
        write_secret(&key, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(write_secret(&key, b"x"), Err(Error::Exists(_))));
        let b = backup(d.path(), std::slice::from_ref(&key)).unwrap().unwrap();
        assert!(!key.exists());
        let kept = b.join("k.key");
        assert_eq!(std::fs::read(&kept).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
