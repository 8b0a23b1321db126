//! The user's words for the libraries' typed errors: each error is worded
//! here, once, from the string tables, in the user's language.

use thin_tunnel::control::ControlError;
use thin_tunnel::password_policy::{self, WeakPassword};

use crate::strings::{fmt as trf, text, Key};

fn tr(key: Key) -> String {
    text(key).into_owned()
}

/// An error the user is shown, worded from the string tables.
pub trait Wording {
    /// The text shown to the user.
    fn message(&self) -> String;
}

impl Wording for ControlError {
    fn message(&self) -> String {
        match self {
            Self::PcidInvalid => tr(Key::ERR_PCID_INVALID),
            Self::PcidTaken(p) => trf(Key::ERR_PCID_TAKEN, &[p]),
            Self::RegisterDisabled => tr(Key::ERR_REGISTER_DISABLED),
            Self::GatewayUnreachable(g) => trf(Key::ERR_GATEWAY_UNREACHABLE, &[g]),
            Self::CertUntrusted => tr(Key::ERR_CERT_UNTRUSTED),
            Self::CertExpired => tr(Key::ERR_CERT_EXPIRED),
            Self::NoEntryPoint => tr(Key::ERR_NO_ENTRY_POINT),
            Self::EmailInvalid => tr(Key::ERR_EMAIL_INVALID),
            Self::PasswordFirst => trf(Key::ERR_INTERNAL, &[&tr(Key::THINSVR_PASSWORD_FIRST)]),
            Self::WeakPassword(WeakPassword::TooShort { chars }) => {
                trf(Key::ERR_PASSWORD_TOO_SHORT, &[&password_policy::MIN_CHARS.to_string(), &chars.to_string()])
            }
            Self::WeakPassword(WeakPassword::Guessable { hint, .. }) => {
                let hint = hint.as_deref().map(|h| format!(" ({})", h.trim_end_matches('.'))).unwrap_or_default();
                trf(Key::ERR_PASSWORD_GUESSABLE, &[&hint])
            }
            Self::FixedByPolicy(why) => trf(Key::ERR_FIXED_BY_POLICY, &[why]),
            Self::Other(e) => trf(Key::ERR_INTERNAL, &[e]),
        }
    }
}
