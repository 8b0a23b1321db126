//! [`OtpMailer`]: builds one OTP mail and hands it to the configured SMTP
//! server with `lettre`.

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thin_protocol::secret::Secret;

use crate::config::{SmtpAuth, SmtpSettings, SmtpSsl};

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
    /// System name for the subject: the gateway's `SmtpOtpSystemName`, never
    /// text of the office PC.
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

    /// The system name of the mail's subject (`SmtpOtpSystemName`).
    pub fn system_name(&self) -> &str {
        self.smtp.system_name.as_deref().unwrap_or(DEFAULT_SYSTEM)
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

/// The system name when `SmtpOtpSystemName` is unset.
const DEFAULT_SYSTEM: &str = "Thin Telework";

/// Printable, at most 64 characters; a default when nothing is left.
fn clean_system(system: &str) -> String {
    let s: String = system.chars().filter(|c| !c.is_control()).take(64).collect();
    let s = s.trim();
    if s.is_empty() {
        DEFAULT_SYSTEM.into()
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
