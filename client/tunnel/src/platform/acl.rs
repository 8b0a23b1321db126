//! ThinServer's config folder (key pair, password verifier, settings, admin
//! secret) belongs to the service: nobody else may read it, and the service
//! uses nothing in it that someone else could have put there.
//!
//! On Windows the folder is `%ProgramData%\<AppId>\ThinServer`, and
//! `%ProgramData%` lets every user create folders that they then own. So the
//! service (and every `thinsvr` command that uses the folder) calls
//! [`secure_config_dir`] before reading anything in it:
//! - a missing folder is created with [`CONFIG_DIR_SDDL`] from the start:
//!   owned by Administrators, SYSTEM and Administrators alone allowed in;
//! - an existing one it can trust (owned by SYSTEM, Administrators or the
//!   service's own user, and letting nobody else in, see [`super::sddl::judge`])
//!   gets that descriptor again, and so do its secret files; an entry it
//!   cannot trust (someone else's, a link, a hard link, or a secret file that
//!   lets someone else read it) is moved aside, never read again;
//! - one it cannot trust is moved aside whole, with everything in it, and a
//!   new one is created. Resetting the owner and access list in place would
//!   not do: whoever made it may hold it open, and an open handle keeps the
//!   rights it was opened with (to add files, say) after the access list
//!   changed.
//!
//! A secret set aside is made anew (`admin.secret`, `server.key`); a
//! `password.json` set aside is not: the service then serves nobody until the
//! computer's owner sets the password again in ThinServer's window (the log
//! says why), since a verifier someone else may have written would let them
//! in. The brand's `%ProgramData%\<AppId>` folder above is held to the same
//! rule, and both stay open (without delete sharing) while [`PrivateDir`]
//! lives, so nobody can rename them and put others in their place.
//!
//! On Unix the folder is created 0700 from the start, an existing one must be
//! the service user's (or root must be running it) and is narrowed to 0700;
//! files in it are 0600 ([`crate::settings::write_secret`]). When root writes
//! into a folder that belongs to the service's user (`sudo thinsvr register
//! --config-dir /var/lib/...`), the new files are given to that user too
//! ([`prepare_new_file`]), so the service can still read them.

use std::path::{Path, PathBuf};

pub use super::sddl::Distrust;

/// Descriptor of the config folder (and of `%ProgramData%\<AppId>`): owned by
/// Administrators, full control for SYSTEM and Administrators, inherited by
/// everything in it, nothing inherited from the parent, no owner entry (so an
/// owner who is not SYSTEM or Administrators gains nothing).
pub const CONFIG_DIR_SDDL: &str = "O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Descriptor the service gives each file in the config folder.
pub const CONFIG_FILE_SDDL: &str = "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// Files the service reads secrets or settings from: besides their owner,
/// their access list must let nobody else in (a log file is judged by its owner).
pub const SECRET_FILES: [&str; 4] = ["admin.secret", "password.json", "server.key", "thinsvr.toml"];

/// What the name of an entry the service moved aside contains.
pub const SET_ASIDE_MARK: &str = ".untrusted-";

/// Why the config folder cannot be made private.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// An I/O error on the folder or an entry in it.
    #[error("{}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Unix: the folder belongs to another user.
    #[error("{} belongs to user {owner}, not to user {me} who runs this; give it to user {me} (chown -R) or delete it, then start again", path.display())]
    ForeignOwner {
        /// The folder.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's uid.
        me: u32,
    },
    /// Windows: another program holds the folder open so that it could be renamed.
    #[error("{} is held open by another program, so the service cannot make sure it stays its own; close that program (or restart the computer), then start the service again", path.display())]
    InUse {
        /// The folder.
        path: PathBuf,
    },
    /// Windows: the folder cannot be given to Administrators.
    #[error("cannot make {} belong to Administrators ({source}); ThinServer's service runs as LocalSystem (as its installer sets it up), and its commands need an elevated prompt", path.display())]
    TakeOver {
        /// The folder or file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Windows: something untrusted cannot be moved aside.
    #[error("{} was not made by this service ({why}) and cannot be moved aside ({source}); delete it as an administrator, then start the service again", path.display())]
    CannotSetAside {
        /// The folder or file.
        path: PathBuf,
        /// Why it is not trusted.
        why: Distrust,
        /// The error.
        source: std::io::Error,
    },
}

