//! The host name of a connecting address, as the original shows it in
//! `/thinstat/` (`Hostname`) and the machine database (`CreateHost`): the DNS
//! name of the office PC's address (`NoLookupDnsHostname 0`, the default), or
//! the address itself when look-ups are off, fail or are slow. The name the
//! office PC reports about itself is not shown.
//!
//! A PTR record is chosen by whoever controls the address's reverse zone, so a
//! name is used only when it looks like a host name (at most 253 characters
//! of letters, digits, `-`, `_` and dots, no empty label). A look-up calls the
//! system's resolver (`getnameinfo`: `/etc/hosts`, then DNS, as nsswitch
//! says), which blocks: it runs on tokio's blocking pool, at most
//! [`MAX_LOOKUPS`] at once (a look-up that outlives its caller's timeout
//! keeps its slot until it returns; while every slot is taken an address is
//! shown as itself at once, and asked again next time), and a caller waits
//! at most [`LOOKUP_TIMEOUT`]. Answers, failures and timeouts included, are
//! cached for [`CACHE_TTL`], at most [`CACHE_ENTRIES`] addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Longest wait for a name, in all.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Look-ups running at once (threads of the blocking pool).
pub const MAX_LOOKUPS: usize = 8;
/// Addresses remembered.
pub const CACHE_ENTRIES: usize = 4096;
/// How long a name (or the lack of one) is remembered.
pub const CACHE_TTL: Duration = Duration::from_secs(600);

/// A blocking reverse look-up: the name of an address, or `None`.
pub trait ReverseLookup: Send + Sync + std::fmt::Debug + 'static {
    /// The name of `ip`, as the resolver gives it (checked by the caller).
    fn name_of(&self, ip: IpAddr) -> Option<String>;
}

/// The system's resolver (`getnameinfo` with `NI_NAMEREQD`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl ReverseLookup for SystemResolver {
    fn name_of(&self, ip: IpAddr) -> Option<String> {
        dns_lookup::lookup_addr(&ip).ok()
    }
}

/// Bounds of [`HostNames`].
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Longest wait for a name.
    pub timeout: Duration,
    /// Look-ups at once.
    pub max_lookups: usize,
    /// Addresses remembered.
    pub cache_entries: usize,
    /// How long an answer is remembered.
    pub ttl: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { timeout: LOOKUP_TIMEOUT, max_lookups: MAX_LOOKUPS, cache_entries: CACHE_ENTRIES, ttl: CACHE_TTL }
    }
}

/// The names shown for connecting addresses.
#[derive(Debug)]
pub struct HostNames {
    lookup: Option<Arc<dyn ReverseLookup>>,
    bounds: Bounds,
    running: Arc<Semaphore>,
    cache: Mutex<HashMap<IpAddr, (String, Instant)>>,
}

impl HostNames {
    /// Names from `lookup` (`None`: every address is shown as itself).
    pub fn new(lookup: Option<Arc<dyn ReverseLookup>>, bounds: Bounds) -> Arc<Self> {
        let running = Arc::new(Semaphore::new(bounds.max_lookups.max(1)));
        Arc::new(HostNames { lookup, bounds, running, cache: Mutex::default() })
    }

    /// The system's resolver unless `NoLookupDnsHostname` is 1.
    pub fn from_config(no_lookup_dns_hostname: bool) -> Arc<Self> {
        let lookup = (!no_lookup_dns_hostname).then(|| Arc::new(SystemResolver) as Arc<dyn ReverseLookup>);
        Self::new(lookup, Bounds::default())
    }

    /// The name shown for `ip`: its checked DNS name, or the address as text.
    pub async fn name_of(&self, ip: IpAddr) -> String {
        let Some(lookup) = &self.lookup else { return ip.to_string() };
        if let Some(name) = self.cached(ip) {
            return name;
        }
        // No free slot: the address now, without remembering it.
        let Ok(slot) = self.running.clone().try_acquire_owned() else { return ip.to_string() };
        let name = self.resolve(lookup.clone(), ip, slot).await.unwrap_or_else(|| ip.to_string());
        self.remember(ip, name.clone());
        name
    }

    /// Addresses remembered now.
    pub fn cached_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (String, Instant)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, ip: IpAddr) -> Option<String> {
        let cache = self.lock();
        cache.get(&ip).filter(|(_, at)| at.elapsed() < self.bounds.ttl).map(|(n, _)| n.clone())
    }

    fn remember(&self, ip: IpAddr, name: String) {
        let mut cache = self.lock();
        if cache.len() >= self.bounds.cache_entries && !cache.contains_key(&ip) {
            let ttl = self.bounds.ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            while cache.len() >= self.bounds.cache_entries.max(1) {
                let Some(oldest) = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(ip, _)| *ip) else { break };
                cache.remove(&oldest);
            }
        }
        cache.insert(ip, (name, Instant::now()));
    }

    /// Looks `ip` up on the blocking pool within the timeout; the thread
    /// keeps `slot` until the look-up returns.
    async fn resolve(
        &self,
        lookup: Arc<dyn ReverseLookup>,
        ip: IpAddr,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Option<String> {
        let task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            lookup.name_of(ip)
        });
        let name = tokio::time::timeout(self.bounds.timeout, task).await.ok()?.ok()??;
        host_name(&name)
    }
}

