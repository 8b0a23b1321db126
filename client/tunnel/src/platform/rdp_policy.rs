//! The Remote Desktop host's machine policy values in the registry
//! (`HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services`), for
//! [`crate::share_policy`], through `winreg` as the proxy settings are read.
//! Windows only; the service runs as LocalSystem, which may write there.

use winreg::enums::{RegType, HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE, KEY_SET_VALUE};
use winreg::RegKey;

use crate::share_policy::{PolicyValues, KEY};

/// The open key.
pub struct Registry(RegKey);

impl Registry {
    /// Opens (creating) the key for reading and writing values.
    pub fn open() -> Result<Self, String> {
        RegKey::predef(HKEY_LOCAL_MACHINE)
            .create_subkey_with_flags(KEY, KEY_QUERY_VALUE | KEY_SET_VALUE)
            .map(|(key, _)| Self(key))
            .map_err(|e| {
                format!(
                    "HKLM\\{KEY}: cannot open for writing ({e}); DISABLE_SHARE needs ThinServer's service \
                     (LocalSystem) or an administrator"
                )
            })
    }
}

impl PolicyValues for Registry {
    fn get(&mut self, name: &str) -> Result<Option<u32>, String> {
        match self.0.get_raw_value(name) {
            Ok(v) if v.vtype == RegType::REG_DWORD && v.bytes.len() == 4 => {
                Ok(Some(u32::from_le_bytes(v.bytes[..4].try_into().expect("4 bytes"))))
            }
            // Another type was set by someone else: putting it back as a
            // DWORD would lose it, so refuse rather than guess.
            Ok(_) => Err(format!("HKLM\\{KEY}\\{name} is not a DWORD; fix or delete it")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("HKLM\\{KEY}\\{name}: cannot read ({e})")),
        }
    }

    fn set(&mut self, name: &str, value: Option<u32>) -> Result<(), String> {
        let r = match value {
            Some(v) => self.0.set_value(name, &v),
            None => match self.0.delete_value(name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        r.map_err(|e| format!("HKLM\\{KEY}\\{name}: cannot write ({e})"))
    }
}
