//! `thingate doctor`: compares this host with the settings of manual 5-5 (the
//! same list the bundle's `sysctl.d` and `limits.d` files install) and says
//! what differs and how to fix it; then how many office PCs and how much
//! traffic this host holds ([`sizing`]).

pub mod sizing;

/// The bundle's sysctl file; `{{...}}` lines are comments of the template.
const SYSCTL: &str = include_str!("../../../templates/sysctl.conf.hbs");

/// Open files the gateway wants (manual 5-5: nofile 1048575).
pub const WANT_NOFILE: u64 = 1_048_575;

/// One compared setting.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Setting name (`net.core.somaxconn`, `nofile`).
    pub key: String,
    /// Wanted value.
    pub want: String,
    /// Value on this host (or `unreadable`).
    pub have: String,
    /// True when the host meets the setting.
    pub ok: bool,
    /// The command or file that fixes it.
    pub fix: String,
}

/// Keys whose value must not be larger than wanted (a timeout).
fn at_most(key: &str) -> bool {
    key.ends_with("tcp_fin_timeout")
}

/// Keys that are a policy or a switch, not a capacity: only the wanted value will do.
fn exact(key: &str) -> bool {
    const EXACT: [&str; 12] = [
        "kernel.panic",
        "kernel.panic_on_oops",
        "vm.overcommit_memory",
        "vm.overcommit_ratio",
        "vm.panic_on_oom",
        "vm.oom_kill_allocating_task",
        "kernel.sysrq",
        "kernel.core_uses_pid",
        "net.ipv4.tcp_rfc1337",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_timestamps",
        "net.ipv4.ip_local_port_range",
    ];
    EXACT.contains(&key)
}

fn meets(key: &str, have: &str, want: &str) -> bool {
    let h: Vec<&str> = have.split_whitespace().collect();
    let w: Vec<&str> = want.split_whitespace().collect();
    if exact(key) || h.len() != w.len() {
        return h == w;
    }
    h.iter().zip(&w).all(|(h, w)| match (h.parse::<u64>(), w.parse::<u64>()) {
        (Ok(h), Ok(w)) if at_most(key) => h <= w,
        (Ok(h), Ok(w)) => h >= w,
        _ => h == w,
    })
}

/// The wanted sysctl values.
pub fn wanted() -> Vec<(String, String)> {
    SYSCTL
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("{{"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// Compares the host with every wanted setting.
pub fn check() -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, want) in wanted() {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let have = std::fs::read_to_string(&path)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unreadable".into());
        let ok = meets(&key, &have, &want);
        let fix = format!("sysctl -w {key}=\"{want}\" (the bundle's install.sh keeps it in /etc/sysctl.d/)");
        out.push(Finding { key, want, have, ok, fix });
    }
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    out.push(Finding {
        key: "nofile (open files, this process)".into(),
        want: WANT_NOFILE.to_string(),
        have: format!("{soft} (hard {hard})"),
        ok: soft >= WANT_NOFILE,
        fix: "LimitNOFILE=1048575 in the systemd unit (the bundle's unit sets it) and /etc/security/limits.d/".into(),
    });
    out
}

/// Renders the findings as a table; returns (text, number of differences).
pub fn report(findings: &[Finding]) -> (String, usize) {
    let mut text = String::new();
    let mut bad = 0;
    for f in findings {
        if f.ok {
            text.push_str(&format!("ok    {} = {} (wanted {})\n", f.key, f.have, f.want));
        } else {
            bad += 1;
            text.push_str(&format!("DIFF  {} = {} (wanted {})\n      fix: {}\n", f.key, f.have, f.want, f.fix));
        }
    }
    text.push_str(&match bad {
        0 => "this host matches the gateway's recommended settings\n".to_string(),
        n => format!("{n} setting(s) differ from the gateway's recommended settings (manual 5-5)\n"),
    });
    (text, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons() {
        assert!(wanted().iter().any(|(k, v)| k == "net.core.somaxconn" && v == "1024"));
        assert!(meets("net.core.somaxconn", "4096", "1024"));
        assert!(!meets("net.core.somaxconn", "128", "1024"));
        assert!(wanted().iter().any(|(k, v)| k == "net.ipv4.tcp_rmem" && v == "4096 87380 5955584"));
        assert!(wanted().iter().any(|(k, v)| k == "kernel.sem" && v == "65536 655360 64 655360"));
        assert_eq!(wanted().len(), 32, "every setting of manual 5-5");
        assert!(meets("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 87380 5955584"));
        assert!(!meets("net.ipv4.tcp_rmem", "4096 16384 4194304", "4096 87380 5955584"));
        assert!(meets("net.ipv4.tcp_fin_timeout", "4", "4"));
        assert!(!meets("net.ipv4.tcp_fin_timeout", "60", "4"));
        assert!(!meets("net.ipv4.tcp_timestamps", "1", "0"), "a switch must match exactly");
        assert!(!meets("vm.overcommit_memory", "0", "2"));
        assert!(meets("kernel.sysrq", "0", "0"));
        let (text, bad) = report(&check());
        assert_eq!(bad, text.matches("DIFF").count());
    }
}
