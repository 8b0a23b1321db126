//! Counters for `/metrics` (Prometheus text format, loopback only) and
//! `thingate status`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::registry::MachineRegistry;
use crate::relay::Traffic;
use crate::sessions::Sessions;

/// Event counters; gauges are read from the registry when rendering.
#[derive(Debug, Default)]
pub struct Metrics {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Connections refused by DoS protection.
    pub connections_refused: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// TLS handshakes or HTTP heads that failed or timed out.
    pub handshake_errors: AtomicU64,
    /// Successful registrations (new or renamed).
    pub registrations: AtomicU64,
    /// Refused registrations (limits, token, taken IDs, ...).
    pub registrations_refused: AtomicU64,
    /// Server sessions refused because the gateway was full.
    pub sessions_refused: AtomicU64,
    /// Server sessions that gave their place to a machine of higher standing.
    pub sessions_evicted: AtomicU64,
    /// Connections closed because they came from a peer not allowed to send
    /// a PROXY header (`ProxyProtocolFrom`).
    pub proxy_untrusted: AtomicU64,
    /// Failed key proofs of servers.
    pub auth_failures: AtomicU64,
    /// Client tunnels paired.
    pub tunnels: AtomicU64,
    /// Client tunnels relaying now.
    pub tunnels_open: AtomicU64,
    /// Clients sent to the cluster member their computer is online at.
    pub redirects: AtomicU64,
}

/// Increments a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Holds a gauge up while alive.
pub struct Open {
    metrics: Arc<Metrics>,
    gauge: fn(&Metrics) -> &AtomicU64,
}

impl Open {
    /// Increments the gauge that `gauge` picks until the guard drops.
    pub fn new(metrics: &Arc<Metrics>, gauge: fn(&Metrics) -> &AtomicU64) -> Self {
        gauge(metrics).fetch_add(1, Ordering::Relaxed);
        Self { metrics: metrics.clone(), gauge }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        (self.gauge)(&self.metrics).fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the figures (`/metrics`, statistics posts) are read from.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Event counters.
    pub metrics: Arc<Metrics>,
    /// Relayed bytes.
    pub traffic: Arc<Traffic>,
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Registered machines.
    pub registry: Arc<dyn MachineRegistry>,
    /// When the gateway started.
    pub started: Instant,
    /// The cluster this gateway is a member of (`StandaloneMode 0`).
    pub cluster: Option<Arc<crate::registry::cluster_view::ClusterInfo>>,
}

/// One line per metric: (name, type, help, value).
pub fn snapshot(gw: &Figures) -> Vec<(&'static str, &'static str, &'static str, u64)> {
    let m = &gw.metrics;
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    vec![
        ("thingate_connections_total", "counter", "TCP connections accepted", g(&m.connections)),
        (
            "thingate_connections_refused_total",
            "counter",
            "connections refused by DoS protection",
            g(&m.connections_refused),
        ),
        ("thingate_connections_open", "gauge", "connections open now", g(&m.connections_open)),
        (
            "thingate_handshake_errors_total",
            "counter",
            "failed or timed-out TLS handshakes and HTTP heads",
            g(&m.handshake_errors),
        ),
        ("thingate_server_sessions", "gauge", "office PCs online", gw.sessions.len() as u64),
        (
            "thingate_registered_machines",
            "gauge",
            "machines in MachineDatabase.config",
            gw.registry.registered_count() as u64,
        ),
        (
            "thingate_database_saves_total",
            "counter",
            "saves of MachineDatabase.config (a burst of registrations shares one)",
            gw.registry.saves(),
        ),
        ("thingate_client_sessions", "gauge", "client tunnels relaying now", g(&m.tunnels_open)),
        ("thingate_client_sessions_total", "counter", "client tunnels paired", g(&m.tunnels)),
        (
            "thingate_client_redirects_total",
            "counter",
            "clients sent to the cluster member their computer is online at",
            g(&m.redirects),
        ),
        ("thingate_registrations_total", "counter", "registrations and renames accepted", g(&m.registrations)),
        ("thingate_registrations_refused_total", "counter", "registrations refused", g(&m.registrations_refused)),
        (
            "thingate_server_sessions_refused_total",
            "counter",
            "server sessions refused: MaxServerSessions reached",
            g(&m.sessions_refused),
        ),
        (
            "thingate_server_sessions_evicted_total",
            "counter",
            "server sessions that gave their place to a machine that served before",
            g(&m.sessions_evicted),
        ),
        (
            "thingate_proxy_untrusted_total",
            "counter",
            "connections closed: not from a load balancer listed in ProxyProtocolFrom",
            g(&m.proxy_untrusted),
        ),
        ("thingate_auth_failures_total", "counter", "failed key proofs of office PCs", g(&m.auth_failures)),
        (
            "thingate_relayed_bytes_client_to_server_total",
            "counter",
            "bytes relayed from clients to servers",
            gw.traffic.client_to_server.load(Ordering::Relaxed),
        ),
        (
            "thingate_relayed_bytes_server_to_client_total",
            "counter",
            "bytes relayed from servers to clients",
            gw.traffic.server_to_client.load(Ordering::Relaxed),
        ),
        ("thingate_uptime_seconds", "gauge", "seconds since start", gw.started.elapsed().as_secs()),
    ]
}

/// Renders the Prometheus text exposition format.
pub fn render(gw: &Figures) -> String {
    let mut out = String::new();
    for (name, kind, help, v) in snapshot(gw) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    }
    out
}
