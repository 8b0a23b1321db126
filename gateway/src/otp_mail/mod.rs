//! OTP mail: an office PC that asks its users for a one-time password sends the
//! code over its control session (`OtpMail`); the gateway mails it with the
//! `Smtp*` settings of `ThinGate.ini` and answers `OtpMailed`. The office PC,
//! not the gateway, later checks the code the user types.
//!
//! The gateway, not the office PC, decides whether a mail goes out
//! ([`MailGate`]: only for a client logging in, one per client tunnel, within
//! hourly budgets per machine and in total, to allowed domains) and what it
//! says (its own subject and text; `SmtpOtpSystemName` names the system).
//!
//! Neither the code nor `SmtpPassword` reaches a log: the code travels as a
//! [`Secret`], the mail is built here and handed to `lettre` (compiled without
//! its logging), and failures are logged with the computer ID and the mail
//! server's reason only.

mod gate;
mod mailer;

use thin_protocol::messages::GateToServer;
use thin_protocol::secret::Secret;
use tokio::sync::mpsc;
use tracing::{info, warn};

pub use gate::{MailDenied, MailGate, MailTicket, LOGIN_WINDOW};
pub use mailer::{build_message, check_request, MailSetupError, OtpMailRequest, OtpMailer, RequestError, SendError};

/// The answer when `SmtpServerHostname` is unset.
pub const NOT_CONFIGURED: &str = "this gateway has no SMTP server configured (SmtpServerHostname in ThinGate.ini)";

/// Longest validity a mail may state (the office PC says how long its code is
/// valid; the gateway keeps the wording within a day).
pub const MAX_VALID_S: u64 = 86_400;

/// Why `OtpMail` was refused at once.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("this computer is not serving; it cannot have mail sent")]
    NotServing,
    #[error("{NOT_CONFIGURED}")]
    NotConfigured,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Denied(#[from] MailDenied),
}

/// The fields of one `OtpMail` message. The office PC's `system` text is not
/// taken: the subject and body are the gateway's.
#[derive(Debug)]
pub struct MailJob {
    /// To echo in `OtpMailed`.
    pub request_id: u64,
    /// Recipient.
    pub to: String,
    /// Six digits.
    pub code: Secret,
    /// Validity in seconds (kept within 1 s to [`MAX_VALID_S`]).
    pub valid_s: u64,
}

/// The office PC that asks: its MSID and, while serving, its computer ID.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Machine identity (the budget's key).
    pub msid: &'a str,
    /// Computer ID served now; `None` when not serving.
    pub pcid: Option<&'a str>,
}

/// Handles one `OtpMail`: returns the `OtpMailed` refusal to send at once, or
/// `None` when the mail is on its way (its `OtpMailed` then goes to `reply`,
/// the session's outgoing queue).
pub fn dispatch(
    mailer: Option<&OtpMailer>,
    gate: &MailGate,
    who: Requester<'_>,
    job: MailJob,
    reply: mpsc::Sender<Box<GateToServer>>,
) -> Option<GateToServer> {
    let request_id = job.request_id;
    let refuse = |error: Refusal| {
        warn!(pcid = who.pcid.unwrap_or("-"), %error, "OTP mail refused");
        Some(GateToServer::OtpMailed { request_id, error: Some(error.to_string()) })
    };
    let Some(pcid) = who.pcid else { return refuse(Refusal::NotServing) };
    let Some(mailer) = mailer.cloned() else { return refuse(Refusal::NotConfigured) };
    if let Err(e) = check_request(&job.to, &job.code) {
        return refuse(e.into());
    }
    if let Err(e) = gate.allow(who.msid, pcid, &job.to) {
        return refuse(e.into());
    }
    let p = pcid.to_string();
    tokio::spawn(async move {
        let system = mailer.system_name().to_string();
        let valid_s = job.valid_s.clamp(1, MAX_VALID_S);
        let req = OtpMailRequest { to: &job.to, code: &job.code, pcid: &p, system: &system, valid_s };
        let error = match mailer.send(&req).await {
            Ok(()) => {
                info!(pcid = %p, server = %mailer.server(), "OTP mail sent");
                None
            }
            Err(e) => {
                warn!(pcid = %p, error = %e, "OTP mail failed");
                Some(e.to_string())
            }
        };
        let _ = reply.send(Box::new(GateToServer::OtpMailed { request_id, error })).await;
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmtpSsl;
    use lettre::message::Mailbox;

    fn req<'a>(to: &'a str, code: &'a Secret) -> OtpMailRequest<'a> {
        OtpMailRequest { to, code, pcid: "desk-01", system: "Acme\r\nBcc: x@y.z Remote", valid_s: 300 }
    }

    #[test]
    fn the_mail_has_the_code_system_and_validity_and_no_injected_header() {
        let code = Secret::new("042917");
        let from: Mailbox = "otp@example.org".parse().unwrap();
        let text =
            String::from_utf8(build_message(&from, &req("alice@example.org", &code)).unwrap().formatted()).unwrap();
        assert!(text.contains("From: otp@example.org\r\n"), "{text}");
        assert!(text.contains("To: alice@example.org\r\n"), "{text}");
        assert!(text.contains("Subject: AcmeBcc: x@y.z Remote: one-time password for desk-01\r\n"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(text.contains("\r\n\r\n    042917\r\n") && text.contains("valid for 5 minutes"), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: 7bit"), "{text}");
    }

    #[test]
    fn requests_are_checked() {
        let good = Secret::new("123456");
        assert!(check_request("alice@example.org", &good).is_ok());
        for bad in ["12345", "1234567", "12345a", ""] {
            assert!(check_request("alice@example.org", &Secret::new(bad)).is_err(), "{bad}");
        }
        for bad in ["alice", "a@b.c, evil@x.org", "Alice <a@b.c>", "a@b.c\r\nRCPT TO:<x@y.z>", "a b@c.d"] {
            let e = check_request(bad, &good).unwrap_err().to_string();
            assert!(e.contains("address"), "{bad}: {e}");
        }
    }

    #[test]
    fn unset_host_means_no_mailer_and_a_bad_ca_file_stops_the_start() {
        let mut s = crate::config::GateConfig::parse("", std::path::Path::new("/x/ThinGate.ini")).unwrap().smtp;
        assert!(OtpMailer::new(&s).unwrap().is_none());
        s.hostname = Some("smtp.example.org".into());
        s.otp_from = Some("otp@example.org".into());
        s.password = Some(Secret::new("hunter2"));
        s.ssl = SmtpSsl::StartTls;
        let m = OtpMailer::new(&s).unwrap().unwrap();
        assert_eq!(m.server(), "smtp.example.org:587");
        assert!(!format!("{m:?}").contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        s.ca_file = Some(ca);
        let e = OtpMailer::new(&s).unwrap_err().to_string();
        assert!(e.contains("SmtpCaFile") && e.contains("no PEM certificate"), "{e}");
        s.ca_file = Some(dir.path().join("missing.pem"));
        assert!(OtpMailer::new(&s).unwrap_err().to_string().contains("missing.pem"));
    }
}
