//! The company's rules on the office PC: what the gateway sent last
//! ([`GateToServer::Policy`](thin_protocol::messages::GateToServer::Policy)),
//! shared by the control session (which stores it), every tunnel (which
//! applies it) and the service's admin port (which shows it). Only the
//! gateway, over the office PC's own authenticated control session, sets it;
//! it can only make the office PC stricter than its own settings.

use std::sync::{Arc, RwLock};

use thin_protocol::policy::Policy;

use crate::settings::ServerSettings;

/// The rules in force on this office PC (empty until the gateway sends some).
#[derive(Debug, Clone, Default)]
pub struct PolicyCell(Arc<RwLock<Policy>>);

impl PolicyCell {
    /// The rules in force.
    pub fn get(&self) -> Policy {
        self.0.read().expect("policy lock").clone()
    }

    /// Takes the gateway's rules.
    pub fn set(&self, p: Policy) {
        *self.0.write().expect("policy lock") = p;
    }
}

/// Why the office PC may not serve under the rules, worded for its user and
/// the log; `None` when it may.
pub fn serving_refusal(p: &Policy, s: &ServerSettings) -> Option<String> {
    if p.enforce_otp && s.otp_email.is_none() {
        return Some(
            "the company's policy (ENFORCE_OTP) requires a one-time password by e-mail for every connection, and \
             this computer has no mail address for it; set one in ThinServer's window or with \
             `thinsvr otp --email ADDR`"
                .into(),
        );
    }
    None
}

/// Whether the built-in desktop shares the clipboard: the owner's setting
/// (`clipboard` in `thinsvr.toml`, on by default), unless the company's
/// policy turns sharing off (`DISABLE_SHARE`), which wins.
pub fn clipboard_shared(p: &Policy, s: &ServerSettings) -> bool {
    s.clipboard && !p.disable_share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clipboard_is_shared_unless_the_owner_or_the_company_says_no() {
        let mut s = ServerSettings::default();
        let open = Policy::default();
        let closed = Policy { disable_share: true, ..Policy::default() };
        assert!(clipboard_shared(&open, &s), "on by default");
        assert!(!clipboard_shared(&closed, &s), "DISABLE_SHARE turns it off");
        s.clipboard = false;
        assert!(!clipboard_shared(&open, &s));
        assert!(!clipboard_shared(&closed, &s));
        // The setting is written only when it is off.
        assert!(!toml::to_string(&ServerSettings::default()).unwrap().contains("clipboard"));
        assert!(toml::to_string(&s).unwrap().contains("clipboard = false"));
    }

    #[test]
    fn enforced_otp_needs_an_address_and_unknown_checks_fail_closed() {
        let mut s = ServerSettings::default();
        let otp = Policy { enforce_otp: true, ..Policy::default() };
        assert!(serving_refusal(&otp, &s).unwrap().contains("ENFORCE_OTP"));
        s.otp_email = Some("a@example.org".into());
        assert_eq!(serving_refusal(&otp, &s), None);
        assert_eq!(serving_refusal(&Policy::default(), &ServerSettings::default()), None);
        let mac = Policy { enforce_maccheck: true, ..Policy::default() };
        assert_eq!(serving_refusal(&mac, &s), None, "the device check enforces it");
        let inspect = Policy { enforce_inspection: true, ..Policy::default() };
        assert_eq!(serving_refusal(&inspect, &s), None, "the check after the login enforces it");
        let cell = PolicyCell::default();
        cell.clone().set(otp.clone());
        assert_eq!(cell.get(), otp);
    }
}
