//! Bounds on what peers control: connections not yet established, and
//! connections per source address (`DosProtection_*`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection admission.
#[derive(Debug)]
pub struct Limits {
    unestablished: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
    enabled: bool,
}

/// Held while a connection is open; releases its per-IP slot on drop.
#[derive(Debug)]
pub struct IpSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.limits.per_ip.lock().expect("limits lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// New limits; `enabled == false` (DisableDoSProtection) admits everything.
    pub fn new(max_unestablished: usize, max_per_ip: usize, enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            unestablished: Arc::new(Semaphore::new(max_unestablished.max(1))),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: max_per_ip.max(1),
            enabled,
        })
    }

    /// Admits a new connection from `ip`, or `None` when a limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<(IpSlot, Option<OwnedSemaphorePermit>)> {
        {
            let mut map = self.per_ip.lock().expect("limits lock");
            let n = map.entry(ip).or_insert(0);
            if self.enabled && *n >= self.max_per_ip {
                return None;
            }
            *n += 1;
        }
        let slot = IpSlot { limits: self.clone(), ip };
        if !self.enabled {
            return Some((slot, None));
        }
        let permit = self.unestablished.clone().try_acquire_owned().ok()?;
        Some((slot, Some(permit)))
    }

    /// Open connections from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.per_ip.lock().expect("limits lock").get(&ip).copied().unwrap_or(0)
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
}
