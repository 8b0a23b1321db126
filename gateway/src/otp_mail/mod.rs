//! OTP mail: an office PC that asks its users for a one-time password sends the
//! code over its control session (`OtpMail`); the gateway mails it with the
//! `Smtp*` settings of `ThinGate.ini` and answers `OtpMailed`. The office PC,
//! not the gateway, later checks the code the user types.
//!
//! Neither the code nor `SmtpPassword` reaches a log: the code travels as a
//! [`Secret`], the mail is built here and handed to `lettre` (compiled without
//! its logging), and failures are logged with the computer ID and the mail
//! server's reason only.

mod mailer;

use std::collections::VecDeque;
use std::time::Duration;

use thin_protocol::messages::GateToServer;
use thin_protocol::secret::Secret;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

pub use mailer::{build_message, check_request, MailSetupError, OtpMailRequest, OtpMailer, RequestError, SendError};

/// Mails one control session may ask for per [`MAIL_WINDOW`].
pub const MAILS_PER_WINDOW: usize = 10;
/// The window of [`MAILS_PER_WINDOW`].
pub const MAIL_WINDOW: Duration = Duration::from_secs(60);

/// The answer when `SmtpServerHostname` is unset.
pub const NOT_CONFIGURED: &str = "this gateway has no SMTP server configured (SmtpServerHostname in ThinGate.ini)";

/// Why `OtpMail` was refused at once.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("this computer is not serving; it cannot have mail sent")]
    NotServing,
    #[error("{NOT_CONFIGURED}")]
    NotConfigured,
    #[error(
        "this computer asked for more than {MAILS_PER_WINDOW} one-time password mails within {} s; wait a minute",
        MAIL_WINDOW.as_secs()
    )]
    OverBudget,
}

/// The fields of one `OtpMail` message.
#[derive(Debug)]
pub struct MailJob {
    /// To echo in `OtpMailed`.
    pub request_id: u64,
    /// Recipient.
    pub to: String,
    /// Six digits.
    pub code: Secret,
    /// System name for the subject.
    pub system: String,
    /// Validity in seconds.
    pub valid_s: u64,
}

/// Handles one `OtpMail` of a control session serving `pcid`: returns the
/// `OtpMailed` refusal to send at once, or `None` when the mail is on its way
/// (its `OtpMailed` then goes to `reply`, the session's outgoing queue).
pub fn dispatch(
    mailer: Option<&OtpMailer>,
    pcid: Option<String>,
    budget: &mut MailBudget,
    job: MailJob,
    reply: mpsc::Sender<GateToServer>,
) -> Option<GateToServer> {
    let request_id = job.request_id;
    let refuse = |error: Refusal| {
        warn!(pcid = pcid.as_deref().unwrap_or("-"), %error, "OTP mail refused");
        Some(GateToServer::OtpMailed { request_id, error: Some(error.to_string()) })
    };
    let Some(p) = pcid.clone() else {
        return refuse(Refusal::NotServing);
    };
    let Some(mailer) = mailer.cloned() else { return refuse(Refusal::NotConfigured) };
    if !budget.allow() {
        return refuse(Refusal::OverBudget);
    }
    tokio::spawn(async move {
        let req = OtpMailRequest { to: &job.to, code: &job.code, pcid: &p, system: &job.system, valid_s: job.valid_s };
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
        let _ = reply.send(GateToServer::OtpMailed { request_id, error }).await;
    });
    None
}

/// At most [`MAILS_PER_WINDOW`] mails per [`MAIL_WINDOW`] for one control
/// session, so that a registered machine cannot make the gateway a mail cannon.
#[derive(Debug, Default)]
pub struct MailBudget {
    sent: VecDeque<Instant>,
}

impl MailBudget {
    /// Counts a mail if the budget allows it.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        while self.sent.front().is_some_and(|t| now.duration_since(*t) >= MAIL_WINDOW) {
            self.sent.pop_front();
        }
        if self.sent.len() >= MAILS_PER_WINDOW {
            return false;
        }
        self.sent.push_back(now);
        true
    }
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

    #[tokio::test(start_paused = true)]
    async fn the_budget_refills_after_the_window() {
        let mut b = MailBudget::default();
        for _ in 0..MAILS_PER_WINDOW {
            assert!(b.allow());
        }
        assert!(!b.allow());
        tokio::time::advance(MAIL_WINDOW).await;
        assert!(b.allow());
    }
}
