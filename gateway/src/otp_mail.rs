//! OTP mail: an office PC that asks its users for a one-time password sends the
//! code over its control session (`OtpMail`); the gateway mails it with the
//! `Smtp*` settings of `ThinGate.ini` and answers `OtpMailed`. The office PC,
//! not the gateway, later checks the code the user types.
//!
//! Neither the code nor `SmtpPassword` reaches a log: the code travels as a
//! [`Secret`], the mail is built here and handed to `lettre` (compiled without
//! its logging), and failures are logged with the computer ID and the mail
//! server's reason only.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thin_protocol::messages::GateToServer;
use thin_protocol::secret::Secret;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{SmtpAuth, SmtpSettings, SmtpSsl};

/// Mails one control session may ask for per [`MAIL_WINDOW`].
pub const MAILS_PER_WINDOW: usize = 10;
/// The window of [`MAILS_PER_WINDOW`].
pub const MAIL_WINDOW: Duration = Duration::from_secs(60);

/// The answer when `SmtpServerHostname` is unset.
pub const NOT_CONFIGURED: &str = "this gateway has no SMTP server configured (SmtpServerHostname in ThinGate.ini)";

/// Why the mail settings cannot be used; the gateway does not start.
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// `SmtpCaFile` cannot be read or holds no certificate.
    #[error("SmtpCaFile {}: {cause}; give a PEM file with the CA certificate(s) of the mail server", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        cause: String,
    },
    /// `SmtpOtpFrom` is not an address lettre accepts.
    #[error("SmtpOtpFrom {from:?}: {cause}; write e.g. otp@example.org")]
    From {
        /// The value.
        from: String,
        /// What is wrong.
        cause: String,
    },
    /// The TLS settings cannot be built.
    #[error("TLS to the mail server {host}: {cause}")]
    Tls {
        /// `SmtpServerHostname`.
        host: String,
        /// What is wrong.
        cause: String,
    },
}

/// Why an office PC's mail request is refused before any mail is built.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The code is not six digits.
    #[error("the one-time password to mail is not six digits")]
    NotSixDigits,
    /// A list, a display name or a line break instead of one address.
    #[error("the OTP address of this computer is not one plain mail address; set it again")]
    NotPlainAddress,
    /// Not a mail address.
    #[error("the OTP address of this computer is not a mail address ({0}); set it again")]
    NotAddress(#[from] lettre::address::AddressError),
}

/// Why one OTP mail was not sent. The message goes to the office PC as it is;
/// it never holds the code or the SMTP password.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request is refused.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// lettre cannot build the mail.
    #[error("the OTP mail cannot be built: {0}")]
    Build(#[from] lettre::error::Error),
    /// The mail server refused or failed.
    #[error("the mail server {server} did not take the mail: {reason}")]
    Refused {
        /// `host:port`.
        server: String,
        /// The server's reason with its causes, on one line.
        reason: String,
    },
    /// No answer within `SmtpTimeout`.
    #[error("the mail server {server} did not take the mail within {ms} ms (SmtpTimeout)")]
    Timeout {
        /// `host:port`.
        server: String,
        /// `SmtpTimeout`.
        ms: u128,
    },
}

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

/// Mails one-time passwords through the configured SMTP server.
#[derive(Clone)]
pub struct OtpMailer {
    smtp: SmtpSettings,
    host: String,
    from: Mailbox,
    tls: Option<TlsParameters>,
}

impl std::fmt::Debug for OtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpMailer").field("host", &self.host).field("port", &self.smtp.port).finish_non_exhaustive()
    }
}

/// One mail to send.
#[derive(Debug)]
pub struct OtpMailRequest<'a> {
    /// Recipient, from the office PC's settings.
    pub to: &'a str,
    /// Six digits.
    pub code: &'a Secret,
    /// Computer ID of the office PC (as the gateway knows it).
    pub pcid: &'a str,
    /// System name for the subject (from the office PC's entry point).
    pub system: &'a str,
    /// How long the code is valid, in seconds.
    pub valid_s: u64,
}

