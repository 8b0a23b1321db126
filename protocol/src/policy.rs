//! The company's rules, as the gateway sends them to office PCs
//! ([`crate::messages::GateToServer::Policy`]). The gateway reads them from
//! `ThinGatePolicy.ini` (the original's key names); an office PC applies them
//! on top of its own settings and can only be made stricter by them.

use serde::{Deserialize, Serialize};

/// Longest `SERVER_MESSAGE`, in characters.
pub const MAX_SERVER_MESSAGE: usize = 1024;

/// ServerMask64 bit of an office PC that serves under a policy.
pub const MASK_POLICY: u64 = 32;

/// ServerMask64 bit of an office PC that can send Wake-on-LAN packets for
/// others (and reports its own MAC addresses).
pub const MASK_WOL: u64 = 128;

/// The rules in force. Every field's default is "no rule"; an absent field
/// on the wire reads as its default, so rules can be added compatibly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `ENFORCE_OTP`: every client login must also give a one-time password
    /// mailed to the office PC's address; a PC without one does not serve.
    #[serde(default)]
    pub enforce_otp: bool,
    /// `ENFORCE_MACCHECK`: only known home PCs may connect (by device key,
    /// or by MAC address as the original checks), whatever the office PC's
    /// own setting says.
    #[serde(default)]
    pub enforce_maccheck: bool,
    /// `ENFORCE_INSPECTION`: home PCs must pass the inspection
    /// ([`crate::inspection`]), judged by the office PC after the login.
    #[serde(default)]
    pub enforce_inspection: bool,
    /// `INSPECTION_UPDATE_DAYS`: under `ENFORCE_INSPECTION`, most days since
    /// the home PC last installed updates; `None`: the default
    /// ([`crate::inspection::DEFAULT_UPDATE_DAYS`]); `Some(0)`: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection_update_days: Option<u32>,
    /// `INSPECTION_ALLOW_OTHER_OS`: under `ENFORCE_INSPECTION`, home PCs
    /// other than Windows may connect, judged on their update age only
    /// (see [`crate::inspection`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inspection_allow_other_os: bool,
    /// `IDLE_TIMEOUT`: a tunnel through which no data has flowed for this
    /// many seconds is closed (keepalives do not count); `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_s: Option<u64>,
    /// `REQUIRE_MINIMUM_CLIENT_BUILD`: clients of an older build are refused
    /// (by the gateway) with a message to update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_client_build: Option<u32>,
    /// `SERVER_MESSAGE`: shown in ThinServer's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_message: Option<String>,
    /// `DISABLE_SHARE`: Windows office PCs turn off drive, clipboard, printer
    /// and device redirection in their Remote Desktop host's policy; others
    /// show it (the apps do not read the RDP bytes).
    #[serde(default)]
    pub disable_share: bool,
}

impl Policy {
    /// True when no rule is set (no policy applies).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// The stricter of two idle limits (the policy's and a local one).
    pub fn idle_limit(&self, local_s: Option<u64>) -> Option<u64> {
        match (self.idle_timeout_s, local_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Why a MAC address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address; write six hex pairs, e.g. 00-11-22-AA-BB-CC")]
pub struct BadMac(pub String);

/// Reads a MAC address written `00-11-22-aa-bb-cc`, `00:11:22:AA:BB:CC` or
/// `001122AABBCC`. All-zero and broadcast addresses are refused.
pub fn parse_mac(s: &str) -> Result<[u8; 6], BadMac> {
    let bad = || BadMac(s.chars().take(40).collect());
    let hex: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    if hex.len() != 12 || s.len() > 17 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, b) in mac.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    if mac == [0; 6] || mac == [0xff; 6] {
        return Err(bad());
    }
    Ok(mac)
}

/// Writes a MAC address as `00-11-22-AA-BB-CC`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_is_absent_fields_and_rules_only_add() {
        let p: Policy = serde_json::from_str("{}").unwrap();
        assert!(p.is_empty());
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"enforce_otp":false,"enforce_maccheck":false,"enforce_inspection":false,"disable_share":false}"#
        );
        let strict = Policy { idle_timeout_s: Some(60), ..Policy::default() };
        assert_eq!(strict.idle_limit(None), Some(60));
        assert_eq!(strict.idle_limit(Some(600)), Some(60), "a local setting cannot loosen the policy");
        assert_eq!(strict.idle_limit(Some(30)), Some(30));
    }

    #[test]
    fn mac_addresses_in_three_spellings() {
        let m = [0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc];
        for s in ["00-11-22-aa-bb-cc", "00:11:22:AA:BB:CC", "001122AABBCC"] {
            assert_eq!(parse_mac(s), Ok(m), "{s}");
        }
        assert_eq!(format_mac(&m), "00-11-22-AA-BB-CC");
        for s in [
            "",
            "00-11-22-aa-bb",
            "00-11-22-aa-bb-cc-dd",
            "zz-11-22-aa-bb-cc",
            "00-00-00-00-00-00",
            "ff:ff:ff:ff:ff:ff",
            "0-0-1-1-2-2-aa-bb-cc",
        ] {
            assert!(parse_mac(s).is_err(), "{s}");
        }
    }
}
