//! What the admin console (`crate::admin`) shows live: the relayed tunnels
//! with their client's address and bytes ([`LiveTunnels`]), and one sample of
//! sessions and traffic a minute for the last day ([`History`]). Both are
//! bounded: a tunnel is listed only while it relays (at most
//! `MaxServerSessions` x `MaxTunnelsPerSession`), and the history keeps
//! [`HISTORY_MINUTES`] samples.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::relay::Traffic;

/// Samples kept: one a minute for 24 hours.
pub const HISTORY_MINUTES: usize = 24 * 60;

/// A relayed tunnel, listed while it relays.
#[derive(Debug)]
pub struct LiveTunnel {
    /// Number of the tunnel (unique while the gateway runs).
    pub id: u64,
    /// Computer ID the client reached.
    pub pcid: String,
    /// Address the client connects from.
    pub client: IpAddr,
    /// When it was paired (Unix ms).
    pub started_ms: i64,
    /// Bytes relayed through this tunnel.
    pub bytes: Arc<Traffic>,
    /// Cancelled to cut the tunnel (the admin disabled or removed the machine).
    pub cut: CancellationToken,
}

/// The tunnels relaying now.
#[derive(Debug, Default)]
pub struct LiveTunnels {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<LiveTunnel>>>,
}

/// Lists a tunnel until it drops.
#[derive(Debug)]
pub struct Listed {
    tunnels: Arc<LiveTunnels>,
    /// The listed tunnel.
    pub tunnel: Arc<LiveTunnel>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.tunnels.lock().remove(&self.tunnel.id);
    }
}

impl LiveTunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LiveTunnel>>> {
        self.map.lock().expect("live tunnels lock")
    }

    /// Lists a tunnel to `pcid` from `client`, cut by `cut`, until the
    /// returned guard drops.
    pub fn open(self: &Arc<Self>, pcid: &str, client: IpAddr, cut: CancellationToken) -> Listed {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let tunnel = Arc::new(LiveTunnel {
            id,
            pcid: pcid.to_string(),
            client,
            started_ms: crate::machine_db::now_ms(),
            bytes: Arc::default(),
            cut,
        });
        self.lock().insert(id, tunnel.clone());
        Listed { tunnels: self.clone(), tunnel }
    }

    /// The tunnels relaying now, oldest first.
    pub fn list(&self) -> Vec<Arc<LiveTunnel>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Cuts every tunnel to `pcid`; returns how many.
    pub fn cut(&self, pcid: &str) -> usize {
        let map = self.lock();
        let mine: Vec<_> = map.values().filter(|t| t.pcid == pcid).collect();
        for t in &mine {
            t.cut.cancel();
        }
        mine.len()
    }
}

/// One minute of the gateway's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// End of the minute (Unix ms).
    pub at_ms: i64,
    /// Office PCs online at that moment.
    pub sessions: u64,
    /// Tunnels relaying at that moment.
    pub tunnels: u64,
    /// Bytes relayed client to server during the minute.
    pub up: u64,
    /// Bytes relayed server to client during the minute.
    pub down: u64,
}

/// The last day, one [`Sample`] a minute.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<HistoryInner>,
}

#[derive(Debug, Default)]
struct HistoryInner {
    /// INVARIANT: at most [`HISTORY_MINUTES`] samples, oldest first.
    samples: VecDeque<Sample>,
    /// The traffic totals at the last sample.
    totals: (u64, u64),
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, HistoryInner> {
        self.inner.lock().expect("history lock")
    }

    /// The sample that [`History::record`] would take now, without taking it.
    pub fn current(&self, at_ms: i64, sessions: u64, tunnels: u64, traffic: &Traffic) -> Sample {
        let (up, down) = totals(traffic);
        let h = self.lock();
        Sample { at_ms, sessions, tunnels, up: up.saturating_sub(h.totals.0), down: down.saturating_sub(h.totals.1) }
    }

    /// Takes the sample of the minute that ends now; the oldest goes when a
    /// day is full.
    pub fn record(&self, at_ms: i64, sessions: u64, tunnels: u64, traffic: &Traffic) {
        let (up, down) = totals(traffic);
        let mut h = self.lock();
        let sample = Sample {
            at_ms,
            sessions,
            tunnels,
            up: up.saturating_sub(h.totals.0),
            down: down.saturating_sub(h.totals.1),
        };
        h.totals = (up, down);
        if h.samples.len() == HISTORY_MINUTES {
            h.samples.pop_front();
        }
        h.samples.push_back(sample);
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.lock().samples.iter().copied().collect()
    }
}

fn totals(t: &Traffic) -> (u64, u64) {
    (t.client_to_server.load(Ordering::Relaxed), t.server_to_client.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_a_day_of_minutes_with_the_traffic_of_each() {
        let h = History::default();
        let t = Traffic::default();
        for i in 0..(HISTORY_MINUTES as u64 + 10) {
            t.client_to_server.fetch_add(i, Ordering::Relaxed);
            t.server_to_client.fetch_add(2 * i, Ordering::Relaxed);
            h.record(i as i64, i, 1, &t);
        }
        let s = h.samples();
        assert_eq!(s.len(), HISTORY_MINUTES, "bounded");
        assert_eq!(s[0].at_ms, 10, "the oldest went first");
        let last = s.last().unwrap();
        assert_eq!((last.up, last.down), (HISTORY_MINUTES as u64 + 9, 2 * (HISTORY_MINUTES as u64 + 9)));
        t.client_to_server.fetch_add(5, Ordering::Relaxed);
        assert_eq!(h.current(99, 0, 0, &t).up, 5, "the minute under way counts from the last sample");
    }

    #[test]
    fn a_tunnel_is_listed_while_its_guard_lives_and_can_be_cut_by_computer() {
        let live = Arc::new(LiveTunnels::default());
        let ip = IpAddr::from([192, 0, 2, 9]);
        let a = live.open("desk-a", ip, CancellationToken::new());
        let b = live.open("desk-b", ip, CancellationToken::new());
        assert_eq!(live.list().iter().map(|t| t.pcid.as_str()).collect::<Vec<_>>(), ["desk-a", "desk-b"]);
        assert_eq!(live.cut("desk-a"), 1);
        assert!(a.tunnel.cut.is_cancelled() && !b.tunnel.cut.is_cancelled());
        drop(a);
        assert_eq!(live.list().len(), 1);
    }
}