/// An entry the service moved aside instead of using it.
#[derive(Debug, Clone)]
pub struct SetAside {
    /// Where it was.
    pub path: PathBuf,
    /// Where it is now.
    pub moved_to: PathBuf,
    /// Why it is not trusted.
    pub why: Distrust,
}

impl std::fmt::Display for SetAside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was not made by this service ({}); moved it to {} and use nothing in it",
            self.path.display(),
            self.why,
            self.moved_to.display()
        )
    }
}

/// The config folder, private to this process while the value lives.
#[derive(Debug, Default)]
pub struct PrivateDir {
    /// What was moved aside, for the caller to report.
    pub set_aside: Vec<SetAside>,
    /// Windows: the folders, held open so that nobody can rename them.
    #[cfg(windows)]
    _pins: Vec<super::win_security::Handle>,
}

impl PrivateDir {
    /// Whether a password verifier (`password.json`, alone or in a folder)
    /// was moved aside: the service serves nobody until the password is set again.
    pub fn password_discarded(&self) -> bool {
        fn holds(p: &Path, depth: u8) -> bool {
            if p.file_name().is_some_and(|n| n == "password.json") {
                return true;
            }
            depth > 0 && std::fs::read_dir(p).is_ok_and(|rd| rd.flatten().any(|e| holds(&e.path(), depth - 1)))
        }
        self.set_aside.iter().any(|s| s.path.file_name().is_some_and(|n| n == "password.json") || holds(&s.moved_to, 2))
    }

    /// Logs what was moved aside, and what the owner must do.
    pub fn report(&self) {
        for s in &self.set_aside {
            tracing::warn!("{s}");
        }
        if self.password_discarded() {
            tracing::warn!("the password verifier found there is not used: nobody can connect until the computer's owner sets the password again in ThinServer's window");
        }
    }
}

/// Makes `dir` the service's own, as the module documentation says; returns
/// what was moved aside. Call it before reading anything in `dir`, and keep
/// the value while using the folder.
pub fn secure_config_dir(dir: &Path) -> Result<PrivateDir, AclError> {
    #[cfg(windows)]
    return windows::secure(dir);
    #[cfg(unix)]
    return unix::secure(dir);
}

/// Prepares a new, still empty file `file` at `path` in the config folder
/// before its data is written: on Windows it gets [`CONFIG_FILE_SDDL`]; on
/// Unix, when root writes into a folder of another user, it goes to that user.
pub fn prepare_new_file(file: &std::fs::File, path: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        let _ = file;
        let h = super::win_security::Handle::open(path, super::win_security::Share::All)?;
        h.set_sddl(CONFIG_FILE_SDDL)
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if unix::euid() != 0 {
            return Ok(());
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let m = std::fs::metadata(dir)?;
        if m.uid() == 0 {
            return Ok(());
        }
        std::os::unix::fs::fchown(file, Some(m.uid()), Some(m.gid()))
    }
}

#[cfg(unix)]
mod unix {
    use super::{AclError, PrivateDir};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    use std::path::Path;

    pub fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    pub fn secure(dir: &Path) -> Result<PrivateDir, AclError> {
        let io = |source| AclError::Io { path: dir.to_path_buf(), source };
        // 0700 from the start (and so are the parents it creates).
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        let m = std::fs::metadata(dir).map_err(io)?;
        check_owner(dir, m.uid(), euid())?;
        if m.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(PrivateDir::default())
    }

    /// The folder must be the user's who runs this (root may use any).
    pub fn check_owner(dir: &Path, owner: u32, me: u32) -> Result<(), AclError> {
        if owner == me || me == 0 {
            return Ok(());
        }
        Err(AclError::ForeignOwner { path: dir.to_path_buf(), owner, me })
    }
}

#[cfg(windows)]
mod windows {
    use super::super::sddl::{judge, Descriptor, Distrust};
    use super::super::win_security::{create_dir, current_user_sid, Handle, Privileges, Share};
    use super::{AclError, PrivateDir, SetAside, CONFIG_DIR_SDDL, CONFIG_FILE_SDDL, SECRET_FILES, SET_ASIDE_MARK};
    use std::path::{Path, PathBuf};

