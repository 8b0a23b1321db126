//! The end-to-end login inside a paired pipe: the client proves the password to
//! the server with OPAQUE (the gateway only copies the bytes), the server
//! enforces its lockout, asks for a one-time password sent by e-mail when it is
//! set up to, and answers `Ready` with a MAC over the whole login transcript.
//! Both ends then derive the tunnel's record keys ([`crate::seal::Keys`]) from
//! the session key and that transcript.

use std::time::Duration;

use thin_protocol::auth::{AuthError, ClientAuth, PasswordFile, ServerAuth, SessionKey};
use thin_protocol::frame::{read_frame, write_frame, FrameError, FrameReader};
use thin_protocol::messages::{E2e, ErrorCode};
use thin_protocol::secret::Secret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::lockout::{Lockout, Refusal};
use crate::otp::{Challenge, OtpPolicy, OtpProvider, OtpRequest, Verdict};
use crate::otp_mail::{MailError, OtpSender};
use crate::seal::{Keys, Role};

const CONFIRM_LABEL: &str = "thintelework e2e v2 confirm";
const READY_TEXT: &[u8] = b"the office PC completed this login";

/// Every login message in both directions, each direction hashed on its own
/// (so that `Wait` frames crossing in flight cannot make the ends disagree;
/// `Wait` carries nothing and is left out). Both ends derive the record keys
/// and the `Ready` MAC from it: a relay that altered, dropped or added any
/// message of the login leaves the two ends with different keys.
struct Transcript {
    c2s: ring::digest::Context,
    s2c: ring::digest::Context,
}

impl Transcript {
    fn new() -> Self {
        Self {
            c2s: ring::digest::Context::new(&ring::digest::SHA256),
            s2c: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    fn note(ctx: &mut ring::digest::Context, m: &E2e) {
        if matches!(m, E2e::Wait) {
            return;
        }
        let bytes = serde_json::to_vec(m).expect("E2e messages serialize");
        ctx.update(&(bytes.len() as u32).to_be_bytes());
        ctx.update(&bytes);
    }

    fn c2s(&mut self, m: &E2e) {
        Self::note(&mut self.c2s, m)
    }

    fn s2c(&mut self, m: &E2e) {
        Self::note(&mut self.s2c, m)
    }

    fn hash(&self) -> Vec<u8> {
        let mut h = self.c2s.clone().finish().as_ref().to_vec();
        h.extend_from_slice(self.s2c.clone().finish().as_ref());
        h
    }
}

fn ready_mac(key: &SessionKey, transcript: &[u8]) -> ring::hmac::Tag {
    let k = key.expand(transcript, CONFIRM_LABEL);
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k[..]), READY_TEXT)
}

fn ready_ok(key: &SessionKey, transcript: &[u8], confirm_hex: &str) -> bool {
    let Ok(mac) = hex::decode(confirm_hex) else { return false };
    let k = key.expand(transcript, CONFIRM_LABEL);
    ring::hmac::verify(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k[..]), READY_TEXT, &mac).is_ok()
}

/// Longest wait for the gateway to confirm an OTP mail.
pub const MAIL_WAIT: Duration = Duration::from_secs(60);

/// How an end-to-end login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The password is wrong.
    #[error("wrong password")]
    WrongPassword,
    /// The server refused (lockout, wrong or expired one-time password, mail failed, ...).
    #[error("{message}")]
    Refused {
        /// Reason code.
        code: ErrorCode,
        /// Text from the server.
        message: String,
        /// Seconds to wait.
        retry_after_s: Option<u64>,
    },
    /// The server asks for a one-time password and the caller gave none.
    #[error("the computer asks for the one-time password sent to {destination}, and none was given")]
    OtpNotGiven {
        /// Where the code was sent (masked).
        destination: String,
    },
    /// The server's confirmation did not verify: not the server that owns the record.
    #[error("the computer that answered could not prove it is the one registered with this password")]
    BadConfirm,
    /// Broken pipe, timeout or malformed message.
    #[error("login failed: {0}")]
    Protocol(String),
}

