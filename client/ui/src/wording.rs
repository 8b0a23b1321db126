//! The user's words for the libraries' typed errors: each error is worded
//! here, once, from the string tables, in the user's language.

use thin_tunnel::control::ControlError;

use crate::strings::{fmt as trf, text};

fn tr(key: &str) -> String {
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
            Self::PcidInvalid => tr("ERR_PCID_INVALID"),
            Self::PcidTaken(p) => trf("ERR_PCID_TAKEN", &[p]),
            Self::RegisterDisabled => tr("ERR_REGISTER_DISABLED"),
            Self::GatewayUnreachable(g) => trf("ERR_GATEWAY_UNREACHABLE", &[g]),
            Self::CertUntrusted => tr("ERR_CERT_UNTRUSTED"),
            Self::CertExpired => tr("ERR_CERT_EXPIRED"),
            Self::NoEntryPoint => tr("ERR_NO_ENTRY_POINT"),
            Self::EmailInvalid => tr("ERR_EMAIL_INVALID"),
            Self::PasswordFirst => trf("ERR_INTERNAL", &[&tr("THINSVR_PASSWORD_FIRST")]),
            Self::Other(e) => trf("ERR_INTERNAL", &[e]),
        }
    }
}
