//! `EntryPoint.dat`: the CA certificate the apps trust (PEM), the gateway URL
//! (the first `https://` line) and the system name (`SYSTEM:` line). `#` lines
//! are comments; a UTF-8 BOM is ignored. A cluster's entry point may list
//! more gateways: further `https://` lines, or several URLs on one line
//! separated by commas; the apps try them in order (docs/cluster.md).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Errors in an entry point; each names the line and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EntryPointError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// No CA certificate block.
    #[error("{0}: no CA certificate: add the PEM block (-----BEGIN CERTIFICATE-----) of the gateway's CA")]
    NoCa(String),
    /// A PEM block that does not decode.
    #[error("{0}: the CA certificate block does not decode: {1}")]
    BadCa(String, String),
    /// No gateway URL.
    #[error("{0}: no gateway URL: add a line such as https://gateway.example.org/thingate/")]
    NoUrl(String),
    /// A URL line that does not parse.
    #[error("{file}:{line}: {source}")]
    BadUrl {
        /// File name.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong and the fix.
        source: GatewayUrlError,
    },
    /// A plain `http://` gateway URL.
    #[error("{file}:{line}: {text:?}: the gateway URL must use https://")]
    PlainHttp {
        /// File name.
        file: String,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Why a gateway URL was refused; each message quotes the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayUrlError {
    /// Another scheme than `https://`.
    #[error("gateway URL {0:?} must start with https://")]
    NotHttps(String),
    /// `user@host`.
    #[error("gateway URL {0:?} must not contain user information")]
    UserInfo(String),
    /// `[::1` without `]`.
    #[error("gateway URL {0:?}: unclosed '['")]
    UnclosedBracket(String),
    /// Text after `]` that is not `:PORT`.
    #[error("gateway URL {0:?}: junk after ']'")]
    JunkAfterBracket(String),
    /// An empty host.
    #[error("gateway URL {0:?} has no host")]
    NoHost(String),
    /// A host that is neither a DNS name nor an IP address.
    #[error("gateway URL {url:?}: host {host:?} is neither a DNS name nor an IP address")]
    BadHost {
        /// The URL.
        url: String,
        /// The host part.
        host: String,
    },
    /// A port outside 1-65535.
    #[error("gateway URL {url:?}: port {port:?} is not a number from 1 to 65535")]
    BadPort {
        /// The URL.
        url: String,
        /// The port part.
        port: String,
    },
}

/// A parsed gateway URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayUrl {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port (443 when absent).
    pub port: u16,
    /// Path, e.g. `/thingate/`.
    pub path: String,
}

impl GatewayUrl {
    /// Parses `https://host[:port][/path]`.
    pub fn parse(s: &str) -> Result<Self, GatewayUrlError> {
        let rest = s.strip_prefix("https://").ok_or_else(|| GatewayUrlError::NotHttps(s.into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/thingate/"),
        };
        if authority.contains('@') {
            return Err(GatewayUrlError::UserInfo(s.into()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| GatewayUrlError::UnclosedBracket(s.into()))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(GatewayUrlError::JunkAfterBracket(s.into())),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(GatewayUrlError::NoHost(s.into()));
        }
        if host.parse::<std::net::IpAddr>().is_err()
            && !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(GatewayUrlError::BadHost { url: s.into(), host });
        }
        let port = match port {
            None => 443,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| GatewayUrlError::BadPort { url: s.into(), port: p.into() })?,
        };
        Ok(Self { host, port, path: path.to_string() })
    }

    /// `host:port` for connecting (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for GatewayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}{}", self.authority(), self.path)
    }
}

/// A parsed `EntryPoint.dat`.
#[derive(Debug, Clone)]
pub struct EntryPoint {
    /// CA certificates (DER) the apps trust; usually one.
    pub ca: Vec<CertificateDer<'static>>,
    /// The gateway (the first URL).
    pub url: GatewayUrl,
    /// Further gateways of a cluster, in the file's order, tried after `url`.
    pub alternates: Vec<GatewayUrl>,
    /// System name shown in the apps.
    pub system_name: Option<String>,
}

