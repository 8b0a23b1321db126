//! The office PC's files in its config folder: key pair (`server.key`),
//! password verifier (`password.json`, an OPAQUE record), and settings
//! (`thinsvr.toml`). Secrets are written with mode 0600, atomically; who may
//! use the folder itself is `crate::platform::acl`'s business.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thin_protocol::auth::PasswordFile;
use thin_protocol::identity::Identity;

/// Errors with the config folder.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// I/O on a file.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A file that does not parse.
    #[error("{0}: {1}; delete it and run `thinsvr register` again")]
    Bad(String, String),
    /// Not registered yet.
    #[error("this computer is not registered yet: run `thinsvr register --pcid ID` first")]
    NotRegistered,
}

/// `thinsvr.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Registered computer ID.
    pub pcid: Option<String>,
    /// Local service the tunnels reach.
    #[serde(default = "default_target")]
    pub target: String,
    /// Failed logins before a lockout.
    #[serde(default = "default_attempts")]
    pub lockout_attempts: u32,
    /// Lockout length in seconds.
    #[serde(default = "default_lockout_secs")]
    pub lockout_seconds: u64,
    /// Proxy to reach the gateway (`http://...`, `socks5://...`, `direct`).
    #[serde(default)]
    pub proxy: Option<String>,
    /// Mail address for one-time passwords; set = every client session must
    /// also type the code mailed there (`thinsvr otp --email ADDR`).
    #[serde(default)]
    pub otp_email: Option<String>,
    /// The gateway's registration token (its `RegisterToken`), sent when
    /// registering; unset = none. Masked in `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_token: Option<thin_protocol::secret::Secret>,
    /// MAC addresses reported for Wake-on-LAN (`00-11-22-AA-BB-CC`) instead
    /// of the adapters the system lists; unset = those.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wol_macs: Vec<String>,
    /// Only known home PCs may connect: those in `allowed_devices`, or with a
    /// MAC address in `allowed_macs` (`thinsvr devices require on`). The
    /// company's `ENFORCE_MACCHECK` turns it on whatever this says.
    #[serde(default, skip_serializing_if = "is_false")]
    pub devices_only: bool,
    /// Known home PCs, by device ID (`thinsvr devices --add ID`, or pairing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_devices: Vec<AllowedDevice>,
    /// Known home PCs by MAC address, as the original's MAC check lists them
    /// (`thinsvr devices --add-mac MAC`). A MAC address is what the home PC
    /// says it has, so this is weaker than a device ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_macs: Vec<String>,
    /// Until when (Unix time, seconds) the next unknown home PC that logs in
    /// is added to `allowed_devices` (`thinsvr devices --pair`); one device, then it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_until: Option<u64>,
    /// Which desktop the tunnels reach: `auto` (the built-in desktop when
    /// nothing answers at `target`), `builtin` or `rdp`.
    #[serde(default)]
    pub desktop: crate::desktop::DesktopMode,
    /// Whether the built-in desktop shares the clipboard (text, both ways).
    /// The company's policy (`DISABLE_SHARE`) turns it off whatever this says.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub clipboard: bool,
}

/// A known home PC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedDevice {
    /// Device ID (`3f2a-9c01-77de-b410-5e6d`).
    pub id: String,
    /// The name it gave, or the owner gave it.
    #[serde(default)]
    pub name: String,
    /// When it was added (Unix time, seconds).
    #[serde(default)]
    pub added: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

fn default_target() -> String {
    "127.0.0.1:3389".into()
}
fn default_attempts() -> u32 {
    5
}
fn default_lockout_secs() -> u64 {
    300
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            pcid: None,
            target: default_target(),
            lockout_attempts: default_attempts(),
            lockout_seconds: default_lockout_secs(),
            proxy: None,
            otp_email: None,
            register_token: None,
            wol_macs: Vec::new(),
            devices_only: false,
            allowed_devices: Vec::new(),
            allowed_macs: Vec::new(),
            pair_until: None,
            desktop: Default::default(),
            clipboard: true,
        }
    }
}