impl OtpMailer {
    /// The mailer for these settings; `None` when `SmtpServerHostname` is unset.
    pub fn new(smtp: &SmtpSettings) -> Result<Option<Self>, MailSetupError> {
        let Some(host) = smtp.hostname.clone() else { return Ok(None) };
        let from_text = smtp.otp_from.clone().unwrap_or_default();
        let from =
            from_text.parse::<Mailbox>().map_err(|e| MailSetupError::From { from: from_text, cause: e.to_string() })?;
        let tls = match smtp.ssl {
            SmtpSsl::None => None,
            SmtpSsl::Smtps | SmtpSsl::StartTls => {
                let mut b = TlsParameters::builder(host.clone());
                if let Some(path) = &smtp.ca_file {
                    let bad = |cause: String| MailSetupError::CaFile { path: path.clone(), cause };
                    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
                    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                        return Err(bad("no PEM certificate in it".into()));
                    }
                    b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))?);
                }
                Some(b.build_rustls().map_err(|e| MailSetupError::Tls { host: host.clone(), cause: e.to_string() })?)
            }
        };
        Ok(Some(Self { smtp: smtp.clone(), host, from, tls }))
    }

    /// `host:port` of the mail server, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.smtp.port)
    }

    /// Sends one mail within `SmtpTimeout`. The error says what went wrong in
    /// words for the user; it never holds the code or the SMTP password.
    pub async fn send(&self, req: &OtpMailRequest<'_>) -> Result<(), SendError> {
        let message = build_message(&self.from, req)?;
        let tls = match (self.smtp.ssl, &self.tls) {
            (SmtpSsl::Smtps, Some(p)) => Tls::Wrapper(p.clone()),
            (SmtpSsl::StartTls, Some(p)) => Tls::Required(p.clone()),
            _ => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.smtp.port)
            .tls(tls)
            .timeout(Some(self.smtp.timeout));
        if let Some(user) = &self.smtp.username {
            let password = self.smtp.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
            let mechanism = match self.smtp.auth_type {
                SmtpAuth::Login => Mechanism::Login,
                SmtpAuth::Plain => Mechanism::Plain,
            };
            b = b.credentials(Credentials::new(user.clone(), password)).authentication(vec![mechanism]);
        }
        let transport = b.build();
        let server = self.server();
        match tokio::time::timeout(self.smtp.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError::Refused { server, reason: explain(&e) }),
            Err(_) => Err(SendError::Timeout { server, ms: self.smtp.timeout.as_millis() }),
        }
    }
}

/// The full text of a lettre error and its causes, on one line.
fn explain(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        src = s.source();
    }
    text
}

/// Checks what an office PC asks for: one plain address, a six-digit code.
pub fn check_request(to: &str, code: &Secret) -> Result<Mailbox, RequestError> {
    let c = code.expose();
    if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::NotSixDigits);
    }
    if to.len() > 254 || to.contains(['<', '>', ',', '\r', '\n']) {
        return Err(RequestError::NotPlainAddress);
    }
    Ok(Mailbox::new(None, to.parse::<lettre::Address>()?))
}

/// Printable, at most 64 characters; a default when nothing is left.
fn clean_system(system: &str) -> String {
    let s: String = system.chars().filter(|c| !c.is_control()).take(64).collect();
    let s = s.trim();
    if s.is_empty() {
        "Thin Telework".into()
    } else {
        s.to_string()
    }
}

/// The mail: plain text, subject with the system name and the computer ID.
pub fn build_message(from: &Mailbox, req: &OtpMailRequest<'_>) -> Result<Message, SendError> {
    let to = check_request(req.to, req.code)?;
    let system = clean_system(req.system);
    // Short lines, so that the mail goes out as 7-bit text that every client shows as is.
    let body = format!(
        "One-time password for the computer \"{pcid}\":\n\
         \n    {code}\n\n\
         It is valid for {valid}.\n\
         If you did not try to connect just now, someone else\n\
         knows the password of this computer: change it.\n",
        pcid = req.pcid,
        code = req.code.expose(),
        valid = thin_protocol::messages::validity_text(req.valid_s),
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("{system}: one-time password for {}", req.pcid))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(SendError::from)
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