/// `name` when it is a well-formed host name (a trailing dot dropped, lower
/// case), else `None`.
pub fn host_name(name: &str) -> Option<String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (n.len() <= 253 && n.split('.').all(label_ok)).then(|| n.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers from a table and counts its calls.
    #[derive(Debug, Default)]
    struct Table(HashMap<IpAddr, String>, AtomicUsize);

    impl ReverseLookup for Table {
        fn name_of(&self, ip: IpAddr) -> Option<String> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.get(&ip).cloned()
        }
    }

    /// Blocks each look-up until the test lets it go.
    #[derive(Debug)]
    struct Stuck(Mutex<std::sync::mpsc::Receiver<()>>, AtomicUsize);

    impl ReverseLookup for Stuck {
        fn name_of(&self, _: IpAddr) -> Option<String> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let _ = self.0.lock().unwrap().recv();
            Some("late.example.org".into())
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_host_names_are_shown() {
        assert_eq!(host_name("Desk-01.Example.ORG.").as_deref(), Some("desk-01.example.org"));
        assert_eq!(host_name("localhost").as_deref(), Some("localhost"));
        for bad in ["", ".", "a..b", "evil name", "a\r\nb", "<b>x</b>", "caf\u{e9}.example", &"a".repeat(64)] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert_eq!(host_name(&long), None);
        assert!(host_name(&long[2..]).is_some());
    }

    #[tokio::test]
    async fn names_are_looked_up_once_checked_and_the_cache_is_bounded() {
        let table = Arc::new(Table(
            [(ip("192.0.2.1"), "Desk.example.org.".to_string()), (ip("192.0.2.2"), "bad name\n".to_string())].into(),
            AtomicUsize::new(0),
        ));
        let bounds = Bounds { cache_entries: 2, ..Bounds::default() };
        let names = HostNames::new(Some(table.clone()), bounds);
        assert_eq!(names.name_of(ip("192.0.2.1")).await, "desk.example.org");
        assert_eq!(names.name_of(ip("192.0.2.1")).await, "desk.example.org");
        assert_eq!(table.1.load(Ordering::SeqCst), 1, "the second answer came from the cache");
        assert_eq!(names.name_of(ip("192.0.2.2")).await, "192.0.2.2", "a malformed PTR name is not shown");
        assert_eq!(names.name_of(ip("2001:db8::7")).await, "2001:db8::7", "no name: the address");
        assert_eq!(names.cached_len(), 2, "at most two addresses remembered");
        assert_eq!(table.1.load(Ordering::SeqCst), 3);
        // The oldest went first: 192.0.2.1 is looked up again.
        assert_eq!(names.name_of(ip("192.0.2.1")).await, "desk.example.org");
        assert_eq!(table.1.load(Ordering::SeqCst), 4);
        let off = HostNames::new(None, Bounds::default());
        assert_eq!(off.name_of(ip("192.0.2.1")).await, "192.0.2.1");
        assert_eq!(table.1.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stuck_resolver_costs_the_timeout_and_blocks_no_worker() {
        let (release, rx) = std::sync::mpsc::channel();
        let stuck = Arc::new(Stuck(Mutex::new(rx), AtomicUsize::new(0)));
        let timeout = Duration::from_millis(300);
        let names = HostNames::new(Some(stuck.clone()), Bounds { timeout, max_lookups: 1, ..Bounds::default() });
        // The one worker thread keeps running other tasks while the look-up hangs.
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let started = Instant::now();
        assert_eq!(names.name_of(ip("192.0.2.1")).await, "192.0.2.1");
        let took = started.elapsed();
        assert!(took >= timeout && took < timeout * 5, "{took:?}");
        assert!(ticks.load(Ordering::SeqCst) >= 5, "the worker was blocked: {} ticks", ticks.load(Ordering::SeqCst));
        // The hung look-up still holds the only slot: another address is shown
        // as itself at once, without a second thread, and is not remembered.
        let started = Instant::now();
        assert_eq!(names.name_of(ip("192.0.2.9")).await, "192.0.2.9");
        assert!(started.elapsed() < timeout, "no wait for a slot");
        assert_eq!(stuck.1.load(Ordering::SeqCst), 1, "one blocked thread at most");
        assert_eq!(names.cached_len(), 1);
        // Failures are remembered too: no new wait for the same address.
        let started = Instant::now();
        assert_eq!(names.name_of(ip("192.0.2.1")).await, "192.0.2.1");
        assert!(started.elapsed() < timeout, "cached");
        release.send(()).unwrap();
        ticker.abort();
    }
}