    /// `<path>.untrusted-<Unix time>` (then `-2`, `-3`... when taken).
    fn aside_name(path: &Path) -> PathBuf {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let base = format!("{}{SET_ASIDE_MARK}{secs}", path.display());
        let mut candidate = PathBuf::from(&base);
        let mut n = 2;
        while std::fs::symlink_metadata(&candidate).is_ok() {
            candidate = PathBuf::from(format!("{base}-{n}"));
            n += 1;
        }
        candidate
    }

    /// ERROR_SHARING_VIOLATION.
    const SHARING_VIOLATION: i32 = 32;

    /// The brand's `%ProgramData%\<AppId>` when `dir` is the default config folder below it.
    fn brand_folder(dir: &Path) -> Option<PathBuf> {
        let pd = super::super::known_folder::program_data()?;
        let default = thin_brand::server_config_dir_windows(&pd, crate::brand::get().app_id);
        (default == dir).then(|| dir.parent().map(Path::to_path_buf)).flatten()
    }

    pub fn secure(dir: &Path) -> Result<PrivateDir, AclError> {
        let me = current_user_sid().map_err(|source| AclError::Io { path: dir.to_path_buf(), source })?;
        let _privileges = Privileges::enable();
        let mut out = PrivateDir::default();
        let mut levels: Vec<PathBuf> = brand_folder(dir).into_iter().collect();
        levels.push(dir.to_path_buf());
        // Missing folders above get the descriptor too; existing ones are left alone.
        create_missing(levels[0].parent())?;
        let mut reused = false;
        for level in &levels {
            let (pin, was_there) = own_folder(level, &me, &mut out)?;
            reused = was_there;
            out._pins.push(pin);
        }
        if reused {
            check_entries(dir, &me, &mut out)?;
        }
        Ok(out)
    }

    fn create_missing(dir: Option<&Path>) -> Result<(), AclError> {
        let Some(dir) = dir.filter(|d| d.parent().is_some()) else { return Ok(()) };
        if std::fs::symlink_metadata(dir).is_ok() {
            return Ok(());
        }
        create_missing(dir.parent())?;
        create_dir(dir, CONFIG_DIR_SDDL).map_err(|source| AclError::TakeOver { path: dir.to_path_buf(), source })?;
        Ok(())
    }

    /// Opens (creating it when missing) and takes over one folder; moves it
    /// aside first when it cannot be trusted. Returns its pin and whether it
    /// was there before.
    fn own_folder(path: &Path, me: &str, out: &mut PrivateDir) -> Result<(Handle, bool), AclError> {
        let take_over = |source| AclError::TakeOver { path: path.to_path_buf(), source };
        loop {
            let created = create_dir(path, CONFIG_DIR_SDDL).map_err(take_over)?;
            let pin = Handle::open(path, Share::Pin).map_err(|e| match e.raw_os_error() {
                Some(SHARING_VIOLATION) => AclError::InUse { path: path.to_path_buf() },
                _ => take_over(e),
            })?;
            if created {
                return Ok((pin, false));
            }
            match verdict(&pin, me, true, true) {
                Ok(()) => {
                    pin.set_sddl(CONFIG_DIR_SDDL).map_err(take_over)?;
                    return Ok((pin, true));
                }
                Err(why) => {
                    drop(pin);
                    set_aside(path, why, out)?;
                }
            }
        }
    }

    /// Judges an open entry: its kind, names and descriptor.
    fn verdict(h: &Handle, me: &str, want_dir: bool, check_grants: bool) -> Result<(), Distrust> {
        let info = h.info().map_err(|_| Distrust::Unexpected)?;
        if info.reparse {
            return Err(Distrust::Link);
        }
        if info.dir != want_dir {
            return Err(Distrust::Unexpected);
        }
        if !want_dir && info.links > 1 {
            return Err(Distrust::HardLinks(info.links));
        }
        let text = h.sddl().map_err(|_| Distrust::NoAccessList)?;
        let d = Descriptor::parse(&text).map_err(|_| Distrust::NoAccessList)?;
        judge(&d, me, check_grants)
    }

