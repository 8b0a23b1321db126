//! `thingate doctor`'s sizing: how many office PCs and how much traffic this
//! host holds, from the figures the relay benchmarks measured (BENCHMARKS.md,
//! `cargo bench -p thin-e2e --bench relay`) and this host's cores, memory and
//! open-file limit.

/// Gateway memory per connected office PC (idle server session): 17.5 KiB
/// measured with 10,000 of them (BENCHMARKS.md, "Idle office PCs per
/// gateway"), rounded up.
pub const SESSION_BYTES: u64 = 18 * 1024;

/// Gateway CPU per keepalive round trip: 21 µs (10,000 office PCs pinging
/// once a second used 17-24 % of a core).
pub const KEEPALIVE_CPU_NS: u64 = 21_000;

/// Gateway CPU per GiB relayed: 0.5 s. With bare records (apps of this
/// version, README) the gateway opens and seals nothing after the login: the
/// versus bench's "relay CPU per GiB" was 0.37-0.44 s (BENCHMARKS.md, runs
/// 32-33), rounded up since the same VM moves by a third from day to day.
/// Tunnels of older apps, whose records the gateway decrypts and encrypts
/// again, cost about 1.1 s.
pub const CPU_NS_PER_GIB: u64 = 500_000_000;

/// Share of the available memory the sizing gives to idle sessions; the rest
/// is for the tunnels' buffers while they carry traffic, and the system.
pub const MEMORY_SHARE_PERCENT: u64 = 50;

/// Share of the cores the sizing gives to keepalives.
pub const KEEPALIVE_CPU_SHARE_PERCENT: u64 = 10;

/// Open files kept for the listener, the database, logs and new connections.
pub const RESERVED_FILES: u64 = 1_024;

/// A busy full-screen remote desktop, for the "desktops at once" line.
pub const DESKTOP_MBIT: u64 = 5;

/// What the sizing needs to know of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Cores this process may use.
    pub cores: u64,
    /// `MemAvailable` of /proc/meminfo, bytes.
    pub mem_available: u64,
    /// Soft limit of open files of this process.
    pub nofile: u64,
    /// The gateway's `TunnelKeepAlive`, ms.
    pub keepalive_ms: u64,
}

/// What limits the number of office PCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Half the available memory at [`SESSION_BYTES`] each.
    Memory,
    /// One open file each.
    OpenFiles,
    /// A tenth of the cores for keepalives.
    Cpu,
}

/// What this host holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Office PCs the memory share holds.
    pub by_memory: u64,
    /// Office PCs the open-file limit holds.
    pub by_files: u64,
    /// Office PCs whose keepalives the CPU share answers.
    pub by_cpu: u64,
    /// The smallest of the three.
    pub sessions: u64,
    /// Which one it is.
    pub limit: Limit,
    /// Relayed traffic with every core busy, Mbit/s.
    pub relay_mbit: u64,
}

impl Sizing {
    /// Full-screen desktops at [`DESKTOP_MBIT`] each that the relay carries at once.
    pub fn desktops(&self) -> u64 {
        self.relay_mbit / DESKTOP_MBIT
    }
}

/// Sizes `host`.
pub fn size(host: Host) -> Sizing {
    let by_memory = host.mem_available / 100 * MEMORY_SHARE_PERCENT / SESSION_BYTES;
    let by_files = host.nofile.saturating_sub(RESERVED_FILES);
    // Each office PC costs KEEPALIVE_CPU_NS once per keepalive interval.
    let cpu_ns_per_s = host.cores.saturating_mul(1_000_000_000) / 100 * KEEPALIVE_CPU_SHARE_PERCENT;
    let by_cpu = cpu_ns_per_s.saturating_mul(host.keepalive_ms.max(1)) / 1_000 / KEEPALIVE_CPU_NS;
    let (sessions, limit) = [(by_memory, Limit::Memory), (by_files, Limit::OpenFiles), (by_cpu, Limit::Cpu)]
        .into_iter()
        .min_by_key(|(n, _)| *n)
        .expect("three candidates");
    // GiB/s per core = 1 s / CPU_NS_PER_GIB; in Mbit/s: * 8 * 1024^3 / 10^6.
    let relay_mbit = (u128::from(host.cores) * 1_000_000_000 * 8 * (1 << 30) / u128::from(CPU_NS_PER_GIB) / 1_000_000)
        .try_into()
        .unwrap_or(u64::MAX);
    Sizing { by_memory, by_files, by_cpu, sessions, limit, relay_mbit }
}

