//! Why a change to ThinServer's settings failed, in terms the user can act on:
//! shared by the window and the service's admin port (which sends it back to
//! the window as is, so the window words it in the user's language: see
//! `thin_ui::wording`).

use thin_protocol::messages::ErrorCode;

use crate::link::{LinkError, TlsFailure};
use crate::server_agent::AgentError;

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
    /// A new computer ID needs a password first.
    PasswordFirst,
    /// The new password is too short or too easy to guess.
    WeakPassword(crate::password_policy::WeakPassword),
    /// The company's policy fixes this setting (which rule, why).
    FixedByPolicy(String),
    /// Anything else (detail shown).
    Other(String),
}

/// Turns a registration error into what the window says.
pub fn classify_agent(e: &AgentError, pcid: &str) -> ControlError {
    match e {
        AgentError::Link(l) => match l {
            LinkError::Refused { code: ErrorCode::PcidTaken, .. } => ControlError::PcidTaken(pcid.to_string()),
            LinkError::Refused { code: ErrorCode::RegisterDisabled, .. } => ControlError::RegisterDisabled,
            LinkError::Refused { code: ErrorCode::InvalidPcid, .. } => ControlError::PcidInvalid,
            LinkError::Unreachable { addr, .. } => ControlError::GatewayUnreachable(addr.clone()),
            LinkError::Tls { cause: TlsFailure::Expired, .. } => ControlError::CertExpired,
            LinkError::Tls { cause, .. } if cause.is_certificate() => ControlError::CertUntrusted,
            LinkError::Tls { addr, .. } => ControlError::GatewayUnreachable(addr.clone()),
            other => ControlError::Other(other.to_string()),
        },
        AgentError::Settings(s) => ControlError::Other(s.to_string()),
        AgentError::Policy(why) => ControlError::FixedByPolicy(why.clone()),
    }
}
