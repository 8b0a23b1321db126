//! The per-user Windows proxy (Internet Options, "Use a proxy server"),
//! read from `HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings`.
//!
//! Only the registry read is Windows-only; the parsing of `ProxyServer` and
//! `ProxyOverride` is plain functions, tested everywhere. Automatic
//! configuration scripts (PAC, `AutoConfigURL`) are not evaluated.

use super::settings::{invalid, unbracket};
use super::{ProxyError, ProxyKind, ProxySetting};
use std::net::IpAddr;
use tracing::debug;

/// The three registry values that make the manual proxy setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InternetSettings {
    /// `ProxyEnable` is non-zero.
    pub enable: bool,
    /// `ProxyServer`: `host:port`, or `https=host:port;http=host:port;socks=host:port`.
    pub server: String,
    /// `ProxyOverride`: `;`-separated patterns with `*`, and `<local>`.
    pub overrides: String,
}

/// Reads the current user's Internet Options; `None` when absent or not on Windows.
#[cfg(windows)]
pub fn read_internet_settings() -> Option<InternetSettings> {
    use winreg::{enums::HKEY_CURRENT_USER, RegKey};
    const PATH: &str = r"Software\Microsoft\Windows\CurrentVersion\Internet Settings";
    let key = RegKey::predef(HKEY_CURRENT_USER).open_subkey(PATH).ok()?;
    let settings = InternetSettings {
        enable: key.get_value::<u32, _>("ProxyEnable").unwrap_or(0) != 0,
        server: key.get_value::<String, _>("ProxyServer").unwrap_or_default(),
        overrides: key.get_value::<String, _>("ProxyOverride").unwrap_or_default(),
    };
    if key.get_value::<String, _>("AutoConfigURL").is_ok() {
        debug!("an automatic proxy configuration script is set; it is not evaluated");
    }
    Some(settings)
}

/// Reads the current user's Internet Options; `None` when absent or not on Windows.
#[cfg(not(windows))]
pub fn read_internet_settings() -> Option<InternetSettings> {
    None
}

/// The proxy these settings give for `target_host`: none when disabled,
/// empty, or when `ProxyOverride` exempts the host.
pub fn from_internet_settings(
    settings: &InternetSettings,
    target_host: &str,
) -> Result<Option<ProxySetting>, ProxyError> {
    if !settings.enable || settings.server.trim().is_empty() {
        return Ok(None);
    }
    if bypass_matches(&settings.overrides, target_host) {
        debug!(target_host, "proxy bypassed by ProxyOverride");
        return Ok(None);
    }
    let setting = parse_proxy_server(&settings.server)?;
    if let Some(setting) = &setting {
        debug!(proxy = %setting, "proxy chosen from Windows Internet Options");
    }
    Ok(setting)
}

/// Picks the proxy for an HTTPS-shaped connection from a `ProxyServer`
/// value: the `https=` entry, else the entry for all protocols (no `=`),
/// else `http=`, else `socks=` (spoken to as SOCKS5). An entry may carry
/// its own scheme (`http=socks5://host:1080`).
pub fn parse_proxy_server(server: &str) -> Result<Option<ProxySetting>, ProxyError> {
    let (mut https, mut all, mut http, mut socks) = (None, None, None, None);
    for entry in server.split([';', ' ']).map(str::trim).filter(|e| !e.is_empty()) {
        let slot = match entry.split_once('=') {
            None => (&mut all, entry),
            Some((proto, value)) => match proto.trim().to_ascii_lowercase().as_str() {
                "https" => (&mut https, value),
                "http" => (&mut http, value),
                "socks" => (&mut socks, value),
                _ => continue,
            },
        };
        if slot.0.is_none() && !slot.1.trim().is_empty() {
            *slot.0 = Some(slot.1.trim());
        }
    }
    let (value, kind) = match (https.or(all).or(http), socks) {
        (Some(value), _) => (value, ProxyKind::Http),
        (None, Some(value)) => (value, ProxyKind::Socks5),
        (None, None) => return Ok(None),
    };
    ProxySetting::parse_or(value, kind)
        .map(Some)
        .map_err(|reason| invalid("the Windows proxy setting (ProxyServer)", reason))
}

/// Whether a `ProxyOverride` list exempts `host`: case-insensitive
/// patterns with `*` (`*.corp.example`, `10.*`), and `<local>` for plain
/// names without a dot and loopback addresses.
pub fn bypass_matches(overrides: &str, host: &str) -> bool {
    let host = unbracket(host).trim_end_matches('.').to_ascii_lowercase();
    overrides.split([';', ',', ' ', '\t']).filter(|e| !e.is_empty()).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "<local>" {
            let loopback = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            return loopback || host == "localhost" || !host.contains(['.', ':']);
        }
        let entry = entry.split_once("://").map_or(entry.as_str(), |(_, rest)| rest);
        glob(unbracket(entry), &host)
    })
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).filter(|i| tail.is_char_boundary(*i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(s: &str) -> Option<String> {
        parse_proxy_server(s).unwrap().map(|p| p.to_string())
    }

    #[test]
    fn proxy_server_forms() {
        assert_eq!(server("proxy.corp:8080").as_deref(), Some("http://proxy.corp:8080"));
        let mixed = "ftp=f:21;http=h.corp:80;https=s.corp:8443;socks=k:1080";
        assert_eq!(server(mixed).as_deref(), Some("http://s.corp:8443"));
        assert_eq!(server("http=h.corp:3128;socks=k:1080").as_deref(), Some("http://h.corp:3128"));
        assert_eq!(server("socks=k.corp:1080").as_deref(), Some("socks5://k.corp:1080"));
        assert_eq!(server("HTTPS=http://s:3128/").as_deref(), Some("http://s:3128"));
        assert_eq!(server("ftp=f:21"), None);
        assert_eq!(server(" ; "), None);
        assert!(parse_proxy_server("https=s:notaport").is_err());
    }

    #[test]
    fn proxy_override_patterns() {
        let list = "*.corp.example;10.*;<local>;Exact.Example";
        for host in [
            "a.corp.example",
            "A.B.CORP.EXAMPLE",
            "10.1.2.3",
            "intranet",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "exact.example",
        ] {
            assert!(bypass_matches(list, host), "{host} should bypass");
        }
        for host in ["corp.example.com", "gw.example", "110.1.2.3", "sub.exact.example"] {
            assert!(!bypass_matches(list, host), "{host} should use the proxy");
        }
        assert!(bypass_matches("*", "anything.example"));
        assert!(!bypass_matches("", "intranet"));
    }

    #[test]
    fn enable_flag_and_override_apply() {
        let mut s = InternetSettings { enable: false, server: "p:3128".into(), overrides: "<local>".into() };
        assert_eq!(from_internet_settings(&s, "gw.example").unwrap(), None);
        s.enable = true;
        let chosen = from_internet_settings(&s, "gw.example").unwrap().unwrap();
        assert_eq!((chosen.host(), chosen.port()), ("p", 3128));
        assert_eq!(from_internet_settings(&s, "gateway").unwrap(), None);
    }
}
