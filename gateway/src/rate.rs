//! Rate limits as token buckets: at most `count` events per `per` for each key
//! (a source network, a machine) and for all keys together. A bucket starts
//! full (a burst of `count` is allowed) and refills evenly over `per`.
//!
//! INVARIANT: the key map never holds more than `max_keys` buckets; full
//! buckets (keys idle for a whole period) are dropped first, and when every
//! bucket is in use a new key is refused as if the total were spent.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed per period (also the burst).
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// `count` per minute.
    pub fn per_minute(count: u32) -> Rate {
        Rate { count, per: Duration::from_secs(60) }
    }

    /// `count` per hour.
    pub fn per_hour(count: u32) -> Rate {
        Rate { count, per: Duration::from_secs(3600) }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(rate.count), at: now }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained = now.duration_since(self.at).as_secs_f64() * f64::from(rate.count) / rate.per.as_secs_f64();
        self.tokens = (self.tokens + gained).min(f64::from(rate.count));
        self.at = now;
    }

    fn is_full(&self, rate: Rate) -> bool {
        self.tokens >= f64::from(rate.count)
    }

    /// Time until one token is there.
    fn wait(&self, rate: Rate) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing * rate.per.as_secs_f64() / f64::from(rate.count.max(1)))
            .max(Duration::from_secs(1))
    }
}

/// Which limit refused an event, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// The key's own limit.
    Key(Duration),
    /// The limit of all keys together.
    Total(Duration),
}

impl Throttled {
    /// When one more event would be allowed (at least 1 s).
    pub fn retry_after(&self) -> Duration {
        match self {
            Throttled::Key(d) | Throttled::Total(d) => *d,
        }
    }
}

#[derive(Debug)]
struct State<K> {
    keys: HashMap<K, Bucket>,
    total: Bucket,
}

/// A limit per key and a limit in total.
#[derive(Debug)]
pub struct Throttle<K> {
    per_key: Rate,
    total: Rate,
    max_keys: usize,
    state: Mutex<State<K>>,
}

/// Keys tracked at most by default (a bucket is about 40 bytes).
pub const MAX_KEYS: usize = 65_536;

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// `per_key` for each key, `total` for all; at most [`MAX_KEYS`] keys tracked.
    pub fn new(per_key: Rate, total: Rate) -> Self {
        Self::with_max_keys(per_key, total, MAX_KEYS)
    }

    /// As [`Throttle::new`], tracking at most `max_keys` keys.
    pub fn with_max_keys(per_key: Rate, total: Rate, max_keys: usize) -> Self {
        let now = Instant::now();
        let state = State { keys: HashMap::new(), total: Bucket::full(total, now) };
        Self { per_key, total, max_keys: max_keys.max(1), state: Mutex::new(state) }
    }

    /// Counts one event of `key` if both limits allow it; a refused event
    /// counts for neither.
    pub fn take(&self, key: &K) -> Result<(), Throttled> {
        let now = Instant::now();
        let (per_key, total) = (self.per_key, self.total);
        let mut st = self.state.lock().expect("throttle lock");
        st.total.refill(total, now);
        if !st.keys.contains_key(key) && st.keys.len() >= self.max_keys {
            st.keys.retain(|_, b| {
                b.refill(per_key, now);
                !b.is_full(per_key)
            });
            if st.keys.len() >= self.max_keys {
                return Err(Throttled::Total(per_key.per / per_key.count.max(1)));
            }
        }
        let State { keys, total: all } = &mut *st;
        let b = keys.entry(key.clone()).or_insert_with(|| Bucket::full(per_key, now));
        b.refill(per_key, now);
        if b.tokens < 1.0 {
            return Err(Throttled::Key(b.wait(per_key)));
        }
        if all.tokens < 1.0 {
            return Err(Throttled::Total(all.wait(total)));
        }
        b.tokens -= 1.0;
        all.tokens -= 1.0;
        Ok(())
    }

    /// Keys tracked now.
    pub fn keys(&self) -> usize {
        self.state.lock().expect("throttle lock").keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn per_key_and_total_limits_refill_over_the_period() {
        let t = Throttle::new(Rate::per_minute(3), Rate::per_minute(5));
        for _ in 0..3 {
            assert_eq!(t.take(&"a"), Ok(()));
        }
        let Err(Throttled::Key(wait)) = t.take(&"a") else { panic!("a's fourth event within a minute") };
        assert_eq!(wait, Duration::from_secs(20), "one token comes back every 20 s");
        assert_eq!((t.take(&"b"), t.take(&"b")), (Ok(()), Ok(())));
        assert!(matches!(t.take(&"c"), Err(Throttled::Total(_))), "5 in total");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(t.take(&"a"), Ok(()), "a token refilled");
        assert!(t.take(&"a").is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(t.take(&"a"), Ok(()), "full again after a period, but no more than the burst");
        }
        assert!(t.take(&"a").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_key_map_is_bounded() {
        let t = Throttle::with_max_keys(Rate::per_minute(2), Rate::per_minute(1000), 4);
        for k in 0..4 {
            assert_eq!(t.take(&k), Ok(()));
        }
        assert!(matches!(t.take(&99), Err(Throttled::Total(_))), "no room for a fifth key");
        assert_eq!(t.keys(), 4);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(t.take(&99), Ok(()), "idle (full) buckets make room");
        assert_eq!(t.keys(), 1);
    }
}