impl From<FrameError> for LoginError {
    fn from(e: FrameError) -> Self {
        LoginError::Protocol(e.to_string())
    }
}

/// Timing of a login.
#[derive(Debug, Clone, Copy)]
pub struct LoginTimes {
    /// Longest wait for each answer of the other side.
    pub answer: Duration,
    /// How often to send `Wait` while a person or a mail server is slow (the
    /// tunnel keepalive), so that the gateway's relay stays open.
    pub keepalive: Duration,
    /// Silence after which the other side is considered gone (the tunnel timeout).
    pub idle: Duration,
}

impl LoginTimes {
    /// Waits that may span a `Wait` interval.
    fn long(&self) -> Duration {
        self.answer.max(self.idle)
    }
}

/// The one-time password step of a server that asks for one.
pub struct OtpCheck<'a> {
    /// Where the code is mailed.
    pub to: &'a str,
    /// Validity and tries.
    pub policy: OtpPolicy,
    /// Who has it mailed (the gateway, through the control session).
    pub sender: &'a dyn OtpSender,
}

async fn recv<S: AsyncRead + Unpin>(s: &mut S, t: Duration) -> Result<E2e, LoginError> {
    tokio::time::timeout(t, read_frame::<E2e, _>(s))
        .await
        .map_err(|_| LoginError::Protocol("the other side did not answer in time".into()))?
        .map_err(Into::into)
}

/// Client side of the login. `otp` is asked for the one-time password when the
/// server wants one. Returns the keys of the tunnel's record layer.
pub async fn client_login<S>(
    s: &mut S,
    password: &Secret,
    pcid: &str,
    otp: &dyn OtpProvider,
    times: LoginTimes,
) -> Result<Keys, LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut tr = Transcript::new();
    let (state, ke1) = ClientAuth::start(password.expose()).map_err(|e| LoginError::Protocol(e.to_string()))?;
    let start = E2e::LoginStart { version: thin_protocol::E2E_VERSION, ke1 };
    tr.c2s(&start);
    write_frame(s, &start).await?;
    let ke2 = match recv(s, times.answer).await? {
        E2e::LoginResponse { ke2 } => ke2,
        E2e::Refused { code, message, retry_after_s } => {
            return Err(LoginError::Refused { code, message, retry_after_s })
        }
        other => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
    };
    tr.s2c(&E2e::LoginResponse { ke2: ke2.clone() });
    let finished = tokio::task::block_in_place(|| state.finish(password.expose(), pcid, &ke2));
    let (ke3, key) = match finished {
        Ok(x) => x,
        Err(AuthError::WrongPassword) => {
            let _ = write_frame(s, &E2e::LoginAbort).await;
            return Err(LoginError::WrongPassword);
        }
        Err(e) => return Err(LoginError::Protocol(e.to_string())),
    };
    let finish = E2e::LoginFinish { ke3 };
    tr.c2s(&finish);
    write_frame(s, &finish).await?;
    // From here on the server may send `Wait` while a mail is on its way, and
    // frames may arrive while the user is typing: read cancel-safely.
    let mut reader = FrameReader::new();
    let mut question: Option<OtpRequest> = None;
    loop {
        let msg = tokio::time::timeout(times.long(), reader.read::<E2e, _>(s))
            .await
            .map_err(|_| LoginError::Protocol("the other side did not answer in time".into()))??;
        match msg {
            E2e::Wait => {}
            E2e::OtpRequired { ref destination, tries, valid_s } => {
                tr.s2c(&msg);
                let req = OtpRequest { destination: destination.clone(), tries_left: tries, valid_s, retry: false };
                answer_otp(s, &mut reader, otp, &req, times, &mut tr).await?;
                question = Some(req);
            }
            E2e::OtpWrong { tries_left } => {
                tr.s2c(&msg);
                let Some(mut req) = question.take() else {
                    return Err(LoginError::Protocol("a wrong-code answer before any code was asked for".into()));
                };
                req.tries_left = tries_left;
                req.retry = true;
                answer_otp(s, &mut reader, otp, &req, times, &mut tr).await?;
                question = Some(req);
            }
            E2e::Ready { confirm } if ready_ok(&key, &tr.hash(), &confirm) => {
                return Ok(Keys::derive(&key, &tr.hash(), Role::Client))
            }
            E2e::Ready { .. } => return Err(LoginError::BadConfirm),
            E2e::Refused { code: ErrorCode::WrongPassword, .. } => return Err(LoginError::WrongPassword),
            E2e::Refused { code, message, retry_after_s } => {
                return Err(LoginError::Refused { code, message, retry_after_s })
            }
            other => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
        }
    }
}

