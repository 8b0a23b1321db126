//! File writing rules: private keys 0600 in folders only their owner may
//! enter, every file written atomically with its final mode from the start
//! (whatever the umask), nothing replaced without a dated backup.

use crate::error::{Error, IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Mode of files anyone may read.
pub const PUBLIC: u32 = 0o644;
/// Mode of private keys, passwords and archives holding them.
pub const PRIVATE: u32 = 0o600;

/// Writes a new file; fails if it exists.
pub fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    write_atomic(path, PUBLIC, false, |f| f.write_all(data))
}

/// Writes a new private key or password: mode 0600 from the start, in a
/// folder made 0700 when this creates it. Fails if it exists.
pub fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    write_atomic(path, PRIVATE, false, |f| f.write_all(data))
}

/// Writes (or replaces) a generated, non-secret file.
pub fn write_generated(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    write_atomic(path, PUBLIC, true, |f| f.write_all(data))
}

/// Creates `dir` and its missing parents with mode 0700 from the start (a
/// folder that will hold private keys); an existing folder is left as it is.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).at(dir)
}

/// Writes `path` atomically with exactly `mode` (Unix): `fill` writes into a
/// temporary file beside it, created with at most `mode` whatever the umask
/// and set to `mode` while still empty, then the file is fsynced and renamed
/// over `path`. With `replace` false an existing `path` is an error
/// ([`Error::Exists`]) and is left alone.
pub fn write_atomic(
    path: &Path,
    mode: u32,
    replace: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    if !replace && std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::Exists(path.to_path_buf()));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut b = tempfile::Builder::new();
    b.prefix(".tmp-builder-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode & 0o600));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = b.tempfile_in(dir).at(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)).at(path)?;
    }
    fill(tmp.as_file_mut()).at(path)?;
    tmp.as_file().sync_all().at(path)?;
    if replace {
        tmp.persist(path).map_err(|e| e.error).at(path)?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| match e.error.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Exists(path.to_path_buf()),
            _ => Error::Io { path: path.to_path_buf(), source: e.error },
        })?;
    }
    Ok(())
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
    // Private from the start: the old keys go in here.
    create_private_dir(&target)?;
    for f in present {
        let name = f.file_name().expect("file name");
        let to = target.join(name);
        // A rename keeps the file as it was (mode included) and is atomic.
        std::fs::rename(f, &to).at(&to)?;
    }
    Ok(Some(target))
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
