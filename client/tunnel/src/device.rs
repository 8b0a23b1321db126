//! The home PC's device key: an Ed25519 key pair made on first use and kept
//! in the user's config folder (`device.key`, PKCS#8, mode 0600, written
//! atomically). An office PC that accepts only known home PCs lists their
//! device IDs ([`thin_protocol::device_check::device_id`]); in each login the
//! client proves it holds the key by signing the login's binding value
//! ([`crate::seal::Keys::binding`]), inside the end-to-end channel.
//!
//! The key is read only when an office PC asks for it, so a home PC that never
//! meets such an office PC never writes the file.

use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use thin_protocol::device_check::{device_id, device_signed_text, DeviceProof};

use crate::settings::SettingsError;

/// File name of the key in the user's config folder.
pub const FILE_NAME: &str = "device.key";

/// The user's config folder of this brand (`%APPDATA%\<brand folder>` on
/// Windows, `$XDG_CONFIG_HOME` or `~/.config/<brand folder>` elsewhere), if
/// the environment names one.
pub fn user_config_dir() -> Option<PathBuf> {
    let name = crate::brand::config_dir_name();
    if cfg!(windows) {
        return std::env::var_os("APPDATA").map(|p| PathBuf::from(p).join(name));
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join(name));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join(name))
}

/// Where a home PC keeps its device key.
#[derive(Debug, Clone)]
pub struct DeviceStore {
    dir: Option<PathBuf>,
}

impl DeviceStore {
    /// The user's config folder ([`user_config_dir`]).
    pub fn user_default() -> Self {
        Self { dir: user_config_dir() }
    }

    /// A given folder.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()) }
    }

    /// The key's file, if there is a folder for it.
    pub fn path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(FILE_NAME))
    }

    /// Loads the key, making it on first use.
    pub fn load_or_create(&self) -> Result<DeviceKey, SettingsError> {
        let Some(path) = self.path() else {
            return Err(SettingsError::Io(
                FILE_NAME.into(),
                std::io::Error::other("no user config folder (APPDATA, XDG_CONFIG_HOME or HOME is not set)"),
            ));
        };
        match std::fs::read(&path) {
            Ok(bytes) => DeviceKey::from_pkcs8(&bytes).map_err(|why| {
                SettingsError::Bad(
                    path.display().to_string(),
                    format!("{why}; delete the file to make a new device key"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| {
                    SettingsError::Io(path.display().to_string(), std::io::Error::other("no randomness"))
                })?;
                crate::settings::write_secret(&path, pkcs8.as_ref())?;
                DeviceKey::from_pkcs8(pkcs8.as_ref()).map_err(|why| SettingsError::Bad(path.display().to_string(), why))
            }
            Err(e) => Err(SettingsError::Io(path.display().to_string(), e)),
        }
    }

    /// The device ID, if the key exists already (nothing is written).
    pub fn existing_id(&self) -> Option<String> {
        let bytes = std::fs::read(self.path()?).ok()?;
        DeviceKey::from_pkcs8(&bytes).ok().map(|k| k.id())
    }
}

/// A loaded device key.
pub struct DeviceKey(Ed25519KeyPair);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", self.id())
    }
}

impl DeviceKey {
    /// From a PKCS#8 document.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, String> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes)
            .map(Self)
            .map_err(|e| format!("not an Ed25519 device key ({e})"))
    }

    /// A new key that is not stored (tests, one-off tools).
    pub fn ephemeral() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("randomness");
        Self::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses")
    }

    /// The ID users compare and type.
    pub fn id(&self) -> String {
        device_id(self.0.public_key().as_ref())
    }

    /// Proof of holding the key in the login whose binding value is `binding`.
    pub fn prove(&self, binding: &[u8], name: &str) -> DeviceProof {
        let sig = self.0.sign(&device_signed_text(binding));
        DeviceProof {
            public_key: hex::encode(self.0.public_key().as_ref()),
            signature: hex::encode(sig.as_ref()),
            name: name.chars().take(64).collect(),
        }
    }
}

/// Checks `proof` against `binding`; the device ID it proves, or why not.
pub fn verify(proof: &DeviceProof, binding: &[u8]) -> Result<String, &'static str> {
    let public = hex::decode(&proof.public_key).map_err(|_| "the device key is not hex")?;
    let sig = hex::decode(&proof.signature).map_err(|_| "the device signature is not hex")?;
    if public.len() != 32 || sig.len() != 64 {
        return Err("the device key or signature has the wrong length");
    }
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(&device_signed_text(binding), &sig)
        .map_err(|_| "the device signature does not verify for this login")?;
    Ok(device_id(&public))
}

/// True when `a` and `b` name the same device ID (case, spaces and dashes aside).
pub fn same_id(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_ascii_lowercase();
    let (a, b) = (norm(a), norm(b));
    a.len() == 20 && a == b
}

/// Reads a device ID typed by a person (`3f2a-9c01-77de-b410-5e6d`, any case,
/// with or without dashes); the canonical form, or why not.
pub fn parse_id(s: &str) -> Result<String, String> {
    let hex: String = s.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_lowercase();
    if hex.len() != 20 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{s}` is not a device ID: expected 20 hex digits such as 3f2a-9c01-77de-b410-5e6d \
             (the home PC shows its own with `thinclient device`)"
        ));
    }
    Ok(hex.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("hex")).collect::<Vec<_>>().join("-"))
}

/// Removes a device key file (for a user who wants a new identity).
pub fn forget(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_for_its_own_login_only() {
        let k = DeviceKey::ephemeral();
        let p = k.prove(&[7u8; 32], "home");
        assert_eq!(verify(&p, &[7u8; 32]).unwrap(), k.id());
        assert!(verify(&p, &[8u8; 32]).is_err(), "replayed into another login");
        let other = DeviceKey::ephemeral();
        let stolen = DeviceProof { public_key: hex::encode(other.0.public_key().as_ref()), ..p.clone() };
        assert!(verify(&stolen, &[7u8; 32]).is_err(), "someone else's key with this signature");
        let short = DeviceProof { signature: "00".into(), ..p };
        assert!(verify(&short, &[7u8; 32]).is_err());
    }

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeviceStore::at(dir.path().join("cfg"));
        assert_eq!(store.existing_id(), None);
        let a = store.load_or_create().unwrap();
        assert_eq!(store.load_or_create().unwrap().id(), a.id());
        assert_eq!(store.existing_id(), Some(a.id()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path().unwrap()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        std::fs::write(store.path().unwrap(), b"garbage").unwrap();
        let err = store.load_or_create().unwrap_err().to_string();
        assert!(err.contains(FILE_NAME) && err.contains("delete the file"), "{err}");
    }

    #[test]
    fn typed_ids_are_read_in_any_form() {
        let k = DeviceKey::ephemeral();
        let id = k.id();
        assert_eq!(parse_id(&id.to_uppercase().replace('-', "")).unwrap(), id);
        assert!(same_id(&id, &id.to_uppercase()));
        assert!(!same_id(&id, &DeviceKey::ephemeral().id()));
        assert!(parse_id("3f2a-9c01").unwrap_err().contains("thinclient device"));
        assert!(parse_id("zzzz-9c01-77de-b410-5e6d").is_err());
    }
}
