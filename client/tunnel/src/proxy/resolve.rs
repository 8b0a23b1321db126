//! Which proxy to use for a target: explicit option, saved setting,
//! environment (with `NO_PROXY`), then the Windows Internet Options.

use super::settings::{invalid, unbracket};
use super::{windows, ProxyError, ProxyKind, ProxySetting};
use std::net::IpAddr;
use tracing::debug;

/// [`resolve_with`] on the process environment and, on Windows, the
/// per-user Internet Options.
pub fn resolve(
    explicit: Option<&str>,
    saved: Option<&str>,
    target_host: &str,
) -> Result<Option<ProxySetting>, ProxyError> {
    let env = |name: &str| std::env::var(name).ok();
    resolve_with(explicit, saved, target_host, env, windows::read_internet_settings)
}

/// Chooses the proxy for `target_host`, first found wins: the explicit
/// option, the saved setting (either may be `direct` or `none`: no proxy),
/// `HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`/`all_proxy` (unless
/// `NO_PROXY`/`no_proxy` matches the target), then `system` (the Windows
/// Internet Options). `Ok(None)` means connect directly.
pub fn resolve_with(
    explicit: Option<&str>,
    saved: Option<&str>,
    target_host: &str,
    env: impl Fn(&str) -> Option<String>,
    system: impl FnOnce() -> Option<windows::InternetSettings>,
) -> Result<Option<ProxySetting>, ProxyError> {
    for (origin, value) in [("the proxy option", explicit), ("the saved proxy setting", saved)] {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        if value.eq_ignore_ascii_case("direct") || value.eq_ignore_ascii_case("none") {
            debug!(origin, "no proxy");
            return Ok(None);
        }
        let setting = ProxySetting::parse_or(value, ProxyKind::Http).map_err(|r| invalid(origin, r))?;
        debug!(origin, proxy = %setting, "proxy chosen");
        return Ok(Some(setting));
    }
    let var =
        |names: &[&'static str]| names.iter().find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)));
    if let Some((name, value)) = var(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
        if let Some((no_name, list)) = var(&["NO_PROXY", "no_proxy"]) {
            if no_proxy_matches(&list, target_host) {
                debug!(target_host, variable = no_name, "proxy bypassed");
                return Ok(None);
            }
        }
        let setting = ProxySetting::parse_or(&value, ProxyKind::Http).map_err(|r| invalid(name, r))?;
        debug!(variable = name, proxy = %setting, "proxy chosen");
        return Ok(Some(setting));
    }
    match system() {
        Some(settings) => windows::from_internet_settings(&settings, target_host),
        None => Ok(None),
    }
}

/// Whether a `NO_PROXY` list (commas or spaces) exempts `host`: `*`,
/// domain suffixes with or without a leading dot (`*.` also accepted),
/// exact IPs, CIDR blocks (`10.0.0.0/8`); a `:port` on an entry is ignored.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = unbracket(host).trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    list.split([',', ' ', '\t', '\n']).filter(|e| !e.is_empty()).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            return ip.is_some_and(|ip| in_cidr(ip, net, bits));
        }
        let entry = match entry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or(""),
            None => &entry,
        };
        match (ip, entry.parse::<IpAddr>()) {
            (Some(ip), Ok(e)) => ip == e,
            (_, Ok(_)) => false,
            _ => {
                let suffix = entry.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
                !suffix.is_empty() && (host == suffix || host.strip_suffix(suffix).is_some_and(|h| h.ends_with('.')))
            }
        }
    })
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::windows::InternetSettings;

    type Vars = &'static [(&'static str, &'static str)];

    fn env(vars: Vars) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn pick(explicit: Option<&str>, saved: Option<&str>, vars: Vars, host: &str) -> Option<String> {
        let chosen = resolve_with(explicit, saved, host, env(vars), || None).unwrap();
        chosen.map(|p| p.to_string())
    }

    #[test]
    fn first_source_wins() {
        let vars: Vars = &[("HTTPS_PROXY", "env:1"), ("ALL_PROXY", "socks5://all:2")];
        let saved = Some("http://saved:4");
        assert_eq!(pick(Some("socks5h://opt:3"), saved, vars, "gw").unwrap(), "socks5h://opt:3");
        assert_eq!(pick(Some("Direct"), saved, vars, "gw"), None);
        assert_eq!(pick(Some(" "), saved, vars, "gw").unwrap(), "http://saved:4");
        assert_eq!(pick(None, Some("none"), vars, "gw"), None);
        assert_eq!(pick(None, None, vars, "gw").unwrap(), "http://env:1");
        let lower: Vars = &[("https_proxy", "http://lo:5"), ("ALL_PROXY", "socks5://all:2")];
        assert_eq!(pick(None, None, lower, "gw").unwrap(), "http://lo:5");
        let all: Vars = &[("HTTPS_PROXY", ""), ("all_proxy", "socks5://all:2")];
        assert_eq!(pick(None, None, all, "gw").unwrap(), "socks5://all:2");
        let windows = || {
            let server = "https=win:8443;http=win:8080".into();
            Some(InternetSettings { enable: true, server, overrides: "<local>".into() })
        };
        let chosen = resolve_with(None, None, "gw.example", env(&[]), windows).unwrap();
        assert_eq!(chosen.unwrap().to_string(), "http://win:8443");
        let chosen = resolve_with(None, None, "gw.example", env(vars), windows).unwrap();
        assert_eq!(chosen.unwrap().to_string(), "http://env:1");
        assert_eq!(resolve_with(None, None, "gw", env(&[]), windows).unwrap(), None);
    }

    #[test]
    fn no_proxy_exempts_only_environment_proxies() {
        let vars: Vars = &[("HTTPS_PROXY", "env:1"), ("no_proxy", ".corp.example, 10.0.0.0/8")];
        assert_eq!(pick(None, None, vars, "gw.corp.example"), None);
        assert_eq!(pick(None, None, vars, "10.1.2.3"), None);
        assert_eq!(pick(None, None, vars, "gw.example").unwrap(), "http://env:1");
        assert_eq!(pick(Some("opt:3"), None, vars, "gw.corp.example").unwrap(), "http://opt:3");
    }

    #[test]
    fn no_proxy_entries() {
        let list = "corp.example,.lab.example,*.dev.example,192.168.1.7,[::1]:443,172.16.0.0/12,fd00::/8,host:8443";
        let exempt = "corp.example GW.Corp.Example. lab.example a.lab.example x.dev.example \
                      192.168.1.7 ::1 [::1] 172.31.255.1 fd00::5 host";
        for host in exempt.split_whitespace() {
            assert!(no_proxy_matches(list, host), "{host} should be exempt");
        }
        let proxied = "notcorp.example 192.168.1.70 172.32.0.1 fe80::1 example 10.0.0.1";
        for host in proxied.split_whitespace() {
            assert!(!no_proxy_matches(list, host), "{host} should use the proxy");
        }
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("", "anything") && !no_proxy_matches(" , ", "anything"));
        assert!(!no_proxy_matches("10.0.0.0/33,bad/8", "10.0.0.1"));
    }

    #[test]
    fn bad_settings_name_their_origin_not_the_password() {
        let vars: Vars = &[("HTTPS_PROXY", "ftp://u:hunter2@p:1")];
        let err = resolve_with(None, None, "gw", env(vars), || None).unwrap_err().to_string();
        assert!(err.starts_with("invalid proxy setting in HTTPS_PROXY: unsupported proxy scheme"), "{err}");
        assert!(!err.contains("hunter2"));
        let err = resolve_with(Some("http://u:hunter2@p:0"), None, "gw", env(&[]), || None).unwrap_err();
        assert!(err.to_string().starts_with("invalid proxy setting in the proxy option: \"0\""), "{err}");
        assert!(!err.is_retryable());
    }
}
