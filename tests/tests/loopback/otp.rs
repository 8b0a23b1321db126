//! One-time passwords by e-mail, end to end: a real SMTP server (aiosmtpd)
//! receives the gateway's mail, the test reads the code from the Maildir and
//! types it; wrong, used-up and expired codes, mail failures (nothing listening,
//! no SMTP configured, untrusted certificate, wrong SMTP password), STARTTLS
//! and SMTPS with a test CA and SMTP AUTH; and neither the code nor the SMTP
//! password in any log of the gateway or the apps.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_e2e::procs::{self, Proc};
use thin_e2e::smtp::{code_in, next_mail, SmtpServer, SmtpTls};
use thin_e2e::*;
use thin_protocol::messages::ErrorCode;
use thin_protocol::secret::Secret;
use thin_tunnel::client_agent::{self, ClientError, ClientTunnel};
use thin_tunnel::e2e::LoginError;
use thin_tunnel::link::Link;
use thin_tunnel::otp::{OtpPolicy, OtpRequest};
use thin_tunnel::settings::ConfigDir;

const EMAIL: &str = "alice@example.org";
const SMTP_PASSWORD: &str = "Smtp-Pa55-never-logged";

/// Asserts that `secret` is in no log line of this test binary (every test in
/// it logs into one capture at TRACE, see `thin_e2e::logs`). It is looked for
/// as a token of its own: the capture of all the binary's tests holds
/// megabytes of hex IDs and decimal figures, in which a random six-digit code
/// sometimes occurs by chance as part of a longer run (a failure seen once in a
/// full run of the binary); a logged code has something else than a letter or digit on
/// each side (`code=123456`, `"123456"`).
fn assert_not_logged(what: &str, secret: &str) {
    let text = thin_e2e::logs::captured();
    assert!(text.contains("OTP mail sent") && text.contains("TRACE"), "the capture sees the gateway at TRACE");
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let logged = text
        .match_indices(secret)
        .find(|(at, _)| !alnum(text[..*at].chars().next_back()) && !alnum(text[at + secret.len()..].chars().next()));
    if let Some((at, _)) = logged {
        let line = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
        panic!("{what} {secret:?} is in the log: {}", &text[line..end]);
    }
}

/// `ThinGate.ini` lines for the test SMTP server.
pub(crate) fn smtp_ini(port: u16, ssl: u8, extra: &str) -> String {
    format!(
        "SmtpServerHostname 127.0.0.1\nSmtpServerPort {port}\nSmtpOtpFrom otp@example.org\nSmtpOtpSystemName Test System\nSmtpSslType {ssl}\nSmtpTimeout 5000\n{extra}"
    )
}

/// Registers an office PC (password "pw"), turns OTP on for [`EMAIL`], and runs it.
async fn otp_pc(gw: &TestGateway, pcid: &str, policy: OtpPolicy) -> OfficePc {
    gw.office_pc(pcid, "pw")
        .otp_policy(policy)
        .settings(|s| {
            s.otp_email = Some(EMAIL.into());
            s.lockout_attempts = 1000;
        })
        .await
}

/// What the test user types at each question.
#[derive(Debug, Clone, Copy)]
enum Type {
    /// The code from the newest mail.
    Code,
    /// A six-digit code that is not the one mailed.
    Wrong,
    /// Nothing, ever (the server must give up).
    Nothing,
}

/// A user who reads the mail and types: an OTP provider for the tests.
#[derive(Clone)]
struct Typist {
    new_dir: PathBuf,
    plan: Arc<Mutex<VecDeque<Type>>>,
    seen: Arc<tokio::sync::Mutex<HashSet<String>>>,
    code: Arc<Mutex<Option<String>>>,
    asked: Arc<Mutex<Vec<OtpRequest>>>,
}

impl Typist {
    fn new(smtp: &SmtpServer) -> Self {
        Self {
            new_dir: smtp.new_mail_dir(),
            plan: Arc::default(),
            seen: Arc::default(),
            code: Arc::default(),
            asked: Arc::default(),
        }
    }