/// Asks `otp` for the code and sends it, sending `Wait` meanwhile; a refusal
/// from the server (the code expired while the user was typing) ends the wait.
async fn answer_otp<S>(
    s: &mut S,
    reader: &mut FrameReader,
    otp: &dyn OtpProvider,
    req: &OtpRequest,
    times: LoginTimes,
    tr: &mut Transcript,
) -> Result<(), LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ask = otp.ask(req.clone());
    let mut tick = tokio::time::interval_at(Instant::now() + times.keepalive, times.keepalive);
    // A `Wait` that cannot be written means the server closed: its last frame
    // (a refusal) is still to be read, so stop ticking and read on.
    let mut ticking = true;
    let code = loop {
        tokio::select! {
            code = &mut ask => break code,
            _ = tick.tick(), if ticking => ticking = write_frame(s, &E2e::Wait).await.is_ok(),
            f = reader.read::<E2e, _>(s) => match f? {
                E2e::Wait => {}
                E2e::Refused { code, message, retry_after_s } => {
                    return Err(LoginError::Refused { code, message, retry_after_s })
                }
                other => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
            },
        }
    };
    let Some(code) = code else {
        return Err(LoginError::OtpNotGiven { destination: req.destination.clone() });
    };
    let answer = E2e::OtpAnswer { code };
    tr.c2s(&answer);
    if let Err(e) = write_frame(s, &answer).await {
        // The server may have refused (the code expired) just before.
        return match tokio::time::timeout(times.answer, reader.read::<E2e, _>(s)).await {
            Ok(Ok(E2e::Refused { code, message, retry_after_s })) => {
                Err(LoginError::Refused { code, message, retry_after_s })
            }
            _ => Err(e.into()),
        };
    }
    Ok(())
}

/// Server side of the login. Every attempt counts for the lockout from the
/// moment KE2 is sent (the client can test one password offline only once it
/// has KE2), and at most [`crate::lockout::IN_FLIGHT`] run at once, so
/// parallel attempts cannot get past the limit; a success clears the count.
/// A first message that does not decode proves nothing and is not counted.
/// Returns the keys of the tunnel's record layer.
pub async fn server_login<S>(
    s: &mut S,
    file: &PasswordFile,
    pcid: &str,
    lockout: &Lockout,
    otp: Option<OtpCheck<'_>>,
    times: LoginTimes,
) -> Result<Keys, LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let t = times.answer;
    let mut tr = Transcript::new();
    let first = recv(s, t).await?;
    let ke1 = match &first {
        E2e::LoginStart { version, ke1 } if *version == thin_protocol::E2E_VERSION => ke1.clone(),
        E2e::LoginStart { version, .. } => {
            let message = format!(
                "the app speaks end-to-end protocol {version} and this computer speaks {}; update the app",
                thin_protocol::E2E_VERSION
            );
            refuse(s, ErrorCode::Version, message.clone(), None).await;
            return Err(LoginError::Protocol(message));
        }
        other => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
    };
    tr.c2s(&first);
    let attempt = match lockout.begin() {
        Ok(a) => a,
        Err(Refusal::Locked(secs)) => return Err(locked_out(s, secs).await),
        Err(Refusal::Busy) => {
            let message = "another login to this computer is in progress; try again in a moment".to_string();
            refuse(s, ErrorCode::Busy, message.clone(), Some(5)).await;
            return Err(LoginError::Refused { code: ErrorCode::Busy, message, retry_after_s: Some(5) });
        }
    };
    let (state, ke2) = match ServerAuth::start(file, pcid, &ke1) {
        Ok(x) => x,
        Err(e) => {
            refuse(s, ErrorCode::Protocol, "the login message did not decode".into(), None).await;
            return Err(LoginError::Protocol(e.to_string()));
        }
    };
    if let Err(secs) = attempt.count() {
        return Err(locked_out(s, secs).await);
    }
    let response = E2e::LoginResponse { ke2 };
    tr.s2c(&response);
    write_frame(s, &response).await?;
    let result = match recv(s, t).await {
        Ok(m @ E2e::LoginFinish { .. }) => {
            tr.c2s(&m);
            let E2e::LoginFinish { ke3 } = m else { unreachable!() };
            state.finish(&ke3).map_err(|_| LoginError::WrongPassword)
        }
        Ok(E2e::LoginAbort) => Err(LoginError::WrongPassword),
        Ok(other) => Err(LoginError::Protocol(format!("unexpected {other:?}"))),
        Err(e) => Err(e),
    };
    let key = match result {
        Ok(key) => key,
        Err(e) => {
            let message = if lockout.check().is_err() {
                "wrong password; too many failures, logins are now locked"
            } else {
                "wrong password"
            };
            refuse(s, ErrorCode::WrongPassword, message.into(), None).await;
            return Err(e);
        }
    };
    if let Some(otp) = otp {
        otp_step(s, &otp, times, &mut tr).await?;
    }
    attempt.succeeded();
    let hash = tr.hash();
    write_frame(s, &E2e::Ready { confirm: hex::encode(ready_mac(&key, &hash).as_ref()) }).await?;
    Ok(Keys::derive(&key, &hash, Role::Server))
}

