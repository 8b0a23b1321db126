//! One proxy setting, parsed from a URL; `Display` and `Debug` hide the password.

use super::ProxyError;
use std::fmt;
use thin_protocol::secret::Secret;

/// The protocol spoken to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `http://`: HTTP `CONNECT`, optional Basic authentication.
    Http,
    /// `socks5://`: SOCKS5; DNS names are still sent as names for the proxy to resolve.
    Socks5,
    /// `socks5h://`: SOCKS5 with names resolved by the proxy (same as `socks5://` here).
    Socks5h,
}

impl ProxyKind {
    fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
        }
    }
}

/// One proxy: `scheme://[user:password@]host:port`. `Display` and `Debug`
/// never show the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySetting {
    kind: ProxyKind,
    host: String,
    port: u16,
    auth: Option<(String, Secret)>,
}

impl ProxySetting {
    /// A proxy without credentials; `host` is a name or an IP literal (brackets optional).
    pub fn new(kind: ProxyKind, host: &str, port: u16) -> Self {
        Self { kind, host: unbracket(host).to_owned(), port, auth: None }
    }
    /// The same proxy with a user name and password.
    pub fn with_credentials(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.auth = Some((user.into(), password));
        self
    }
    /// Parses `http://`, `socks5://` or `socks5h://[user:password@]host[:port]`;
    /// no scheme means `http://`, no port means 80 (http) or 1080 (SOCKS).
    /// User name and password are percent-decoded.
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        Self::parse_or(url, ProxyKind::Http).map_err(|reason| invalid("the proxy URL", reason))
    }
    /// The protocol spoken to the proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }
    /// The proxy's host name or IP address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `host:port` (IPv6 in brackets): how messages name the proxy.
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
    /// The user name and password, if any.
    pub fn credentials(&self) -> Option<(&str, &Secret)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p))
    }
    /// The full URL with the password, percent-encoded, for saving the setting.
    pub fn to_url_exposing_password(&self) -> Secret {
        let userinfo = match &self.auth {
            Some((u, p)) => format!("{}:{}@", encode(u), encode(p.expose())),
            None => String::new(),
        };
        Secret::new(format!("{}://{userinfo}{}", self.kind.scheme(), self.addr()))
    }

    pub(crate) fn parse_or(url: &str, default: ProxyKind) -> Result<Self, String> {
        const SCHEMES: &str = "use http://, socks5:// or socks5h://";
        let (kind, rest) = match url.trim().split_once("://") {
            None => (default, url.trim()),
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => (ProxyKind::Http, rest),
                "socks5" => (ProxyKind::Socks5, rest),
                "socks5h" => (ProxyKind::Socks5h, rest),
                "https" => return Err(format!("TLS to the proxy (https://) is not supported; {SCHEMES}")),
                other => return Err(format!("unsupported proxy scheme {other:?}; {SCHEMES}")),
            },
        };
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        if hostport.contains(['/', '?', '#']) {
            return Err("a proxy URL has no path; write scheme://[user:password@]host:port".into());
        }
        let default_port = if kind == ProxyKind::Http { 80 } else { 1080 };
        let (host, port) = split_host_port(hostport, default_port)?;
        let mut setting = Self::new(kind, host, port);
        if let Some(userinfo) = userinfo {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let (user, pass) = (decode(user)?, Secret::new(decode(pass)?));
            if user.is_empty() {
                return Err("the user name before '@' is empty".into());
            }
            if kind != ProxyKind::Http && (user.len() > 255 || pass.expose().len() > 255) {
                return Err("SOCKS5 user names and passwords are at most 255 bytes".into());
            }
            setting = setting.with_credentials(user, pass);
        }
        Ok(setting)
    }
}

impl fmt::Display for ProxySetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some((user, _)) = &self.auth {
            write!(f, "{}:***@", encode(user))?;
        }
        f.write_str(&self.addr())
    }
}

impl std::str::FromStr for ProxySetting {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<Self, ProxyError> {
        Self::parse(s)
    }
}

pub(crate) fn invalid(origin: &str, reason: impl Into<String>) -> ProxyError {
    ProxyError::Invalid { origin: origin.to_owned(), reason: reason.into() }
}

/// `::1` for `[::1]`; anything else unchanged.
pub(crate) fn unbracket(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// `host:port`, with IPv6 literals in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

fn split_host_port(s: &str, default_port: u16) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("missing ']' after the IPv6 address")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        (host, after.strip_prefix(':').or(Some(after).filter(|a| !a.is_empty())))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if host.is_empty() || !host.chars().all(ok) {
        return Err(format!("{host:?} is not a host name; write scheme://host:port"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or(format!("{p:?} is not a port number (1-65535)"))?,
    };
    Ok((host, port))
}

fn decode(s: &str) -> Result<String, String> {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let hex = hex.ok_or("a '%' in the user name or password is not followed by two hex digits")?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16).unwrap_or(0));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the percent-decoded user name or password is not UTF-8".into())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