    fn set_aside(path: &Path, why: Distrust, out: &mut PrivateDir) -> Result<(), AclError> {
        let to = aside_name(path);
        std::fs::rename(path, &to).map_err(|source| AclError::CannotSetAside {
            path: path.to_path_buf(),
            why: why.clone(),
            source,
        })?;
        out.set_aside.push(SetAside { path: path.to_path_buf(), moved_to: to, why });
        Ok(())
    }

    /// Every entry of a folder the service kept: what it cannot trust is moved
    /// aside (what was moved aside before is left), its trusted secret files
    /// get the file descriptor again.
    fn check_entries(dir: &Path, me: &str, out: &mut PrivateDir) -> Result<(), AclError> {
        let io = |source| AclError::Io { path: dir.to_path_buf(), source };
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(dir).map_err(io)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(io)?;
        names.sort();
        for path in names {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.contains(SET_ASIDE_MARK) {
                continue;
            }
            let secret = SECRET_FILES.contains(&name.as_str());
            let judged = match Handle::open(&path, Share::All) {
                Ok(h) => verdict(&h, me, false, secret).map(|()| h),
                Err(_) => Err(Distrust::Unexpected),
            };
            match judged {
                // Only the service's own files get its descriptor again: nothing else is touched.
                Ok(h) if secret => {
                    h.set_sddl(CONFIG_FILE_SDDL).map_err(|source| AclError::TakeOver { path: path.clone(), source })?
                }
                Ok(_) => {}
                Err(why) => set_aside(&path, why, out)?,
            }
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_missing_folder_is_made_private_from_the_start_with_its_parents() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/thinsvr");
        let p = secure_config_dir(&dir).unwrap();
        assert!(p.set_aside.is_empty());
        for d in [t.path().join("a"), t.path().join("a/b"), dir] {
            assert_eq!(mode(&d) & 0o077, 0, "{}: {:o}", d.display(), mode(&d));
        }
    }

    #[test]
    fn an_existing_open_folder_is_narrowed_and_its_files_kept() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("thinsvr");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        crate::settings::write_config_file(&dir.join("admin.secret"), b"x").unwrap();
        secure_config_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("admin.secret")), 0o600);
        assert_eq!(std::fs::read(dir.join("admin.secret")).unwrap(), b"x");
    }

    #[test]
    fn config_files_root_writes_go_to_the_folders_owner() {
        // `sudo thinsvr register --config-dir /var/lib/thinapps-x`: the service
        // (user thinsvr-x) must still read what root wrote. Not root: the
        // file stays the writer's.
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        secure_config_dir(&dir).unwrap();
        let me = unix::euid();
        let service_user = 65534; // nobody
        if me == 0 {
            std::os::unix::fs::chown(&dir, Some(service_user), Some(service_user)).unwrap();
        }
        let f = dir.join("password.json");
        crate::settings::write_config_file(&f, b"{}").unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let want = if me == 0 { service_user } else { me };
        assert_eq!((m.uid(), m.gid() == service_user || me != 0), (want, true));
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // A file root writes into its own folder stays root's.
        let own = t.path().join("own");
        crate::settings::write_config_file(&own.join("admin.secret"), b"x").unwrap();
        assert_eq!(std::fs::metadata(own.join("admin.secret")).unwrap().uid(), me);
        assert_eq!(mode(&own) & 0o077, 0, "write_config_file makes a missing folder private");
    }

    #[test]
    fn a_folder_of_another_user_is_refused_with_the_fix() {
        let dir = Path::new("/home/bob/.config/private/thinsvr");
        assert!(unix::check_owner(dir, 1000, 1000).is_ok());
        assert!(unix::check_owner(dir, 1000, 0).is_ok(), "root runs it on the service user's folder");
        let e = unix::check_owner(dir, 1001, 1000).unwrap_err().to_string();
        assert_eq!(e, "/home/bob/.config/private/thinsvr belongs to user 1001, not to user 1000 who runs this; give it to user 1000 (chown -R) or delete it, then start again");
    }
}
