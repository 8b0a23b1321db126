//! The end-to-end login inside a paired pipe: the client proves the password to
//! the server with OPAQUE (the gateway only copies the bytes), the server
//! enforces its lockout, and answers `Ready` with a MAC under the session key.

use std::time::Duration;

use thin_protocol::auth::{AuthError, ClientAuth, PasswordFile, ServerAuth};
use thin_protocol::frame::{read_frame, write_frame, FrameError};
use thin_protocol::messages::{E2e, ErrorCode};
use thin_protocol::secret::Secret;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::lockout::Lockout;

const READY_LABEL: &str = "thintelework ready v1";

/// How an end-to-end login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The password is wrong.
    #[error("wrong password")]
    WrongPassword,
    /// The server refused (lockout, ...).
    #[error("{message}")]
    Refused {
        /// Reason code.
        code: ErrorCode,
        /// Text from the server.
        message: String,
        /// Seconds to wait.
        retry_after_s: Option<u64>,
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

async fn recv<S: AsyncRead + Unpin>(s: &mut S, t: Duration) -> Result<E2e, LoginError> {
    tokio::time::timeout(t, read_frame::<E2e, _>(s))
        .await
        .map_err(|_| LoginError::Protocol("the other side did not answer in time".into()))?
        .map_err(Into::into)
}

/// Client side of the login.
pub async fn client_login<S>(s: &mut S, password: &Secret, pcid: &str, t: Duration) -> Result<(), LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (state, ke1) = ClientAuth::start(password.expose()).map_err(|e| LoginError::Protocol(e.to_string()))?;
    write_frame(s, &E2e::LoginStart { version: thin_protocol::PROTOCOL_VERSION, ke1 }).await?;
    let ke2 = match recv(s, t).await? {
        E2e::LoginResponse { ke2 } => ke2,
        E2e::Refused { code, message, retry_after_s } => {
            return Err(LoginError::Refused { code, message, retry_after_s })
        }
        other => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
    };
    let finished = tokio::task::block_in_place(|| state.finish(password.expose(), pcid, &ke2));
    let (ke3, key) = match finished {
        Ok(x) => x,
        Err(AuthError::WrongPassword) => {
            let _ = write_frame(s, &E2e::LoginAbort).await;
            return Err(LoginError::WrongPassword);
        }
        Err(e) => return Err(LoginError::Protocol(e.to_string())),
    };
    write_frame(s, &E2e::LoginFinish { ke3 }).await?;
    match recv(s, t).await? {
        E2e::Ready { confirm } if key.verify(READY_LABEL, &confirm) => Ok(()),
        E2e::Ready { .. } => Err(LoginError::BadConfirm),
        E2e::Refused { code: ErrorCode::WrongPassword, .. } => Err(LoginError::WrongPassword),
        E2e::Refused { code, message, retry_after_s } => Err(LoginError::Refused { code, message, retry_after_s }),
        other => Err(LoginError::Protocol(format!("unexpected {other:?}"))),
    }
}

/// Server side of the login; every started login that does not succeed counts
/// as a failure for the lockout.
pub async fn server_login<S>(
    s: &mut S,
    file: &PasswordFile,
    pcid: &str,
    lockout: &Lockout,
    t: Duration,
) -> Result<(), LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ke1 = match recv(s, t).await? {
        E2e::LoginStart { version, ke1 } if version == thin_protocol::PROTOCOL_VERSION => ke1,
        E2e::LoginStart { version, .. } => {
            let message = format!("the client speaks protocol {version}; update the app");
            refuse(s, ErrorCode::Version, message.clone(), None).await;
            return Err(LoginError::Protocol(message));
        }
        other => return Err(LoginError::Protocol(format!("unexpected {other:?}"))),
    };
    if let Err(secs) = lockout.check() {
        let message = format!("too many wrong passwords; this computer refuses logins for {secs} more seconds");
        refuse(s, ErrorCode::LockedOut, message.clone(), Some(secs)).await;
        return Err(LoginError::Refused { code: ErrorCode::LockedOut, message, retry_after_s: Some(secs) });
    }
    let (state, ke2) = match ServerAuth::start(file, pcid, &ke1) {
        Ok(x) => x,
        Err(e) => {
            lockout.failed();
            return Err(LoginError::Protocol(e.to_string()));
        }
    };
    write_frame(s, &E2e::LoginResponse { ke2 }).await?;
    let result = match recv(s, t).await {
        Ok(E2e::LoginFinish { ke3 }) => state.finish(&ke3).map_err(|_| LoginError::WrongPassword),
        Ok(E2e::LoginAbort) => Err(LoginError::WrongPassword),
        Ok(other) => Err(LoginError::Protocol(format!("unexpected {other:?}"))),
        Err(e) => Err(e),
    };
    match result {
        Ok(key) => {
            lockout.succeeded();
            write_frame(s, &E2e::Ready { confirm: key.confirm(READY_LABEL) }).await?;
            Ok(())
        }
        Err(e) => {
            let locked = lockout.failed();
            let message =
                if locked { "wrong password; too many failures, logins are now locked" } else { "wrong password" };
            refuse(s, ErrorCode::WrongPassword, message.into(), None).await;
            Err(e)
        }
    }
}

async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, code: ErrorCode, message: String, retry_after_s: Option<u64>) {
    let _ = write_frame(s, &E2e::Refused { code, message, retry_after_s }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_over_a_pipe_and_lockout() {
        let file = PasswordFile::create("pw").unwrap();
        let lock = std::sync::Arc::new(Lockout::new(2, Duration::from_secs(60)));
        let t = Duration::from_secs(10);
        for (pw, ok) in [("pw", true), ("bad", false), ("bad", false), ("pw", false)] {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            let f = file.clone();
            let l = lock.clone();
            let srv = tokio::spawn(async move { server_login(&mut b, &f, "desk", &l, t).await });
            let r = client_login(&mut a, &Secret::new(pw), "desk", t).await;
            assert_eq!(r.is_ok(), ok, "{pw}: {r:?}");
            let _ = srv.await.unwrap();
            if pw == "pw" && !ok {
                assert!(matches!(r, Err(LoginError::Refused { code: ErrorCode::LockedOut, .. })), "{r:?}");
            }
        }
    }
}
