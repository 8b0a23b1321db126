//! `DISABLE_SHARE` on the office PC. The apps relay the RDP bytes without
//! reading them, so the rule is honoured where the Remote Desktop host itself
//! can be told: on Windows, the machine policy values the host reads for each
//! new session, under `HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal
//! Services` ([`VALUES`]: drives, clipboard, printers, ports, plug-and-play
//! devices set to 1). Before the first change the values found there are kept
//! in `share_policy.json` in the config folder (written atomically, first), and
//! put back when the rule is lifted, so the PC ends as its owner had it.
//! Elsewhere (xrdp on Linux) the rule cannot be honoured, and the window and
//! the README say so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::settings::{write_config_file, ConfigDir};

/// The policy values that turn off redirection in Remote Desktop sessions:
/// drives, clipboard, printers, LPT ports, COM ports, plug-and-play devices.
pub const VALUES: [&str; 6] =
    ["fDisableCdm", "fDisableClip", "fDisableCpm", "fDisableLPT", "fDisableCcm", "fDisablePNPRedir"];

/// The registry key of those values (under `HKEY_LOCAL_MACHINE`).
pub const KEY: &str = r"SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";

/// The state file in the config folder.
pub const STATE_FILE: &str = "share_policy.json";

/// Where the values live: the registry, or a map in the tests.
pub trait PolicyValues {
    /// A DWORD value, `None` when absent.
    fn get(&mut self, name: &str) -> Result<Option<u32>, String>;
    /// Sets a DWORD value, or deletes it (`None`).
    fn set(&mut self, name: &str, value: Option<u32>) -> Result<(), String>;
}

/// What the office PC did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sharing is off in new Remote Desktop sessions.
    Disabled,
    /// The owner's values are back (or nothing was ever changed).
    Restored,
    /// This system's RDP host cannot be told (not Windows).
    NotHonoured,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The values before the first change; `None`: absent.
    previous: BTreeMap<String, Option<u32>>,
}

/// Applies `disable` to `values`, keeping the owner's values in `dir`.
pub fn apply(values: &mut dyn PolicyValues, dir: &ConfigDir, disable: bool) -> Result<Outcome, String> {
    let path = dir.0.join(STATE_FILE);
    let state: Option<State> = match std::fs::read(&path) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| {
            format!("{}: {e}; put back the Remote Desktop policy values by hand and delete the file", path.display())
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if disable {
        if state.is_none() {
            let mut previous = BTreeMap::new();
            for name in VALUES {
                previous.insert(name.to_string(), values.get(name)?);
            }
            let text = serde_json::to_vec_pretty(&State { previous }).expect("serializable");
            write_config_file(&path, &text).map_err(|e| e.to_string())?;
        }
        for name in VALUES {
            values.set(name, Some(1))?;
        }
        return Ok(Outcome::Disabled);
    }
    if let Some(state) = state {
        for (name, value) in &state.previous {
            if VALUES.contains(&name.as_str()) {
                values.set(name, *value)?;
            }
        }
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Outcome::Restored)
}

/// Applies `disable` to this system's Remote Desktop host.
pub fn apply_system(dir: &ConfigDir, disable: bool) -> Result<Outcome, String> {
    #[cfg(windows)]
    {
        let mut reg = crate::platform::rdp_policy::Registry::open()?;
        apply(&mut reg, dir, disable)
    }
    #[cfg(not(windows))]
    {
        let _ = dir;
        Ok(if disable { Outcome::NotHonoured } else { Outcome::Restored })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Map(BTreeMap<String, u32>, bool);

    impl PolicyValues for Map {
        fn get(&mut self, name: &str) -> Result<Option<u32>, String> {
            Ok(self.0.get(name).copied())
        }
        fn set(&mut self, name: &str, value: Option<u32>) -> Result<(), String> {
            if self.1 {
                return Err("access denied".into());
            }
            match value {
                Some(v) => self.0.insert(name.into(), v),
                None => self.0.remove(name),
            };
            Ok(())
        }
    }

    #[test]
    fn disabling_keeps_the_owners_values_and_lifting_puts_them_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir(tmp.path().to_path_buf());
        let mut m = Map::default();
        m.0.insert("fDisableCdm".into(), 0);
        m.0.insert("Unrelated".into(), 7);
        assert_eq!(apply(&mut m, &dir, true), Ok(Outcome::Disabled));
        assert!(VALUES.iter().all(|v| m.0.get(*v) == Some(&1)), "{:?}", m.0);
        // Again (each policy message): still the owner's values kept, not ours.
        assert_eq!(apply(&mut m, &dir, true), Ok(Outcome::Disabled));
        assert_eq!(apply(&mut m, &dir, false), Ok(Outcome::Restored));
        let expected: BTreeMap<String, u32> = [("fDisableCdm".to_string(), 0), ("Unrelated".to_string(), 7)].into();
        assert_eq!(m.0, expected);
        assert!(!tmp.path().join(STATE_FILE).exists());
        // Lifting when nothing was changed changes nothing.
        assert_eq!(apply(&mut m, &dir, false), Ok(Outcome::Restored));
        assert_eq!(m.0, expected);
    }

    #[test]
    fn a_refused_write_is_an_error_and_a_broken_state_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir(tmp.path().to_path_buf());
        let mut denied = Map(BTreeMap::new(), true);
        assert_eq!(apply(&mut denied, &dir, true), Err("access denied".into()));
        std::fs::write(tmp.path().join(STATE_FILE), b"{").unwrap();
        let err = apply(&mut Map::default(), &dir, false).unwrap_err();
        assert!(err.contains(STATE_FILE) && err.contains("by hand"), "{err}");
    }
}