impl EntryPoint {
    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Self, EntryPointError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| EntryPointError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a file; `name` is used in messages.
    pub fn parse(text: &str, name: &str) -> Result<Self, EntryPointError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut ca = Vec::new();
        for item in CertificateDer::pem_slice_iter(text.as_bytes()) {
            match item {
                Ok(c) => ca.push(c),
                Err(e) => return Err(EntryPointError::BadCa(name.into(), e.to_string())),
            }
        }
        if ca.is_empty() {
            return Err(EntryPointError::NoCa(name.into()));
        }
        let mut urls: Vec<GatewayUrl> = Vec::new();
        let mut system_name = None;
        let mut in_pem = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with("-----BEGIN") {
                in_pem = true;
                continue;
            }
            if line.starts_with("-----END") {
                in_pem = false;
                continue;
            }
            if in_pem || line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(sys) = line.strip_prefix("SYSTEM:") {
                system_name.get_or_insert_with(|| sys.trim().to_string());
            } else if line.to_ascii_lowercase().starts_with("https://") {
                for one in line.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                    let url = GatewayUrl::parse(one).map_err(|source| EntryPointError::BadUrl {
                        file: name.into(),
                        line: i + 1,
                        source,
                    })?;
                    if !urls.contains(&url) {
                        urls.push(url);
                    }
                }
            } else if line.starts_with("http://") {
                return Err(EntryPointError::PlainHttp { file: name.into(), line: i + 1, text: line.into() });
            }
        }
        if urls.is_empty() {
            return Err(EntryPointError::NoUrl(name.into()));
        }
        let url = urls.remove(0);
        Ok(Self { ca, url, alternates: urls, system_name })
    }

    /// Every gateway URL, in the order the apps try them.
    pub fn urls(&self) -> impl Iterator<Item = &GatewayUrl> {
        std::iter::once(&self.url).chain(&self.alternates)
    }

    /// Renders the file format (CA PEM, URL line, SYSTEM line).
    pub fn render(ca_pem: &str, url: &str, system_name: &str) -> String {
        format!("{}\n# Gateway URL\n{url}\n\n# System name\nSYSTEM:{system_name}\n", ca_pem.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn parses_the_manual_examples() {
        let pem = ca_pem();
        let text = format!("\u{feff}{pem}\n# comment\nhttps://abc.example.org:1234/thingate/\nSYSTEM:Mikaka\n");
        let ep = EntryPoint::parse(&text, "EntryPoint.dat").unwrap();
        assert_eq!(ep.url, GatewayUrl { host: "abc.example.org".into(), port: 1234, path: "/thingate/".into() });
        assert_eq!(ep.system_name.as_deref(), Some("Mikaka"));
        assert_eq!(ep.ca.len(), 1);
        let ep = EntryPoint::parse(&EntryPoint::render(&pem, "https://1.2.3.4/thingate/", "X"), "e").unwrap();
        assert_eq!(ep.url.authority(), "1.2.3.4:443");
        assert_eq!(GatewayUrl::parse("https://[::1]:8443/x").unwrap().authority(), "[::1]:8443");
        assert!(ep.alternates.is_empty());
    }

    #[test]
    fn a_cluster_lists_several_gateways_on_lines_or_separated_by_commas() {
        let pem = ca_pem();
        let text = format!(
            "{pem}\nhttps://gw1.example.org/thingate/\nhttps://gw2.example.org:8443/, https://gw3.example.org/\n\
             https://gw1.example.org/thingate/\nSYSTEM:S\n"
        );
        let ep = EntryPoint::parse(&text, "E").unwrap();
        let all: Vec<String> = ep.urls().map(|u| u.to_string()).collect();
        assert_eq!(
            all,
            ["https://gw1.example.org:443/thingate/", "https://gw2.example.org:8443/", "https://gw3.example.org:443/"],
            "in the file's order, each once"
        );
        let err = EntryPoint::parse(&format!("{pem}\nhttps://gw1.example.org/, http://gw2.example.org/\n"), "E.dat")
            .unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn errors_name_the_line() {
        let pem = ca_pem();
        let err = EntryPoint::parse(&format!("{pem}\nhttps://h:99999/thingate/\n"), "E.dat").unwrap_err();
        assert!(err.to_string().starts_with("E.dat:"), "{err}");
        assert!(err.to_string().contains("port"), "{err}");
        let err = EntryPoint::parse(&format!("{pem}\nhttp://h/thingate/\n"), "E.dat").unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(matches!(EntryPoint::parse("https://h/\n", "E"), Err(EntryPointError::NoCa(_))));
        assert!(matches!(EntryPoint::parse(&pem, "E"), Err(EntryPointError::NoUrl(_))));
    }
}
