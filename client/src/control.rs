//! Why a change to ThinServer's settings failed, in terms the user can act on:
//! shared by the window and the service's admin port (which sends it back to
//! the window as is, so the window words it in the user's language).

use thin_protocol::messages::ErrorCode;

use crate::link::LinkError;
use crate::server_agent::AgentError;
use crate::strings::{fmt as trf, text};

fn tr(key: &str) -> String {
    text(key).into_owned()
}

/// Why an action failed, in terms the user can act on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ControlError {
    /// The computer ID breaks the naming rules.
    PcidInvalid,
    /// Another computer has this ID.
    PcidTaken(String),
    /// The gateway takes no new computers.
    RegisterDisabled,
    /// The gateway cannot be reached.
    GatewayUnreachable(String),
    /// The gateway's certificate is not trusted.
    CertUntrusted,
    /// The gateway's certificate has expired.
    CertExpired,
    /// This build has no gateway address.
    NoEntryPoint,
    /// The mail address is not one.
    EmailInvalid,
    /// Anything else (detail shown).
    Other(String),
}

impl ControlError {
    /// The text shown to the user, from the string tables.
    pub fn message(&self) -> String {
        match self {
            Self::PcidInvalid => tr("ERR_PCID_INVALID"),
            Self::PcidTaken(p) => trf("ERR_PCID_TAKEN", &[p]),
            Self::RegisterDisabled => tr("ERR_REGISTER_DISABLED"),
            Self::GatewayUnreachable(g) => trf("ERR_GATEWAY_UNREACHABLE", &[g]),
            Self::CertUntrusted => tr("ERR_CERT_UNTRUSTED"),
            Self::CertExpired => tr("ERR_CERT_EXPIRED"),
            Self::NoEntryPoint => tr("ERR_NO_ENTRY_POINT"),
            Self::EmailInvalid => tr("ERR_EMAIL_INVALID"),
            Self::Other(e) => trf("ERR_INTERNAL", &[e]),
        }
    }
}

/// Turns a registration error into what the window says.
pub fn classify_agent(e: &AgentError, pcid: &str) -> ControlError {
    match e {
        AgentError::Link(l) => match l {
            LinkError::Refused { code: ErrorCode::PcidTaken, .. } => ControlError::PcidTaken(pcid.to_string()),
            LinkError::Refused { code: ErrorCode::RegisterDisabled, .. } => ControlError::RegisterDisabled,
            LinkError::Refused { code: ErrorCode::InvalidPcid, .. } => ControlError::PcidInvalid,
            LinkError::Unreachable { addr, .. } => ControlError::GatewayUnreachable(addr.clone()),
            LinkError::Tls { cause, .. } if cause.contains("expired") => ControlError::CertExpired,
            LinkError::Tls { cause, .. } if cause.contains("certificate") => ControlError::CertUntrusted,
            LinkError::Tls { addr, .. } => ControlError::GatewayUnreachable(addr.clone()),
            other => ControlError::Other(other.to_string()),
        },
        AgentError::Settings(s) => ControlError::Other(s.to_string()),
    }
}
