//! The home-PC check that follows an end-to-end login, on the tunnel's first
//! multiplexed stream (kind `KIND_CHECK`), sealed under the login's keys so
//! the gateway neither reads nor alters it:
//!
//! 1. the client opens the stream; the office PC sends [`CheckAsk`], saying
//!    what it wants to know (the device proof, the MAC addresses, the
//!    inspection report);
//! 2. the client answers with [`CheckReport`], holding only what was asked;
//! 3. the office PC answers with [`CheckVerdict`]: accepted, or refused with
//!    a message that names what to do. A refused tunnel closes.
//!
//! An office PC that asks nothing still answers, so a client knows it was
//! heard; an office PC too old to know the stream closes it unread, which the
//! client takes as "nothing asked".

use serde::{Deserialize, Serialize};

use crate::inspection::HomeState;

/// Office PC -> client: what it wants to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAsk {
    /// The device key's proof and the MAC addresses (allowed home PCs).
    #[serde(default)]
    pub device: bool,
    /// The home PC's state (the company's inspection rule).
    #[serde(default)]
    pub inspection: bool,
}

/// Proof that the client holds its device key: an Ed25519 signature over the
/// login's binding value ([`device_signed_text`]), which differs in every login,
/// so a proof seen once is worth nothing in another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceProof {
    /// The device's Ed25519 public key (32 bytes, hex).
    pub public_key: String,
    /// Signature (64 bytes, hex).
    pub signature: String,
    /// The home PC's name, as the user would recognise it in a list.
    pub name: String,
}

/// Client -> office PC: what was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The device proof, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceProof>,
    /// The home PC's MAC addresses (`00-11-22-AA-BB-CC`), when the device was asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<String>,
    /// The home PC's state, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<HomeState>,
}

/// Office PC -> client: the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum CheckVerdict {
    /// Streams may follow. `note` tells the user something worth knowing
    /// (e.g. this home PC was just added to the allowed list).
    Accepted {
        /// Shown to the user, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The tunnel closes after this.
    Refused {
        /// What failed and what to do, worded for the home PC's user.
        message: String,
    },
}

/// What a device signs: a fixed label, then the login's binding value.
pub fn device_signed_text(binding: &[u8]) -> Vec<u8> {
    let mut m = b"thintelework device proof v1\0".to_vec();
    m.extend_from_slice(binding);
    m
}

/// The short device ID users compare and type (`3f2a-9c01-77de-b410-5e6d`):
/// the first 80 bits of SHA-256 of the public key, in hex groups of four.
/// Finding another key with the same ID takes about 2^80 tries.
pub fn device_id(public_key: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, public_key);
    let hex: String = d.as_ref()[..10].iter().map(|b| format!("{b:02x}")).collect();
    hex.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("hex")).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_is_five_groups_of_four_hex_digits_and_depends_on_the_key() {
        let a = device_id(&[1u8; 32]);
        assert_eq!(a.len(), 24);
        assert_eq!(a.split('-').count(), 5);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(a, device_id(&[2u8; 32]));
    }

    #[test]
    fn verdicts_read_back() {
        for v in [CheckVerdict::Accepted { note: None }, CheckVerdict::Refused { message: "no".into() }] {
            let j = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<CheckVerdict>(&j).unwrap(), v);
        }
        let empty: CheckReport = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, CheckReport::default());
    }
}
