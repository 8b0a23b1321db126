//! The traffic secrets behind a leg's keys, so that the relay can follow a
//! TLS key update.
//!
//! rustls hands over a leg's keys (`dangerous_extract_secrets`) but not the
//! secrets they came from, and a key update (RFC 8446 section 4.6.3) derives
//! the next keys from those secrets. rustls does give each connection's
//! first application traffic secrets to a [`rustls::KeyLog`] at the end of
//! its handshake; [`HandshakeSecrets`] keeps them in memory (never in a log
//! or a file), indexed by the IV they yield, for two minutes and at most
//! [`MAX_HELD`] at once. The relay takes a leg's two secrets when it takes
//! the leg's keys; secrets nobody takes (control sessions, connections that
//! never pair) age out. A leg whose secrets were not held still relays, and
//! ends its tunnel at a key update as it would without them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hkdf;
use zeroize::Zeroizing;

/// Most secrets held at once (two per handshake): a flood of handshakes
/// pushes out the oldest, never grows the table.
pub const MAX_HELD: usize = 65_536;
/// How long a secret is held for the relay to take it: well past a client's
/// handshake plus its wait for the office PC (`HandshakeTimeout` each, 10 s
/// by default).
pub const HOLD: Duration = Duration::from_secs(120);

/// A traffic secret and its hash.
pub struct Secret {
    pub(crate) hash: hkdf::Algorithm,
    pub(crate) bytes: Zeroizing<Vec<u8>>,
}

/// Secrets of recent handshakes; give it to the gateway's `ServerConfig`
/// as its `key_log`.
#[derive(Default)]
pub struct HandshakeSecrets {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_iv: HashMap<[u8; 12], Secret>,
    order: VecDeque<(Instant, [u8; 12])>,
}

impl std::fmt::Debug for HandshakeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.held.lock().map(|h| h.by_iv.len()).unwrap_or(0);
        f.debug_struct("HandshakeSecrets").field("held", &n).finish()
    }
}

impl HandshakeSecrets {
    /// Takes the secret whose keys have this IV, if it is still held.
    pub fn take(&self, iv: &[u8; 12]) -> Option<Secret> {
        self.held.lock().ok()?.by_iv.remove(iv)
    }

    /// Drops the secrets held longer than [`HOLD`] (also done as new ones come).
    pub fn prune(&self, now: Instant) {
        if let Ok(mut h) = self.held.lock() {
            h.prune(now, 0);
        }
    }

    /// Secrets held now.
    pub fn len(&self) -> usize {
        self.held.lock().map(|h| h.by_iv.len()).unwrap_or(0)
    }

    /// Whether no secret is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hold(&self, secret: Secret, now: Instant) {
        let iv: [u8; 12] = expand_label(secret.hash, &secret.bytes, b"iv", 12)[..].try_into().expect("12 bytes");
        let Ok(mut h) = self.held.lock() else { return };
        h.prune(now, 1);
        h.order.push_back((now, iv));
        h.by_iv.insert(iv, secret);
    }
}

impl Held {
    /// Drops what is older than [`HOLD`], and the oldest until `room` more fit.
    fn prune(&mut self, now: Instant, room: usize) {
        while let Some(&(at, old)) = self.order.front() {
            if self.order.len() + room <= MAX_HELD && now.duration_since(at) < HOLD {
                break;
            }
            self.order.pop_front();
            self.by_iv.remove(&old);
        }
        if self.order.is_empty() {
            // Give the memory of a past burst back.
            self.order.shrink_to_fit();
            self.by_iv.shrink_to_fit();
        }
    }
}

impl rustls::KeyLog for HandshakeSecrets {
    fn will_log(&self, label: &str) -> bool {
        matches!(label, "CLIENT_TRAFFIC_SECRET_0" | "SERVER_TRAFFIC_SECRET_0")
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        let hash = match secret.len() {
            32 => hkdf::HKDF_SHA256,
            48 => hkdf::HKDF_SHA384,
            _ => return,
        };
        if self.will_log(label) {
            self.hold(Secret { hash, bytes: Zeroizing::new(secret.to_vec()) }, Instant::now());
        }
    }
}

/// HKDF-Expand-Label of TLS 1.3 (RFC 8446 section 7.1), with an empty context.
pub fn expand_label(hash: hkdf::Algorithm, secret: &[u8], label: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Prk::new_less_safe(hash, secret);
    let label_len = [(6 + label.len()) as u8];
    let out_len = (len as u16).to_be_bytes();
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    let mut out = Zeroizing::new(vec![0u8; len]);
    prk.expand(&info, Len(len)).and_then(|okm| okm.fill(&mut out)).expect("HKDF output of a valid length");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::KeyLog;

    #[test]
    fn only_first_traffic_secrets_are_held_and_for_a_while() {
        let s = HandshakeSecrets::default();
        s.log("CLIENT_HANDSHAKE_TRAFFIC_SECRET", &[0; 32], &[1; 32]);
        s.log("EXPORTER_SECRET", &[0; 32], &[1; 32]);
        assert_eq!(s.len(), 0);
        s.log("CLIENT_TRAFFIC_SECRET_0", &[0; 32], &[2; 32]);
        assert_eq!(s.len(), 1);
        let iv: [u8; 12] = expand_label(hkdf::HKDF_SHA256, &[2; 32], b"iv", 12)[..].try_into().unwrap();
        assert!(s.take(&iv).is_some());
        assert!(s.take(&iv).is_none(), "taken once");
        // Old secrets age out when new ones come.
        let t0 = Instant::now();
        s.hold(Secret { hash: hkdf::HKDF_SHA256, bytes: Zeroizing::new(vec![3; 32]) }, t0);
        s.hold(Secret { hash: hkdf::HKDF_SHA256, bytes: Zeroizing::new(vec![4; 32]) }, t0 + HOLD);
        assert_eq!(s.len(), 1, "the older one went");
        // And without new ones, as time passes.
        s.prune(t0 + HOLD + HOLD);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_flood_of_handshakes_never_grows_the_table_past_its_bound() {
        let s = HandshakeSecrets::default();
        let now = Instant::now();
        for i in 0..MAX_HELD as u32 + 100 {
            let mut b = vec![0u8; 32];
            b[..4].copy_from_slice(&i.to_be_bytes());
            s.hold(Secret { hash: hkdf::HKDF_SHA256, bytes: Zeroizing::new(b) }, now);
        }
        assert_eq!(s.len(), MAX_HELD);
    }
}