/// Reads this host: cores, `MemAvailable`, the open-file limit; the
/// keepalive interval is the gateway's.
pub fn this_host(keepalive_ms: u64) -> Host {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let mem_available =
        std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| meminfo_bytes(&m, "MemAvailable")).unwrap_or(0);
    let (nofile, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    Host { cores, mem_available, nofile, keepalive_ms }
}

/// A `KEY: N kB` line of /proc/meminfo, in bytes.
pub fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.split(':').next() == Some(key))?;
    let kb: u64 = line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// The sizing as `thingate doctor` prints it; `max_sessions` is the
/// configured `MaxServerSessions`, when a ThinGate.ini was read.
pub fn report(host: Host, s: &Sizing, max_sessions: Option<u64>) -> String {
    let mib = |b: u64| b / (1 << 20);
    let limit = match s.limit {
        Limit::Memory => "memory",
        Limit::OpenFiles => "the open-file limit",
        Limit::Cpu => "CPU for keepalives",
    };
    let mut t = format!(
        "sizing (from the relay benchmarks, BENCHMARKS.md: {} KiB and {} µs of keepalive per office PC, {:.1} CPU s per GiB relayed):\n",
        SESSION_BYTES / 1024,
        KEEPALIVE_CPU_NS / 1_000,
        CPU_NS_PER_GIB as f64 / 1e9,
    );
    t.push_str(&format!(
        "  this host: {} cores, {} MiB available, {} open files, keepalive every {} ms\n",
        host.cores,
        mib(host.mem_available),
        host.nofile,
        host.keepalive_ms
    ));
    t.push_str(&format!(
        "  office PCs connected at once: {} (limited by {limit}; memory holds {}, open files {}, keepalive CPU {})\n",
        s.sessions, s.by_memory, s.by_files, s.by_cpu
    ));
    t.push_str(&format!(
        "  relayed traffic these cores carry: {:.1} Gbit/s (unless the network is slower), about {} full-screen desktops at {} Mbit/s each\n",
        s.relay_mbit as f64 / 1000.0,
        s.desktops(),
        DESKTOP_MBIT
    ));
    if let Some(m) = max_sessions {
        if m > s.sessions {
            t.push_str(&format!(
                "  note: MaxServerSessions {m} is more than this host holds ({}); lower it or give the host more {limit}\n",
                s.sessions
            ));
        } else {
            t.push_str(&format!("  MaxServerSessions {m} is within what this host holds\n"));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_core_host_with_four_gib_holds_what_the_benchmarks_measured() {
        let h = Host { cores: 2, mem_available: 4 << 30, nofile: 1_048_575, keepalive_ms: 10_000 };
        let s = size(h);
        // 2 GiB / 18 KiB.
        assert_eq!(s.by_memory, 116_508);
        assert_eq!(s.by_files, 1_047_551);
        // 0.2 core-seconds per second / 21 µs * 10 s.
        assert_eq!(s.by_cpu, 95_238);
        // Memory no longer limits first: the keepalives' share of the cores does.
        assert_eq!((s.sessions, s.limit), (95_238, Limit::Cpu));
        // 2 cores / 0.5 s per GiB = 4 GiB/s = 34.4 Gbit/s.
        assert_eq!(s.relay_mbit, 34_359);
        assert_eq!(s.desktops(), 6_871);
    }

    #[test]
    fn the_smallest_resource_limits() {
        let files = size(Host { cores: 8, mem_available: 64 << 30, nofile: 1_024 + 500, keepalive_ms: 10_000 });
        assert_eq!((files.sessions, files.limit), (500, Limit::OpenFiles));
        let cpu = size(Host { cores: 1, mem_available: 64 << 30, nofile: 1 << 20, keepalive_ms: 100 });
        assert_eq!((cpu.sessions, cpu.limit), (476, Limit::Cpu));
        let none = size(Host { cores: 1, mem_available: 0, nofile: 0, keepalive_ms: 0 });
        assert_eq!(none.sessions, 0);
    }

    #[test]
    fn the_report_names_the_limit_and_the_configured_maximum() {
        let h = Host { cores: 2, mem_available: 1 << 30, nofile: 1_048_575, keepalive_ms: 10_000 };
        let s = size(h);
        let t = report(h, &s, Some(100_000));
        assert!(t.contains("office PCs connected at once: 29127 (limited by memory"), "{t}");
        assert!(t.contains("note: MaxServerSessions 100000 is more than this host holds (29127)"), "{t}");
        assert!(report(h, &s, Some(10_000)).contains("MaxServerSessions 10000 is within"));
        assert_eq!(meminfo_bytes("MemTotal: 10 kB\nMemAvailable:   3 kB\n", "MemAvailable"), Some(3072));
        assert_eq!(meminfo_bytes("MemTotal: 10 kB\n", "MemAvailable"), None);
    }
}