    /// Plans the answers of the next login.
    fn will_type(&self, plan: &[Type]) {
        *self.plan.lock().unwrap() = plan.iter().copied().collect();
        self.asked.lock().unwrap().clear();
    }

    fn asked(&self) -> Vec<(u32, bool)> {
        self.asked.lock().unwrap().iter().map(|q| (q.tries_left, q.retry)).collect()
    }

    fn last_code(&self) -> String {
        self.code.lock().unwrap().clone().expect("a code was mailed")
    }

    async fn answer(self, req: OtpRequest) -> Option<Secret> {
        self.asked.lock().unwrap().push(req.clone());
        let step = self.plan.lock().unwrap().pop_front().unwrap_or(Type::Nothing);
        if !req.retry {
            let mail = next_mail(&self.new_dir, &mut *self.seen.lock().await, Duration::from_secs(20)).await;
            *self.code.lock().unwrap() = Some(code_in(&mail));
        }
        let code = self.last_code();
        match step {
            Type::Code => Some(Secret::new(code)),
            Type::Wrong => Some(Secret::new(format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000))),
            Type::Nothing => futures_pending().await,
        }
    }

    async fn connect(&self, link: &Link, pcid: &str, plan: &[Type]) -> Result<ClientTunnel, ClientError> {
        self.will_type(plan);
        let me = self.clone();
        let provider = move |req: OtpRequest| me.clone().answer(req);
        client_agent::connect_with_otp(link, pcid, &Secret::new("pw"), &provider).await
    }
}

async fn futures_pending() -> Option<Secret> {
    std::future::pending().await
}

fn refusal(r: Result<ClientTunnel, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Login(LoginError::Refused { code, message, .. })) => (code, message),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a session"),
    }
}

async fn echo_through(t: &ClientTunnel, seed: u64) {
    assert_tunnel_echo(t, 256 * 1024, seed).await;
}

