//! `AdminPassword`: callers off loopback may use the console with HTTP Basic
//! authentication as user `admin` and the password whose Argon2 hash the
//! ini holds. Guessing is bounded: each check that runs Argon2 takes a token
//! of [`PER_SOURCE`] per IPv4 address or IPv6 /64 and [`TOTAL`] in all, at
//! most [`AT_ONCE`] run at once (off the async workers), and a browser that
//! logged in is not checked again for [`REMEMBER`] (its `Authorization`
//! header's SHA-256 is remembered, compared in constant time), so that the
//! console's polling costs no Argon2.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thin_protocol::http::Request;
use thin_protocol::secret::Secret;
use tokio::sync::Semaphore;

use crate::rate::{Rate, Throttle};
use crate::source::Source;

/// The user name the console asks for.
pub const USER: &str = "admin";
/// Argon2 checks a minute from one source.
pub const PER_SOURCE: u32 = 10;
/// Argon2 checks a minute from all sources together.
pub const TOTAL: u32 = 60;
/// Argon2 checks running at once.
pub const AT_ONCE: usize = 2;
/// How long a browser that logged in is not checked again.
pub const REMEMBER: Duration = Duration::from_secs(600);
/// Logged-in browsers remembered at most.
const REMEMBERED: usize = 16;
/// A new password needs at least this many characters.
pub const MIN_LEN: usize = 12;

/// Why a caller off loopback is not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No or malformed credentials, or wrong ones: 401, ask again.
    Unauthorized,
    /// Too many checks from this source or in all: 429, try again later.
    TooMany(Duration),
    /// Checks already running: 503.
    Busy,
}

/// Checks the console's password.
#[derive(Debug)]
pub struct PasswordGate {
    hash: Secret,
    tries: Throttle<Source>,
    at_once: Arc<Semaphore>,
    /// SHA-256 of `Authorization` headers that passed, with when.
    remembered: Mutex<Vec<([u8; 32], Instant)>>,
}

/// Why `thingate admin-password` made no hash.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too short.
    #[error("the password needs at least {MIN_LEN} characters")]
    TooShort,
    /// Argon2 failed.
    #[error("cannot hash the password: {0}")]
    Argon2(String),
}

/// The Argon2id hash (PHC string) of `password`, for `AdminPassword`.
pub fn hash(password: &str) -> Result<String, HashError> {
    if password.chars().count() < MIN_LEN {
        return Err(HashError::TooShort);
    }
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
    let salt = argon2::password_hash::SaltString::encode_b64(&salt).map_err(|e| HashError::Argon2(e.to_string()))?;
    let h = argon2::Argon2::default().hash_password(password.as_bytes(), &salt);
    h.map(|h| h.to_string()).map_err(|e| HashError::Argon2(e.to_string()))
}

impl PasswordGate {
    /// A gate for the hash `AdminPassword` holds (checked when it was read).
    pub fn new(hash: Secret) -> PasswordGate {
        PasswordGate {
            hash,
            tries: Throttle::new(Rate::per_minute(PER_SOURCE), Rate::per_minute(TOTAL)),
            at_once: Arc::new(Semaphore::new(AT_ONCE)),
            remembered: Mutex::new(Vec::new()),
        }
    }

    /// Lets `req` from `ip` in when it carries the password.
    pub async fn check(&self, req: &Request, ip: IpAddr) -> Result<(), Refusal> {
        let header = req.header("authorization").ok_or(Refusal::Unauthorized)?.trim();
        let digest: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        if self.is_remembered(&digest) {
            return Ok(());
        }
        let password = basic_password(header).ok_or(Refusal::Unauthorized)?;
        self.tries.take(&Source::of(ip)).map_err(|t| Refusal::TooMany(t.retry_after()))?;
        let permit = self.at_once.clone().try_acquire_owned().map_err(|_| Refusal::Busy)?;
        let hash = self.hash.expose().to_string();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&hash)
                .is_ok_and(|h| argon2::Argon2::default().verify_password(password.expose().as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        if !ok {
            tracing::info!(%ip, "admin console: wrong password");
            return Err(Refusal::Unauthorized);
        }
        let mut r = self.remembered.lock().expect("remembered lock");
        r.retain(|(_, at)| at.elapsed() < REMEMBER);
        if r.len() >= REMEMBERED {
            r.remove(0);
        }
        r.push((digest, Instant::now()));
        Ok(())
    }

    fn is_remembered(&self, digest: &[u8; 32]) -> bool {
        let r = self.remembered.lock().expect("remembered lock");
        // Every entry is compared, so the time does not tell which matched.
        r.iter().fold(false, |hit, (d, at)| hit | (bool::from(d.ct_eq(digest)) && at.elapsed() < REMEMBER))
    }
}

/// The password of `Basic base64(admin:password)`; `None` for another
/// scheme, user or encoding.
fn basic_password(header: &str) -> Option<Secret> {
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == USER).then(|| Secret::new(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(user: &str, password: &str) -> Request {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Request {
            method: "GET".into(),
            target: "/thinadmin/".into(),
            headers: vec![("authorization".into(), format!("Basic {b64}"))],
        }
    }

    #[tokio::test]
    async fn the_password_lets_in_and_guesses_are_bounded_per_source() {
        assert!(matches!(hash("short"), Err(HashError::TooShort)));
        let gate = PasswordGate::new(Secret::new(hash("correct horse battery").unwrap()));
        let ip = IpAddr::from([198, 51, 100, 7]);
        assert_eq!(gate.check(&with_auth("admin", "correct horse battery"), ip).await, Ok(()));
        // Remembered: the same header again costs no token.
        for _ in 0..(PER_SOURCE + 5) {
            assert_eq!(gate.check(&with_auth("admin", "correct horse battery"), ip).await, Ok(()));
        }
        assert_eq!(gate.check(&with_auth("root", "correct horse battery"), ip).await, Err(Refusal::Unauthorized));
        let no_header = Request { method: "GET".into(), target: "/".into(), headers: vec![] };
        assert_eq!(gate.check(&no_header, ip).await, Err(Refusal::Unauthorized));
        for i in 1..PER_SOURCE {
            assert_eq!(gate.check(&with_auth("admin", &format!("guess {i}")), ip).await, Err(Refusal::Unauthorized));
        }
        assert!(matches!(gate.check(&with_auth("admin", "guess 99"), ip).await, Err(Refusal::TooMany(_))));
        // Another source still gets its checks (and the right password works there).
        let other = IpAddr::from([203, 0, 113, 9]);
        assert_eq!(gate.check(&with_auth("admin", "wrong again"), other).await, Err(Refusal::Unauthorized));
    }
}
