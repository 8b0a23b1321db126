//! Bounds on what peers control: connections not yet established, and
//! connections per source (`DosProtection_*`), where a source is an IPv4
//! address or an IPv6 /64 ([`Source`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::source::Source;

/// Connection admission.
#[derive(Debug)]
pub struct Limits {
    unestablished: Arc<Semaphore>,
    per_source: Mutex<HashMap<Source, usize>>,
    max_per_source: usize,
    enabled: bool,
}

/// Held while a connection is open; releases its per-source slot on drop.
#[derive(Debug)]
pub struct IpSlot {
    limits: Arc<Limits>,
    source: Source,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.limits.per_source.lock().expect("limits lock");
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// Held while a connection is not established yet (`None` without DoS protection).
pub type Unestablished = Option<OwnedSemaphorePermit>;

impl Limits {
    /// New limits; `enabled == false` (DisableDoSProtection) admits everything.
    pub fn new(max_unestablished: usize, max_per_ip: usize, enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            unestablished: Arc::new(Semaphore::new(max_unestablished.max(1))),
            per_source: Mutex::new(HashMap::new()),
            max_per_source: max_per_ip.max(1),
            enabled,
        })
    }

    /// Admits a new connection from `ip`, or `None` when a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<(IpSlot, Unestablished)> {
        let slot = self.slot(ip)?;
        Some((slot, self.unestablished()?))
    }

    /// A permit of the unestablished-connection limit (`Some(None)` without
    /// DoS protection), or `None` when the limit is reached. Taken before a
    /// PROXY header is read, so that waiting headers are bounded too.
    pub fn unestablished(&self) -> Option<Unestablished> {
        if !self.enabled {
            return Some(None);
        }
        Some(Some(self.unestablished.clone().try_acquire_owned().ok()?))
    }

    /// A per-source slot for `ip`, or `None` when its source is at the limit.
    pub fn slot(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let source = Source::of(ip);
        let mut map = self.per_source.lock().expect("limits lock");
        let n = map.entry(source).or_insert(0);
        if self.enabled && *n >= self.max_per_source {
            return None;
        }
        *n += 1;
        Some(IpSlot { limits: self.clone(), source })
    }

    /// Open connections from the source of `ip` (its IPv4 address or IPv6 /64).
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_source.lock().expect("limits lock").get(&Source::of(ip)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_unestablished() {
        let l = Limits::new(3, 2, true);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = l.admit(a).unwrap();
        let _s2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_none());
        let _s3 = l.admit(b).unwrap();
        assert!(l.admit(b).is_none(), "unestablished limit of 3 reached");
        drop(s1);
        assert_eq!(l.connections_from(a), 1);
        assert!(l.admit(a).is_some());
        let off = Limits::new(1, 1, false);
        let _x = off.admit(a).unwrap();
        assert!(off.admit(a).is_some());
    }

    #[test]
    fn ipv6_peers_are_counted_per_64() {
        let l = Limits::new(100, 2, true);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = l.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = l.admit(ip("2001:db8:1:2:aaaa::2")).unwrap();
        assert!(l.admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).is_none(), "a third address of the same /64");
        assert_eq!(l.connections_from(ip("2001:db8:1:2::99")), 2);
        assert!(l.admit(ip("2001:db8:1:3::1")).is_some(), "the next /64 is another source");
        let _m = l.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(l.connections_from(ip("192.0.2.1")), 1, "an IPv4-mapped peer counts as its IPv4 address");
    }
}