/// A plain-text SMTP server and a gateway that mails through it; logs captured
/// (see `assert_not_logged`).
async fn plain_smtp_and_gateway() -> (SmtpServer, TestGateway) {
    init_logging();
    let pki = Pki::new();
    let smtp = SmtpServer::start(SmtpTls::None, &pki.cert_pem, &pki.key_pem, None);
    let gw = TestGateway::with_ini(&smtp_ini(smtp.port, 0, "")).await;
    (smtp, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_mailed_code_completes_a_session_that_relays_bytes() {
    let (smtp, gw) = plain_smtp_and_gateway().await;
    let pc = otp_pc(&gw, "otp-desk", OtpPolicy::default()).await;
    let rows = thingate::thinstat::rows(&gw.gateway.sessions);
    assert_eq!(rows[0].server_mask64 & 64, 64, "ServerMask64 announces OTP");

    let typist = Typist::new(&smtp);
    let tunnel = typist.connect(&gw.link, "otp-desk", &[Type::Code]).await.unwrap();
    echo_through(&tunnel, 1).await;
    let q = typist.asked.lock().unwrap()[0].clone();
    assert_eq!((q.destination.as_str(), q.tries_left, q.valid_s, q.retry), ("a***@example.org", 20, 300, false));
    let mail = smtp.mails().pop().unwrap();
    for want in [
        "From: otp@example.org",
        "To: alice@example.org",
        "Subject: Test System: one-time password for otp-desk",
        "valid for 5 minutes",
    ] {
        assert!(mail.contains(want), "{want:?} missing in\n{mail}");
    }
    let code = typist.last_code();
    assert!(mail.contains(&format!("\n    {code}")), "{mail}");

    // A caller that cannot ask for the code gets a clear error.
    let r = gw.try_connect("otp-desk", "pw").await;
    match r {
        Err(e @ ClientError::Login(LoginError::OtpNotGiven { .. })) => {
            assert!(e.to_string().contains("one-time password sent to a***@example.org"), "{e}")
        }
        other => panic!("{:?}", other.err()),
    }
    // The setting is read per session: off again, no code is asked for.
    pc.edit_settings(|s| s.otp_email = None);
    let plain = gw.connect("otp-desk", "pw").await;
    echo_through(&plain, 2).await;
    drop(tunnel);
    gw.shutdown().await;
    assert_not_logged("the code", &code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_codes_count_down_and_after_twenty_the_session_is_refused() {
    let (smtp, gw) = plain_smtp_and_gateway().await;
    let _pc = otp_pc(&gw, "otp-tries", OtpPolicy::default()).await;
    let typist = Typist::new(&smtp);

    let t = typist.connect(&gw.link, "otp-tries", &[Type::Wrong, Type::Wrong, Type::Code]).await.unwrap();
    echo_through(&t, 3).await;
    assert_eq!(typist.asked(), [(20, false), (19, true), (18, true)]);
    let first = typist.last_code();

    let r = typist.connect(&gw.link, "otp-tries", &[Type::Wrong; 21]).await;
    let (code, message) = refusal(r);
    assert_eq!(code, ErrorCode::WrongOtp);
    assert!(message.contains("all 20 tries are used up") && message.contains("connect again"), "{message}");
    let expected: Vec<(u32, bool)> = (1..=20).rev().map(|n| (n, n != 20)).collect();
    assert_eq!(typist.asked(), expected, "20 questions, tries counting down, no 21st");
    assert_ne!(typist.last_code(), first, "every session gets a new code");
    assert_eq!(smtp.mails().len(), 2);
    gw.shutdown().await;
    assert_not_logged("the code", &first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_code_is_refused() {
    let (smtp, gw) = plain_smtp_and_gateway().await;
    let policy = OtpPolicy { validity: Duration::from_millis(1500), max_tries: 20 };
    let _pc = otp_pc(&gw, "otp-late", policy).await;
    let typist = Typist::new(&smtp);
    let started = std::time::Instant::now();
    let (code, message) = refusal(typist.connect(&gw.link, "otp-late", &[Type::Nothing]).await);
    assert_eq!(code, ErrorCode::OtpExpired);
    assert!(message.contains("has expired") && message.contains("connect again"), "{message}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "not before the validity ends");
    assert_eq!(typist.asked().len(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_reachable_or_configured_smtp_server_is_a_clear_error() {
    init_logging(); // captures every log line, see `assert_not_logged`
    let port = free_port(); // nothing listens there
    let gw = TestGateway::with_ini(&smtp_ini(port, 0, "")).await;
    let _pc = otp_pc(&gw, "otp-nomail", OtpPolicy::default()).await;
    let asked = Arc::new(Mutex::new(0));
    let a = asked.clone();
    let provider = move |_req: OtpRequest| {
        *a.lock().unwrap() += 1;
        async { Some(Secret::new("123456")) }
    };
    let r = client_agent::connect_with_otp(&gw.link, "otp-nomail", &Secret::new("pw"), &provider).await;
    let (code, message) = refusal(r);
    assert_eq!(code, ErrorCode::OtpMailFailed);
    assert!(message.contains("could not have the one-time password mailed"), "{message}");
    assert!(message.contains(&format!("the mail server 127.0.0.1:{port} did not take the mail")), "{message}");
    assert!(message.to_lowercase().contains("connection refused"), "{message}");
    gw.shutdown().await;

    let gw = TestGateway::start().await;
    let _pc = otp_pc(&gw, "otp-nosmtp", OtpPolicy::default()).await;
    let r = client_agent::connect_with_otp(&gw.link, "otp-nosmtp", &Secret::new("pw"), &provider).await;
    let (code, message) = refusal(r);
    assert_eq!(code, ErrorCode::OtpMailFailed);
    assert!(
        message.ends_with("this gateway has no SMTP server configured (SmtpServerHostname in ThinGate.ini)"),
        "{message}"
    );
    assert_eq!(*asked.lock().unwrap(), 0, "the user is never asked for a code that was not sent");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn starttls_and_smtps_with_a_test_ca_and_smtp_auth() {
    init_logging(); // captures every log line, see `assert_not_logged`
    let pki = Pki::new();
    let ca = tempfile::tempdir().unwrap();
    let ca_file = ca.path().join("smtp-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let auth = format!("SmtpUsername mailer\nSmtpPassword {SMTP_PASSWORD}\n");
    let ca_line = format!("SmtpCaFile {}\n", ca_file.display());
    let mut codes = Vec::new();
    for (tls, ssl, auth_type, mech) in [(SmtpTls::StartTls, 2, 0, "LOGIN"), (SmtpTls::Smtps, 1, 1, "PLAIN")] {
        let mut smtp = SmtpServer::start(tls, &pki.cert_pem, &pki.key_pem, Some(("mailer", SMTP_PASSWORD)));
        let extra = format!("{auth}{ca_line}SmtpAuthType {auth_type}\n");
        let gw = TestGateway::with_ini(&smtp_ini(smtp.port, ssl, &extra)).await;
        let _pc = otp_pc(&gw, "otp-tls", OtpPolicy::default()).await;
        let typist = Typist::new(&smtp);
        let t = typist.connect(&gw.link, "otp-tls", &[Type::Code]).await.unwrap();
        echo_through(&t, 4).await;
        codes.push(typist.last_code());
        tokio::task::block_in_place(|| smtp.wait_line(&format!("auth {mech} ok"), Duration::from_secs(10)));
        drop(t);
        gw.shutdown().await;

        // Without the test CA the mail server's certificate is not trusted.
        let gw = TestGateway::with_ini(&smtp_ini(smtp.port, ssl, &format!("{auth}SmtpAuthType {auth_type}\n"))).await;
        let _pc = otp_pc(&gw, "otp-tls", OtpPolicy::default()).await;
        let (code, message) = refusal(typist.connect(&gw.link, "otp-tls", &[Type::Code]).await);
        assert_eq!(code, ErrorCode::OtpMailFailed);
        assert!(message.to_lowercase().contains("certificate"), "{mech}: {message}");
        gw.shutdown().await;
    }

    // A wrong SMTP password: the mail server's refusal, and no password in it.
    let mut smtp = SmtpServer::start(SmtpTls::StartTls, &pki.cert_pem, &pki.key_pem, Some(("mailer", "other")));
    let gw = TestGateway::with_ini(&smtp_ini(smtp.port, 2, &format!("{auth}{ca_line}"))).await;
    let _pc = otp_pc(&gw, "otp-auth", OtpPolicy::default()).await;
    let (code, message) = refusal(Typist::new(&smtp).connect(&gw.link, "otp-auth", &[Type::Code]).await);
    assert_eq!(code, ErrorCode::OtpMailFailed);
    assert!(message.contains("535") && !message.contains(SMTP_PASSWORD), "{message}");
    tokio::task::block_in_place(|| smtp.wait_line("auth LOGIN failed", Duration::from_secs(10)));
    gw.shutdown().await;

    assert_not_logged("the SMTP password", SMTP_PASSWORD);
    for c in &codes {
        assert_not_logged("the code", c);
    }
}

fn read_all(dir: &Path) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_file() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binaries_read_the_code_from_stdin_and_log_neither_code_nor_smtp_password() {
    let pki = Pki::new();
    let smtp = SmtpServer::start(SmtpTls::StartTls, &pki.cert_pem, &pki.key_pem, Some(("mailer", SMTP_PASSWORD)));
    let g = GateDir::new(&smtp_ini(
        smtp.port,
        2,
        &format!("SmtpUsername mailer\nSmtpPassword {SMTP_PASSWORD}\nSmtpCaFile ca.pem\nSaveLog 1\n"),
    ));
    std::fs::write(g.path("ca.pem"), &pki.ca_pem).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = |name: &str| logs.path().join(name);
    let (mut gate, _) = Proc::spawn_interactive(g.run_command(&[("RUST_LOG", "trace")]), &log("thingate.err"));
    let addr: SocketAddr = gate.wait_line("listening on ", Duration::from_secs(20)).parse().unwrap();
    let ep = g.entry_point(addr);
    let cfg = tempfile::tempdir().unwrap();
    let thinsvr = |args: &[&str]| {
        let mut c = procs::thinsvr(&ep, cfg.path(), args);
        c.env("RUST_LOG", "trace");
        c
    };
    let (st, err) =
        Proc::spawn(thinsvr(&["register", "--pcid", "cli-otp", "--password-stdin"]), Some("otp cli copper lantern\n"))
            .finish(Duration::from_secs(30));
    assert!(st.success(), "{err}");
    let (st, err) = Proc::spawn(thinsvr(&["otp", "--email", "bob@"]), None).finish(Duration::from_secs(10));
    assert!(!st.success() && err.contains("\"bob@\" is not a mail address"), "{err}");
    let mut on = Proc::spawn(thinsvr(&["otp", "--email", "bob@example.org"]), None);
    on.wait_line("one-time passwords on", Duration::from_secs(10));
    assert_eq!(ConfigDir(cfg.path().into()).settings().unwrap().otp_email.as_deref(), Some("bob@example.org"));
    let target = echo_server().await;
    let (mut svr, _) = Proc::spawn_interactive(thinsvr(&["run", "--target", &target.to_string()]), &log("thinsvr.err"));
    tokio::task::block_in_place(|| svr.wait_line("online as cli-otp", Duration::from_secs(20)));

    let mut conn = procs::thinclient_connect(&ep, "cli-otp");
    conn.env("RUST_LOG", "trace");
    let (mut cli, mut stdin) = Proc::spawn_interactive(conn, &log("thinclient.err"));
    stdin.write_all(b"otp cli copper lantern\n").unwrap();
    stdin.flush().unwrap();
    let mail = next_mail(&smtp.new_mail_dir(), &mut HashSet::new(), Duration::from_secs(30)).await;
    let code = code_in(&mail);
    assert!(mail.contains("To: bob@example.org"), "{mail}");
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 7) % 1_000_000);
    stdin.write_all(format!("{wrong}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let prompts = log("thinclient.err");
    wait_for("the prompt after a wrong code", Duration::from_secs(20), || {
        let seen = read(&prompts).contains("The one-time password is wrong. 19 tries left.");
        async move { seen.then_some(()) }
    })
    .await;
    stdin.write_all(format!("{code}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let local: SocketAddr =
        tokio::task::block_in_place(|| cli.wait_line("listening on ", Duration::from_secs(30))).parse().unwrap();
    assert_tcp_echo(local, 1 << 20, 5).await;
    let client_err = read(&prompts);
    assert!(client_err.contains("A one-time password was sent to b***@example.org."), "{client_err}");
    assert!(client_err.contains("One-time password (sent to your e-mail):"), "{client_err}");

    for p in [&mut cli, &mut svr, &mut gate] {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    let gate_log = read_all(&g.path("gate_log"));
    assert!(gate_log.contains("OTP mail sent"), "{gate_log}");
    let all = [gate_log, read(&log("thingate.err")), read(&log("thinsvr.err")), client_err, svr.seen.join("\n")];
    let all = all.join("\n");
    assert!(all.contains("DEBUG") || all.contains("TRACE"), "debug logging was on");
    assert!(!all.contains(&code), "the code {code} is in a log");
    assert!(!all.contains(&wrong), "the typed code {wrong} is in a log");
    assert!(!all.contains(SMTP_PASSWORD), "the SMTP password is in a log");
}