async fn locked_out<S: AsyncWrite + Unpin>(s: &mut S, secs: u64) -> LoginError {
    let message = format!("too many wrong passwords; this computer refuses logins for {secs} more seconds");
    refuse(s, ErrorCode::LockedOut, message.clone(), Some(secs)).await;
    LoginError::Refused { code: ErrorCode::LockedOut, message, retry_after_s: Some(secs) }
}

/// Has a fresh code mailed, asks for it, and checks the answers: at most
/// `max_tries`, within `validity` of the mail.
async fn otp_step<S>(s: &mut S, otp: &OtpCheck<'_>, times: LoginTimes, tr: &mut Transcript) -> Result<(), LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let code = crate::otp::new_code();
    let mailed = {
        let mut send = otp.sender.send(otp.to, &code, otp.policy.validity);
        let mut tick = tokio::time::interval_at(Instant::now() + times.keepalive, times.keepalive);
        let limit = tokio::time::sleep(MAIL_WAIT);
        tokio::pin!(limit);
        loop {
            tokio::select! {
                r = &mut send => break r,
                _ = tick.tick() => write_frame(s, &E2e::Wait).await?,
                _ = &mut limit => break Err(MailError::NoAnswer(MAIL_WAIT.as_secs())),
            }
        }
    };
    if let Err(why) = mailed {
        let message = format!("the office PC could not have the one-time password mailed: {why}");
        return Err(refused(s, ErrorCode::OtpMailFailed, message).await);
    }
    let mut challenge = Challenge::new(code, &otp.policy);
    let valid = thin_protocol::messages::validity_text(otp.policy.validity.as_secs());
    let expired =
        || format!("the one-time password has expired (it was valid for {valid}); connect again to receive a new one");
    let asked = E2e::OtpRequired {
        destination: crate::otp::mask_email(otp.to),
        tries: otp.policy.max_tries,
        valid_s: otp.policy.validity.as_secs(),
    };
    tr.s2c(&asked);
    write_frame(s, &asked).await?;
    loop {
        let left = challenge.expires().saturating_duration_since(Instant::now());
        let answer = match tokio::time::timeout(left.min(times.idle), read_frame::<E2e, _>(s)).await {
            Err(_) if Instant::now() >= challenge.expires() => {
                return Err(refused(s, ErrorCode::OtpExpired, expired()).await)
            }
            Err(_) => {
                return Err(LoginError::Protocol("the client went silent while asked for the one-time password".into()))
            }
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(E2e::Wait)) => continue,
            Ok(Ok(m @ E2e::OtpAnswer { .. })) => {
                tr.c2s(&m);
                let E2e::OtpAnswer { code } = m else { unreachable!() };
                code
            }
            Ok(Ok(other)) => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
        };
        match challenge.check(answer.expose()) {
            Verdict::Right => return Ok(()),
            Verdict::Wrong { tries_left } => {
                let wrong = E2e::OtpWrong { tries_left };
                tr.s2c(&wrong);
                write_frame(s, &wrong).await?
            }
            Verdict::NoTriesLeft => {
                let message = format!(
                    "wrong one-time password; all {} tries are used up, connect again to receive a new one",
                    otp.policy.max_tries
                );
                return Err(refused(s, ErrorCode::WrongOtp, message).await);
            }
            Verdict::Expired => return Err(refused(s, ErrorCode::OtpExpired, expired()).await),
        }
    }
}