impl ServerSettings {
    /// Lockout duration.
    pub fn lockout_duration(&self) -> Duration {
        Duration::from_secs(self.lockout_seconds)
    }
}

/// The config folder.
#[derive(Debug, Clone)]
pub struct ConfigDir(pub PathBuf);

impl ConfigDir {
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Loads the key pair, creating it on first use.
    pub fn identity(&self) -> Result<Identity, SettingsError> {
        let p = self.file("server.key");
        match std::fs::read_to_string(&p) {
            Ok(pem) => Identity::from_pem(&pem).map_err(|e| SettingsError::Bad(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = Identity::generate();
                write_config_file(&p, id.to_pem().as_bytes())?;
                Ok(id)
            }
            Err(e) => Err(SettingsError::Io(p.display().to_string(), e)),
        }
    }

    /// Loads the settings (defaults when absent).
    pub fn settings(&self) -> Result<ServerSettings, SettingsError> {
        let p = self.file("thinsvr.toml");
        match std::fs::read_to_string(&p) {
            Ok(t) => toml::from_str(&t).map_err(|e| SettingsError::Bad(p.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ServerSettings::default()),
            Err(e) => Err(SettingsError::Io(p.display().to_string(), e)),
        }
    }

    /// Saves the settings.
    pub fn save_settings(&self, s: &ServerSettings) -> Result<(), SettingsError> {
        let text = toml::to_string_pretty(s).map_err(|e| SettingsError::Bad("thinsvr.toml".into(), e.to_string()))?;
        write_config_file(&self.file("thinsvr.toml"), text.as_bytes())
    }

    /// Loads the password verifier.
    pub fn password(&self) -> Result<PasswordFile, SettingsError> {
        let p = self.file("password.json");
        let t = std::fs::read_to_string(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SettingsError::NotRegistered,
            _ => SettingsError::Io(p.display().to_string(), e),
        })?;
        serde_json::from_str(&t).map_err(|e| SettingsError::Bad(p.display().to_string(), e.to_string()))
    }

    /// Stores a new password verifier.
    pub fn save_password(&self, f: &PasswordFile) -> Result<(), SettingsError> {
        let text =
            serde_json::to_vec_pretty(f).map_err(|e| SettingsError::Bad("password.json".into(), e.to_string()))?;
        write_config_file(&self.file("password.json"), &text)
    }
}

/// Writes `data` to `path` atomically with mode 0600 (a temporary file in the
/// same folder, created 0600, fsynced, then renamed over `path`).
pub fn write_secret(path: &Path, data: &[u8]) -> Result<(), SettingsError> {
    write_atomic(path, data, false)
}

/// Writes a file of the service's config folder: as [`write_secret`], and the
/// new file is prepared before its data goes in
/// ([`crate::platform::acl::prepare_new_file`]: on Windows it is made
/// Administrators' own, SYSTEM and Administrators alone allowed in; on Unix,
/// root writing into the service user's folder hands the file to that user).
/// A missing folder is created as [`crate::platform::acl::secure_config_dir`] does.
pub fn write_config_file(path: &Path, data: &[u8]) -> Result<(), SettingsError> {
    write_atomic(path, data, true)
}

fn write_atomic(path: &Path, data: &[u8], config: bool) -> Result<(), SettingsError> {
    use std::io::Write;
    let err = |e| SettingsError::Io(path.display().to_string(), e);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !config {
        std::fs::create_dir_all(dir).map_err(err)?;
    } else if !dir.exists() {
        crate::platform::acl::secure_config_dir(dir)
            .map_err(|e| SettingsError::Io(dir.display().to_string(), std::io::Error::other(e.to_string())))?;
    }
    let mut f = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    if config {
        crate::platform::acl::prepare_new_file(f.as_file(), f.path()).map_err(err)?;
    }
    f.write_all(data).map_err(err)?;
    f.as_file().sync_all().map_err(err)?;
    f.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
