//! Who may register or rename a computer ID, and how often: a rate limit per
//! source (an IPv4 address or an IPv6 /64) and in total, and the optional
//! `RegisterToken` that a new office PC must present.

use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thin_protocol::messages::ErrorCode;
use thin_protocol::secret::Secret;

use crate::config::GateConfig;
use crate::rate::{Rate, Throttle, Throttled};
use crate::source::Source;

/// Why a registration was refused before the registry saw it. The messages
/// go to the office PC as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterRefusal {
    /// `RegisterLimitPerSource` is spent for this source.
    #[error(
        "too many registrations from your network ({network}): this gateway takes {limit} a minute from one \
         address (RegisterLimitPerSource); try again in {wait_s} s"
    )]
    FromSource {
        /// The source counted (an IPv4 address or an IPv6 /64).
        network: Source,
        /// `RegisterLimitPerSource`.
        limit: u32,
        /// Seconds until the next one is allowed.
        wait_s: u64,
    },
    /// `RegisterLimitTotal` is spent.
    #[error(
        "too many registrations at this gateway just now: it takes {limit} a minute (RegisterLimitTotal); \
         try again in {wait_s} s"
    )]
    Total {
        /// `RegisterLimitTotal`.
        limit: u32,
        /// Seconds until the next one is allowed.
        wait_s: u64,
    },
    /// `RegisterToken` is set and the office PC did not present it.
    #[error(
        "this gateway registers new computers only with its registration token; set register_token in \
         thinsvr.toml to the token your gateway admin gives you"
    )]
    Token,
}

impl RegisterRefusal {
    /// The code sent with the refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FromSource { .. } | Self::Total { .. } => ErrorCode::Busy,
            Self::Token => ErrorCode::RegisterDisabled,
        }
    }
}

/// The registration rules of a gateway.
#[derive(Debug)]
pub struct Registration {
    throttle: Throttle<Source>,
    per_source: u32,
    total: u32,
    /// SHA-256 of `RegisterToken`.
    token: Option<[u8; 32]>,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Registration {
    /// The rules of `cfg`.
    pub fn new(cfg: &GateConfig) -> Arc<Self> {
        let (per_source, total) = (cfg.register_limit_per_source, cfg.register_limit_total);
        Arc::new(Self {
            throttle: Throttle::new(Rate::per_minute(per_source), Rate::per_minute(total)),
            per_source,
            total,
            token: cfg.register_token.as_ref().map(|t| digest(t.expose())),
        })
    }

    /// Counts one registration or rename from `ip` if the limits allow it.
    pub fn admit(&self, ip: IpAddr) -> Result<(), RegisterRefusal> {
        let source = Source::of(ip);
        self.throttle.take(&source).map_err(|t| match t {
            Throttled::Key(wait) => {
                RegisterRefusal::FromSource { network: source, limit: self.per_source, wait_s: wait.as_secs() }
            }
            Throttled::Total(wait) => RegisterRefusal::Total { limit: self.total, wait_s: wait.as_secs() },
        })
    }

    /// Checks the token a new machine presents (compared in constant time).
    pub fn check_token(&self, presented: Option<&Secret>) -> Result<(), RegisterRefusal> {
        let Some(want) = &self.token else { return Ok(()) };
        let got = digest(presented.map_or("", |p| p.expose()));
        if presented.is_some() && bool::from(got.ct_eq(want)) {
            Ok(())
        } else {
            Err(RegisterRefusal::Token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(ini: &str) -> Arc<Registration> {
        Registration::new(&GateConfig::parse(ini, std::path::Path::new("/x/ThinGate.ini")).unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn ten_a_minute_per_source_by_default_and_ipv6_by_64() {
        let r = rules("");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for i in 0..10 {
            assert_eq!(r.admit(ip(&format!("2001:db8:1:2::{i}"))), Ok(()));
        }
        let e = r.admit(ip("2001:db8:1:2:ffff::1")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Busy);
        assert!(e.to_string().starts_with("too many registrations from your network (2001:db8:1:2::/64)"), "{e}");
        assert!(e.to_string().ends_with("(RegisterLimitPerSource); try again in 6 s"), "{e}");
        assert_eq!(r.admit(ip("2001:db8:1:3::1")), Ok(()), "another /64");
        tokio::time::advance(std::time::Duration::from_secs(6)).await;
        assert_eq!(r.admit(ip("2001:db8:1:2::1")), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_limit_holds_across_sources() {
        let r = rules("RegisterLimitPerSource 5\nRegisterLimitTotal 12");
        let mut ok = 0;
        for i in 0..40u8 {
            if r.admit(IpAddr::from([198, 51, 100, i])).is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 12);
        let e = r.admit(IpAddr::from([203, 0, 113, 1])).unwrap_err();
        assert!(matches!(e, RegisterRefusal::Total { limit: 12, wait_s: 5 }), "{e}");
    }

    #[test]
    fn the_token_when_set() {
        assert_eq!(rules("").check_token(None), Ok(()));
        let r = rules("RegisterToken s3cret-Token");
        assert_eq!(r.check_token(Some(&Secret::new("s3cret-Token"))), Ok(()));
        for bad in [None, Some(""), Some("s3cret-token"), Some("s3cret-Token ")] {
            let e = r.check_token(bad.map(Secret::new).as_ref()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::RegisterDisabled, "{bad:?}");
        }
    }
}