/// Sends a refusal and returns the matching error.
async fn refused<S: AsyncWrite + Unpin>(s: &mut S, code: ErrorCode, message: String) -> LoginError {
    refuse(s, code, message.clone(), None).await;
    LoginError::Refused { code, message, retry_after_s: None }
}

/// Sends a refusal; the pipe closes after it.
pub(crate) async fn refuse<S: AsyncWrite + Unpin>(
    s: &mut S,
    code: ErrorCode,
    message: String,
    retry_after_s: Option<u64>,
) {
    let _ = write_frame(s, &E2e::Refused { code, message, retry_after_s }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::NoOtp;
    use futures::future::BoxFuture;
    use std::sync::{Arc, Mutex};

    fn times() -> LoginTimes {
        LoginTimes {
            answer: Duration::from_secs(10),
            keepalive: Duration::from_millis(50),
            idle: Duration::from_secs(10),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_over_a_pipe_and_lockout() {
        let file = PasswordFile::create("pw").unwrap();
        let lock = Arc::new(Lockout::new(2, Duration::from_secs(60)));
        for (pw, ok) in [("pw", true), ("bad", false), ("bad", false), ("pw", false)] {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            let f = file.clone();
            let l = lock.clone();
            let srv = tokio::spawn(async move { server_login(&mut b, &f, "desk", &l, None, times()).await });
            let r = client_login(&mut a, &Secret::new(pw), "desk", &NoOtp, times()).await;
            assert_eq!(r.is_ok(), ok, "{pw}: {r:?}");
            let _ = srv.await.unwrap();
            if pw == "pw" && !ok {
                assert!(matches!(r, Err(LoginError::Refused { code: ErrorCode::LockedOut, .. })), "{r:?}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_message_that_does_not_decode_is_not_counted_and_an_old_app_is_told_to_update() {
        let file = PasswordFile::create("pw").unwrap();
        let lock = Lockout::new(1, Duration::from_secs(60));
        for first in [
            E2e::LoginStart { version: thin_protocol::E2E_VERSION, ke1: "bm90IGEga2Ux".into() },
            E2e::LoginStart { version: 1, ke1: "bm90IGEga2Ux".into() },
        ] {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            write_frame(&mut a, &first).await.unwrap();
            let r = server_login(&mut b, &file, "desk", &lock, None, times()).await;
            assert!(matches!(r, Err(LoginError::Protocol(_))), "{r:?}");
            match read_frame::<E2e, _>(&mut a).await.unwrap() {
                E2e::Refused { code: ErrorCode::Version, message, .. } => {
                    assert!(message.contains("update the app"), "{message}")
                }
                E2e::Refused { code: ErrorCode::Protocol, .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(lock.failures(), 0, "nothing was counted");
        assert!(lock.check().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_ends_derive_the_same_record_keys() {
        let file = PasswordFile::create("pw").unwrap();
        let lock = Lockout::new(5, Duration::from_secs(60));
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let srv = tokio::spawn(async move { server_login(&mut b, &file, "desk", &lock, None, times()).await });
        let mut ck = client_login(&mut a, &Secret::new("pw"), "desk", &NoOtp, times()).await.unwrap();
        let sk = srv.await.unwrap().unwrap();
        let mut wire = Vec::new();
        ck.send.seal(b"to the office", &mut wire).unwrap();
        let mut r = crate::seal::OpenReader::new(&wire[..], sk.recv);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got).await.unwrap();
        assert_eq!(got, b"to the office");
    }

    /// A relay that rewrites one login message on its way to the client.
    async fn rewriting_relay(
        client: tokio::io::DuplexStream,
        server: tokio::io::DuplexStream,
        rewrite: fn(E2e) -> E2e,
    ) {
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut sr, mut sw) = tokio::io::split(server);
        let up = async move {
            while let Ok(m) = read_frame::<E2e, _>(&mut cr).await {
                if write_frame(&mut sw, &m).await.is_err() {
                    break;
                }
            }
        };
        let down = async move {
            while let Ok(m) = read_frame::<E2e, _>(&mut sr).await {
                if write_frame(&mut cw, &rewrite(m)).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(up, down);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ready_mac_covers_the_transcript() {
        // The relay shows the user another mail address (say, to make them
        // read the code out to a caller): the client refuses the server's Ready.
        let file = PasswordFile::create("pw").unwrap();
        let lock = Arc::new(Lockout::new(5, Duration::from_secs(60)));
        let mail = Arc::new(FakeMail::default());
        let (mut a, a2) = tokio::io::duplex(1 << 16);
        let (b2, mut b) = tokio::io::duplex(1 << 16);
        tokio::spawn(rewriting_relay(a2, b2, |m| match m {
            E2e::OtpRequired { tries, valid_s, .. } => {
                E2e::OtpRequired { destination: "m***@attacker.example".into(), tries, valid_s }
            }
            other => other,
        }));
        let (m, l) = (mail.clone(), lock.clone());
        let srv = tokio::spawn(async move {
            let policy = OtpPolicy { validity: Duration::from_secs(60), max_tries: 3 };
            let otp = OtpCheck { to: "alice@example.org", policy, sender: &*m };
            server_login(&mut b, &file, "desk", &l, Some(otp), times()).await
        });
        let mail2 = mail.clone();
        let provider = move |_req: OtpRequest| {
            let code = mail2.codes.lock().unwrap()[0].clone();
            async move { Some(Secret::new(code)) }
        };
        let r = client_login(&mut a, &Secret::new("pw"), "desk", &provider, times()).await;
        assert!(matches!(r, Err(LoginError::BadConfirm)), "{r:?}");
        assert!(srv.await.unwrap().is_ok(), "the server saw a good login; the client refused it");
    }

    /// Records the mailed codes instead of mailing them, or fails.
    #[derive(Default)]
    struct FakeMail {
        codes: Mutex<Vec<String>>,
        fail: Option<String>,
    }

    impl OtpSender for FakeMail {
        fn send<'a>(&'a self, to: &'a str, code: &'a Secret, _valid: Duration) -> BoxFuture<'a, Result<(), MailError>> {
            Box::pin(async move {
                assert_eq!(to, "alice@example.org");
                // Slower than the keepalive, so `Wait` frames flow meanwhile.
                tokio::time::sleep(Duration::from_millis(120)).await;
                match &self.fail {
                    Some(e) => Err(MailError::Refused(e.clone())),
                    None => {
                        self.codes.lock().unwrap().push(code.expose().to_string());
                        Ok(())
                    }
                }
            })
        }
    }

    struct Run {
        client: Result<Keys, LoginError>,
        server: Result<Keys, LoginError>,
        asked: Vec<OtpRequest>,
    }

    /// One login with OTP; `answers[i]` is typed at the i-th question, `None`
    /// for the mailed code, and the question after the last is never answered.
    async fn run_otp(
        mail: Arc<FakeMail>,
        policy: OtpPolicy,
        answers: Vec<Option<&'static str>>,
        lock: &Arc<Lockout>,
    ) -> Run {
        let file = PasswordFile::create("pw").unwrap();
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let (m, l) = (mail.clone(), lock.clone());
        let srv = tokio::spawn(async move {
            let otp = OtpCheck { to: "alice@example.org", policy, sender: &*m };
            server_login(&mut b, &file, "desk", &l, Some(otp), times()).await
        });
        let asked = Arc::new(Mutex::new(Vec::new()));
        let provider = {
            let asked = asked.clone();
            move |req: OtpRequest| {
                let mut log = asked.lock().unwrap();
                let i = log.len();
                log.push(req);
                let answer = answers
                    .get(i)
                    .map(|a| a.map(str::to_string).unwrap_or_else(|| mail.codes.lock().unwrap()[0].clone()));
                async move {
                    match answer {
                        Some(a) => Some(Secret::new(a)),
                        None => futures::future::pending().await,
                    }
                }
            }
        };
        let client = client_login(&mut a, &Secret::new("pw"), "desk", &provider, times()).await;
        drop(a);
        let server = srv.await.unwrap();
        let asked = asked.lock().unwrap().clone();
        Run { client, server, asked }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_code_counts_down_then_the_right_one_logs_in() {
        let lock = Arc::new(Lockout::new(5, Duration::from_secs(60)));
        let mail = Arc::new(FakeMail::default());
        let policy = OtpPolicy { validity: Duration::from_secs(60), max_tries: 3 };
        let r = run_otp(mail.clone(), policy, vec![Some("000000"), None], &lock).await;
        assert!(r.client.is_ok() && r.server.is_ok(), "{:?} {:?}", r.client, r.server);
        assert_eq!(mail.codes.lock().unwrap().len(), 1);
        let seen: Vec<(String, u32, u64, bool)> =
            r.asked.iter().map(|q| (q.destination.clone(), q.tries_left, q.valid_s, q.retry)).collect();
        assert_eq!(seen, [("a***@example.org".into(), 3, 60, false), ("a***@example.org".into(), 2, 60, true)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn used_up_tries_expiry_mail_failure_and_no_provider_are_refused_and_count_for_the_lockout() {
        let lock = Arc::new(Lockout::new(4, Duration::from_secs(60)));
        let policy = OtpPolicy { validity: Duration::from_secs(60), max_tries: 2 };
        let r = run_otp(Arc::default(), policy, vec![Some("000000"), Some("000001"), Some("x")], &lock).await;
        match r.client {
            Err(LoginError::Refused { code: ErrorCode::WrongOtp, message, .. }) => {
                assert!(message.contains("all 2 tries are used up"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.asked.len(), 2, "no third question");
        assert!(r.server.is_err());

        let short = OtpPolicy { validity: Duration::from_millis(300), max_tries: 20 };
        let r = run_otp(Arc::default(), short, vec![], &lock).await;
        match r.client {
            Err(LoginError::Refused { code: ErrorCode::OtpExpired, message, .. }) => {
                assert!(message.contains("expired (it was valid for 0 seconds)"), "{message}")
            }
            other => panic!("{other:?}"),
        }

        let failing = Arc::new(FakeMail { fail: Some("no SMTP here".into()), ..Default::default() });
        let r = run_otp(failing, policy, vec![], &lock).await;
        match r.client {
            Err(LoginError::Refused { code: ErrorCode::OtpMailFailed, message, .. }) => {
                assert!(message.ends_with("could not have the one-time password mailed: no SMTP here"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(r.asked.is_empty());

        // A caller without a provider gets a clear error, and the lockout now holds.
        let file = PasswordFile::create("pw").unwrap();
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let l = lock.clone();
        let mail = FakeMail::default();
        let srv = async move {
            let otp = OtpCheck { to: "alice@example.org", policy, sender: &mail };
            server_login(&mut b, &file, "desk", &l, Some(otp), times()).await
        };
        let cli = async {
            let r = client_login(&mut a, &Secret::new("pw"), "desk", &NoOtp, times()).await;
            drop(a);
            r
        };
        let (c, _) = tokio::join!(cli, srv);
        assert!(
            matches!(&c, Err(LoginError::OtpNotGiven { destination }) if destination == "a***@example.org"),
            "{c:?}"
        );
        assert!(lock.check().is_err(), "four failed OTP logins locked the computer");
    }
}
