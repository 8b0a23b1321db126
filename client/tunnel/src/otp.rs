//! One-time passwords by e-mail, the rules both apps share: the office PC's
//! policy (6 digits, valid 5 minutes, at most 20 tries), the code and its
//! checker, the address rules and masking, and [`OtpProvider`], what a client
//! app implements to ask its user for the code.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use subtle::ConstantTimeEq;
use thin_protocol::secret::Secret;
use tokio::time::Instant;

/// How long a code is valid and how often it may be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpPolicy {
    /// Validity from the moment the gateway took the mail (5 minutes).
    pub validity: Duration,
    /// Answers allowed for one code (20).
    pub max_tries: u32,
}

impl Default for OtpPolicy {
    fn default() -> Self {
        Self { validity: Duration::from_secs(300), max_tries: 20 }
    }
}

/// A fresh six-digit code from the operating system's CSPRNG.
pub fn new_code() -> Secret {
    Secret::new(format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32)))
}

/// What the server decided about one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code is right.
    Right,
    /// Wrong; this many answers are still allowed.
    Wrong {
        /// Answers left.
        tries_left: u32,
    },
    /// Wrong, and that was the last allowed answer.
    NoTriesLeft,
    /// The code is no longer valid.
    Expired,
}

/// The code a server is waiting for.
pub struct Challenge {
    code: Secret,
    expires: Instant,
    tries_left: u32,
}

impl Challenge {
    /// Starts the validity of `code` now.
    pub fn new(code: Secret, policy: &OtpPolicy) -> Self {
        Self { code, expires: Instant::now() + policy.validity, tries_left: policy.max_tries }
    }

    /// When the code stops being valid.
    pub fn expires(&self) -> Instant {
        self.expires
    }

    /// Checks one answer (in constant time) and counts it.
    pub fn check(&mut self, answer: &str) -> Verdict {
        if Instant::now() >= self.expires {
            return Verdict::Expired;
        }
        if self.tries_left == 0 {
            return Verdict::NoTriesLeft;
        }
        self.tries_left -= 1;
        let answer: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
        if bool::from(answer.as_bytes().ct_eq(self.code.expose().as_bytes())) {
            Verdict::Right
        } else if self.tries_left == 0 {
            Verdict::NoTriesLeft
        } else {
            Verdict::Wrong { tries_left: self.tries_left }
        }
    }
}

/// Checks an address for one-time passwords; returns it trimmed.
pub fn check_email(addr: &str) -> Result<String, String> {
    let a = addr.trim();
    let bad = |why: &str| Err(format!("{a:?} is not a mail address: {why}; write e.g. alice@example.org"));
    if a.len() > 254 {
        return bad("longer than 254 characters");
    }
    if a.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c)) {
        return bad("it has spaces or one of < > , ; : \" ( ) [ ] \\");
    }
    let Some((local, domain)) = a.rsplit_once('@') else { return bad("there is no @") };
    if local.is_empty() || local.contains('@') || local.len() > 64 {
        return bad("the part before @ must be 1-64 characters without another @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-')) {
        return bad("the part after @ must be a domain name such as example.org");
    }
    Ok(a.to_string())
}

/// `alice@example.org` -> `a***@example.org`, for showing where a code went.
pub fn mask_email(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// What a client app is asked when the server wants a one-time password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpRequest {
    /// Where the code was sent, masked (`a***@example.org`).
    pub destination: String,
    /// Answers still allowed for this code.
    pub tries_left: u32,
    /// Seconds the code was valid for when it was sent.
    pub valid_s: u64,
    /// True when the previous answer was wrong.
    pub retry: bool,
}

/// The future an [`OtpProvider`] returns: the code, or `None` to cancel.
pub type OtpAnswer = Pin<Box<dyn Future<Output = Option<Secret>> + Send>>;

/// Asks the user for the one-time password (a terminal prompt, a dialog). It
/// is asked again after a wrong answer while tries are left. If the server
/// gives up meanwhile (the code expired), the future is dropped.
pub trait OtpProvider: Send + Sync {
    /// The code typed by the user, or `None` to cancel the login.
    fn ask(&self, req: OtpRequest) -> OtpAnswer;
}

impl<F, Fut> OtpProvider for F
where
    F: Fn(OtpRequest) -> Fut + Send + Sync,
    Fut: Future<Output = Option<Secret>> + Send + 'static,
{
    fn ask(&self, req: OtpRequest) -> OtpAnswer {
        Box::pin(self(req))
    }
}

/// For callers that cannot ask anybody: a server that wants a one-time
/// password refuses them with a clear error.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOtp;

impl OtpProvider for NoOtp {
    fn ask(&self, _req: OtpRequest) -> OtpAnswer {
        Box::pin(async { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..50).map(|_| new_code().expose().to_string()).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())), "{codes:?}");
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 40, "{codes:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tries_count_down_and_the_code_expires() {
        let policy = OtpPolicy { validity: Duration::from_secs(300), max_tries: 3 };
        let mut c = Challenge::new(Secret::new("123456"), &policy);
        assert_eq!(c.check("000000"), Verdict::Wrong { tries_left: 2 });
        assert_eq!(c.check(" 123 456 "), Verdict::Right, "spaces typed by the user are ignored");
        assert_eq!(c.check("1234567"), Verdict::NoTriesLeft);
        assert_eq!(c.check("123456"), Verdict::NoTriesLeft, "no answer after the last try, not even the right one");

        let mut c = Challenge::new(Secret::new("123456"), &OtpPolicy::default());
        assert_eq!(OtpPolicy::default().max_tries, 20);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(c.check("111111"), Verdict::Wrong { tries_left: 19 });
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.check("123456"), Verdict::Expired, "the right code after 5 minutes");
    }

    #[test]
    fn addresses_are_checked_and_masked() {
        assert_eq!(check_email(" alice@example.org ").unwrap(), "alice@example.org");
        for bad in [
            "alice",
            "@example.org",
            "alice@",
            "alice@localhost",
            "a b@example.org",
            "a@b@example.org",
            "Alice <a@example.org>",
            "a@example.org,b@example.org",
            "a@-x.org",
            "a@x..org",
            "a@x.org\nb",
        ] {
            let e = check_email(bad).unwrap_err();
            assert!(e.contains("is not a mail address") && e.contains("; write e.g."), "{bad}: {e}");
        }
        assert_eq!(mask_email("alice@example.org"), "a***@example.org");
        assert_eq!(mask_email("b@x.org"), "b***@x.org");
    }
}
