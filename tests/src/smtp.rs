//! A real SMTP server for the OTP tests: Debian's aiosmtpd (`python3-aiosmtpd`,
//! installed by `scripts/setup.sh`) driven by `tests/fixtures/smtp_server.py`,
//! on 127.0.0.1 and a free port, storing every mail in a Maildir.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::procs::Proc;

/// Transport security of the test SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text.
    None,
    /// STARTTLS required.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Smtps,
}

/// A running SMTP server; stopped on drop.
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Holds the Maildir, certificate and log.
    pub dir: tempfile::TempDir,
    proc: Proc,
}

/// The Python that has aiosmtpd (Debian's, even when another python3 comes first on PATH).
fn python() -> String {
    for p in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(p).args(["-c", "import aiosmtpd"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return p.to_string();
        }
    }
    panic!("no python3 with aiosmtpd: run scripts/setup.sh (it installs python3-aiosmtpd)");
}

impl SmtpServer {
    /// Starts a server. With TLS it presents `cert_pem`/`key_pem`; with `auth`
    /// (user, password) it requires SMTP AUTH.
    pub fn start(tls: SmtpTls, cert_pem: &str, key_pem: &str, auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smtp_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).arg("--maildir").arg(dir.path().join("Maildir"));
        if tls != SmtpTls::None {
            std::fs::write(dir.path().join("smtp.cer"), cert_pem).unwrap();
            std::fs::write(dir.path().join("smtp.key"), key_pem).unwrap();
            cmd.args(["--tls", if tls == SmtpTls::StartTls { "starttls" } else { "smtps" }]);
            cmd.arg("--cert").arg(dir.path().join("smtp.cer")).arg("--key").arg(dir.path().join("smtp.key"));
        }
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let (mut proc, _stdin) = Proc::spawn_interactive(cmd, &dir.path().join("smtp.log"));
        let port = proc.wait_line("port ", Duration::from_secs(30)).parse().expect("port number");
        Self { port, dir, proc }
    }

    /// The Maildir's folder of new mail.
    pub fn new_mail_dir(&self) -> PathBuf {
        self.dir.path().join("Maildir").join("new")
    }

    /// Every mail received so far.
    pub fn mails(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.new_mail_dir()) else { return Vec::new() };
        rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect()
    }

    /// Waits (blocking) for a stdout line of the server starting with `prefix`,
    /// e.g. `auth LOGIN ok`.
    pub fn wait_line(&mut self, prefix: &str, within: Duration) -> String {
        self.proc.wait_line(prefix, within)
    }

    /// What the server logged on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtp.log")).unwrap_or_default()
    }
}

/// Waits for a mail in `new_dir` whose file name is not in `seen`; records
/// and returns it.
pub async fn next_mail(new_dir: &Path, seen: &mut HashSet<String>, within: Duration) -> String {
    let (name, text) = crate::wait_for("an OTP mail", within, || {
        let found = std::fs::read_dir(new_dir).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .find(|(n, _)| !seen.contains(n))
                .and_then(|(n, p)| Some((n, std::fs::read_to_string(p).ok()?)))
        });
        async move { found }
    })
    .await;
    seen.insert(name);
    text
}

/// The six-digit code on a line of its own in an OTP mail.
pub fn code_in(mail: &str) -> String {
    mail.lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no six-digit line in the mail:\n{mail}"))
        .to_string()
}

/// An office PC on `gw` (computer ID `pcid`, password "pw") that asks for a
/// one-time password by mail to `email`, and a client that logs in to it
/// typing the code from the mail that `smtp` received: the office PC, the
/// client's tunnel and the mail.
pub async fn login_with_mailed_code(
    gw: &crate::TestGateway,
    smtp: &SmtpServer,
    pcid: &str,
    email: &str,
) -> (crate::OfficePc, thin_tunnel::client_agent::ClientTunnel, String) {
    use std::sync::{Arc, Mutex};
    use thin_protocol::secret::Secret;
    let email = email.to_string();
    let pc = gw
        .office_pc(pcid, "pw")
        .otp_policy(thin_tunnel::otp::OtpPolicy::default())
        .settings(move |s| s.otp_email = Some(email))
        .await;
    let new_dir = smtp.new_mail_dir();
    let mail = Arc::new(Mutex::new(None::<String>));
    let got = mail.clone();
    let provider = move |req: thin_tunnel::otp::OtpRequest| {
        let (new_dir, got) = (new_dir.clone(), got.clone());
        async move {
            assert!(!req.retry, "the mailed code was refused");
            let text = next_mail(&new_dir, &mut HashSet::new(), Duration::from_secs(20)).await;
            let code = code_in(&text);
            *got.lock().unwrap() = Some(text);
            Some(Secret::new(code))
        }
    };
    let tunnel = thin_tunnel::client_agent::connect_with_otp(&gw.link, pcid, &Secret::new("pw"), &provider)
        .await
        .unwrap_or_else(|e| panic!("login with the mailed code: {e}\nSMTP server: {}", smtp.log()));
    let text = mail.lock().unwrap().take().expect("a mail was read");
    (pc, tunnel, text)
}
