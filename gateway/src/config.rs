//! `ThinGate.ini`: the gateway's settings.
//!
//! One `Key value` per line (`Key = value` is accepted too); keys are
//! case-insensitive; lines starting with `#`, `//` or `;` are comments; a UTF-8
//! BOM is ignored. A value is the rest of the line, trimmed. An empty value
//! leaves an optional setting unset. Booleans are `0`/`1`, `true`/`false` or
//! `yes`/`no`; times are milliseconds. See [`GateConfig::default_ini`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thin_protocol::secret::Secret;

use crate::source::Networks;

mod cluster;

pub use cluster::{ClusterSettings, EtcdTls};

/// The file name of the settings, looked for beside the `thingate` binary.
pub const INI_NAME: &str = "ThinGate.ini";

/// Why `ThinGate.ini` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}; put ThinGate.ini there, or name it with --config FILE", path.display())]
    Read {
        /// The ini file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is wrong: `PATH:LINE: KEY: what is wrong; fix`.
    #[error("{}:{line}: {msg}", path.display())]
    Line {
        /// The ini file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// `KEY: what is wrong; fix`.
        msg: String,
    },
}

/// SMTP authentication (`SmtpAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpAuth {
    /// 0: AUTH LOGIN.
    Login,
    /// 1: AUTH PLAIN.
    Plain,
}

/// SMTP transport security (`SmtpSslType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSsl {
    /// 0: plain text.
    None,
    /// 1: TLS from the start (SMTPS).
    Smtps,
    /// 2: STARTTLS.
    StartTls,
}

/// Mail server for OTP mails. `Debug` masks the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `SmtpServerHostname`; unset = no OTP mail.
    pub hostname: Option<String>,
    /// `SmtpServerPort` (587).
    pub port: u16,
    /// `SmtpOtpFrom`: the From: address.
    pub otp_from: Option<String>,
    /// `SmtpUsername` for SMTP AUTH.
    pub username: Option<String>,
    /// `SmtpPassword` for SMTP AUTH.
    pub password: Option<Secret>,
    /// `SmtpAuthType` (0 LOGIN).
    pub auth_type: SmtpAuth,
    /// `SmtpSslType` (2 STARTTLS; plain text only when set to 0).
    pub ssl: SmtpSsl,
    /// `SmtpTimeout` (10000 ms).
    pub timeout: Duration,
    /// `SmtpCaFile`: extra CA certificates (PEM) trusted for the mail server's
    /// TLS besides the system's; unset = the system's only.
    pub ca_file: Option<PathBuf>,
    /// `SmtpAllowedDomains`: recipient domains (lower case) OTP mail may go
    /// to; empty = any.
    pub allowed_domains: Vec<String>,
    /// `SmtpOtpSystemName`: the system name in the mail's subject; unset =
    /// "Thin Telework". Never the office PC's choice.
    pub system_name: Option<String>,
    /// `SmtpMaxMailsPerMachine`: OTP mails per hour for one office PC.
    pub max_mails_per_machine: u32,
    /// `SmtpMaxMailsTotal`: OTP mails per hour for all office PCs together.
    pub max_mails_total: u32,
}

/// The gateway's settings, read from `ThinGate.ini`. Paths are resolved against
/// the ini's folder. `Debug` never shows the SMTP password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// `ListenAddress` (0.0.0.0; an IPv6 literal is accepted).
    pub listen_address: IpAddr,
    /// `ListenPort` (443; 0 picks a free port).
    pub listen_port: u16,
    /// `ServerCert` (ThinGate.cer), PEM.
    pub server_cert: PathBuf,
    /// `ServerKey` (ThinGate.key), PEM.
    pub server_key: PathBuf,
    /// `DatabaseFile` (MachineDatabase.config).
    pub database_file: PathBuf,
    /// `TunnelTimeout` (30000 ms, at least 1000).
    pub tunnel_timeout: Duration,
    /// `TunnelKeepAlive` (10000 ms, at least 100, below the timeout).
    pub tunnel_keepalive: Duration,
    /// `HandshakeTimeout` (10000 ms): TLS + HTTP + hello of a new connection.
    pub handshake_timeout: Duration,
    /// `DosProtection_MaxUnestablishedConnections` (1000).
    pub max_unestablished: usize,
    /// `DosProtection_MaxConnectionsPerIp` (256).
    pub max_connections_per_ip: usize,
    /// `DisableDoSProtection` (0).
    pub disable_dos_protection: bool,
    /// `DisableRegister` (0): refuse new PCID registrations.
    pub disable_register: bool,
    /// `RegisterToken` (unset): a new office PC must present it to register.
    pub register_token: Option<Secret>,
    /// `AdminPassword` (unset): the Argon2 hash (PHC string) of the password
    /// that lets callers off loopback use the admin console; unset, it
    /// answers loopback only.
    pub admin_password: Option<Secret>,
    /// `RegisterLimitPerSource` (10): registrations and renames per minute
    /// from one IPv4 address or IPv6 /64.
    pub register_limit_per_source: u32,
    /// `RegisterLimitTotal` (100): registrations and renames per minute in total.
    pub register_limit_total: u32,
    /// `MaxServerSessions` (10000: what a 2-core host held in the relay
    /// bench, keepalives and reachability included).
    pub max_sessions: usize,
    /// `MaxTunnelsPerSession` (256).
    pub max_tunnels_per_session: usize,
    /// `AcceptProxyProtocol` (0).
    pub accept_proxy_protocol: bool,
    /// `ProxyProtocolFrom`: the load balancers whose PROXY headers are
    /// trusted; empty = loopback only. Other peers are closed at once.
    pub proxy_protocol_from: Networks,
    /// `NoLookupDnsHostname` (0).
    pub no_lookup_dns_hostname: bool,
    /// `SaveLog` (1).
    pub save_log: bool,
    /// `StandaloneMode` (1); 0 makes the gateway a cluster member, which
    /// needs the cluster edition's keys ([`CLUSTER_KEYS`]).
    pub standalone_mode: bool,
    /// The `Cluster*` keys; set exactly when `StandaloneMode` is 0.
    pub cluster: Option<ClusterSettings>,
    /// `SysLogHostname` (unset).
    pub syslog_hostname: Option<String>,
    /// `SysLogPort` (514).
    pub syslog_port: u16,
    /// The `Smtp*` keys.
    pub smtp: SmtpSettings,
    /// `StatPostUrl` (unset = no statistics are posted).
    pub stat_post_url: Option<String>,
    /// `StatPostInterval`: time between statistics posts.
    pub stat_post_interval: Duration,
    /// Folder of the ini file.
    pub dir: PathBuf,
    /// Non-fatal findings, e.g. `PATH:7: unknown key "Foo" ignored`.
    pub warnings: Vec<String>,
}

/// The times sessions and tunnels keep to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `HandshakeTimeout`: TLS, HTTP and first frames of a new connection.
    pub handshake: Duration,
    /// `TunnelKeepAlive`.
    pub keepalive: Duration,
    /// `TunnelTimeout`.
    pub timeout: Duration,
}

impl Timing {
    /// `keepalive_ms` and `timeout_ms` as the messages carry them.
    pub fn millis(&self) -> (u64, u64) {
        (self.keepalive.as_millis() as u64, self.timeout.as_millis() as u64)
    }
}

/// The keys a cluster-edition gateway (`StandaloneMode 0`) needs: where its
/// etcd cluster is, the URL clients reach this member at, and the cluster's name.
pub const CLUSTER_KEYS: [&str; 3] = ["ClusterEtcdEndpoints", "ClusterPublicUrl", "ClusterName"];

/// Every key as spelled in messages, its default (empty = unset) and what it does.
pub const KEYS: [(&str, &str, &str); 48] = [
    ("ListenAddress", "0.0.0.0", "address to listen on: 0.0.0.0 all IPv4, :: all IPv6"),
    ("ListenPort", "443", "TLS port (0 picks a free port)"),
    ("ServerCert", "ThinGate.cer", "certificate chain of the gateway, PEM"),
    ("ServerKey", "ThinGate.key", "private key of that certificate, PEM"),
    ("DatabaseFile", "MachineDatabase.config", "registered servers"),
    ("TunnelTimeout", "30000", "ms of silence before a session or tunnel is dropped (1000 or more)"),
    ("TunnelKeepAlive", "10000", "ms between keep-alives (100 or more, below TunnelTimeout)"),
    ("HandshakeTimeout", "10000", "ms allowed for the TLS and HTTP handshake of a new connection"),
    ("DosProtection_MaxUnestablishedConnections", "1000", "connections still in their handshake"),
    ("DosProtection_MaxConnectionsPerIp", "256", "connections from one IP address"),
    ("DisableDoSProtection", "0", "1 turns the two limits above off"),
    ("DisableRegister", "0", "1 refuses new computer-ID registrations"),
    ("RegisterToken", "", "a new office PC must present this token to register (register_token in its thinsvr.toml; empty: anyone may)"),
    ("AdminPassword", "", "Argon2 hash of the admin console's password (make it with `thingate admin-password`): callers off loopback may then use /thinadmin/ as user admin (empty: loopback only)"),
    ("RegisterLimitPerSource", "10", "registrations and renames per minute from one IPv4 address or IPv6 /64"),
    ("RegisterLimitTotal", "100", "registrations and renames per minute from all sources together"),
    ("MaxServerSessions", "10000", "server sessions at once"),
    ("MaxTunnelsPerSession", "256", "client tunnels per server session"),
    ("AcceptProxyProtocol", "0", "1 expects a PROXY protocol header from a load balancer"),
    ("ProxyProtocolFrom", "", "addresses or networks (CIDR) of the load balancers allowed to send PROXY headers; other peers are closed (empty: loopback only)"),
    ("NoLookupDnsHostname", "0", "1 skips the reverse DNS look-up of peers"),
    ("SaveLog", "1", "1 writes log files"),
    ("StandaloneMode", "1", "1 standalone: this gateway registers and looks up servers itself (0, the cluster edition, needs ClusterEtcdEndpoints, ClusterPublicUrl and ClusterName; docs/cluster.md)"),
    ("ClusterEtcdEndpoints", "", "cluster edition: URLs of the etcd members, separated by commas, e.g. https://10.0.0.1:2379, https://10.0.0.2:2379"),
    ("ClusterPublicUrl", "", "cluster edition: this gateway's URL as the apps reach it, e.g. https://gw2.example.org/"),
    ("ClusterName", "", "cluster edition: the cluster's name (letters, digits, -, _, .); its keys in etcd are under /thintelework/NAME/"),
    ("ClusterEtcdCaFile", "", "cluster edition: CA certificates (PEM) of the etcd members, for https:// endpoints"),
    ("ClusterEtcdCertFile", "", "cluster edition: client certificate (PEM) this gateway shows etcd (empty: none)"),
    ("ClusterEtcdKeyFile", "", "cluster edition: private key (PEM) of that certificate"),
    ("ClusterEtcdTimeout", "3000", "cluster edition: ms allowed for one etcd call (100-60000)"),
    ("ClusterLeaseTtl", "10000", "cluster edition: ms this gateway's sessions stay announced after it stops renewing them (2000 or more)"),
    ("SysLogHostname", "", "syslog server (empty: none)"),
    ("SysLogPort", "514", "syslog port"),
    ("SmtpServerHostname", "", "SMTP server for OTP mail (empty: no OTP mail)"),
    ("SmtpServerPort", "587", "SMTP port"),
    ("SmtpOtpFrom", "", "From: address of OTP mail"),
    ("SmtpUsername", "", "SMTP AUTH user name (empty: no AUTH)"),
    ("SmtpPassword", "", "SMTP AUTH password"),
    ("SmtpAuthType", "0", "0 LOGIN, 1 PLAIN"),
    ("SmtpSslType", "2", "2 STARTTLS, 1 SMTPS, 0 none (plain text: only on a trusted network)"),
    ("SmtpTimeout", "10000", "ms allowed for one mail"),
    ("SmtpCaFile", "", "extra CA certificates (PEM) to trust for the SMTP server's TLS, besides the system's"),
    ("SmtpAllowedDomains", "", "recipient domains OTP mail may go to, e.g. example.org, example.com (empty: any)"),
    ("SmtpOtpSystemName", "", "system name in the OTP mail's subject (empty: Thin Telework)"),
    ("SmtpMaxMailsPerMachine", "10", "OTP mails per hour for one office PC"),
    ("SmtpMaxMailsTotal", "1000", "OTP mails per hour for all office PCs together"),
    ("StatPostUrl", "", "URL that receives anonymous counters (empty: none)"),
    ("StatPostInterval", "1800000", "ms between statistics posts (randomised by +-20%)"),
];

impl GateConfig {
    /// The times sessions and tunnels keep to.
    pub fn timing(&self) -> Timing {
        Timing { handshake: self.handshake_timeout, keepalive: self.tunnel_keepalive, timeout: self.tunnel_timeout }
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<GateConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Checks `text`; `path` names the file in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<GateConfig, ConfigError> {
        let ini = Ini::read(text, path)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
        let ms = |key, min| ini.num(key, min, 86_400_000, "a time in milliseconds").map(Duration::from_millis);
        let count = |key| ini.num(key, 1, u32::MAX.into(), "a count").map(|v| v as usize);
        let port = |key, min| ini.num(key, min, 65_535, "a port number").map(|v| v as u16);
        let file = |key| dir.join(ini.text(key).map_or(ini.default(key), |(_, v)| v));
        let text = |key| ini.text(key).map(|(_, v)| v.to_owned());
        let (line, v) = ini.raw("ListenAddress");
        let listen_address = v.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| {
            ini.bad(
                "ListenAddress",
                line,
                format!("{v:?} is not an IP address; write e.g. 0.0.0.0 (all IPv4) or :: (all IPv6)"),
            )
        })?;
        if let Some((line, v)) = ini.text("SmtpOtpFrom").filter(|(_, v)| !v.contains('@')) {
            return Err(ini.bad(
                "SmtpOtpFrom",
                line,
                format!("{v:?} is not a mail address; write e.g. otp@example.org"),
            ));
        }
        if let (Some(_), None) = (ini.text("SmtpServerHostname"), ini.text("SmtpOtpFrom")) {
            return Err(ini.bad(
                "SmtpOtpFrom",
                ini.raw("SmtpOtpFrom").0.max(ini.raw("SmtpServerHostname").0),
                format!(
                    "unset, but SmtpServerHostname is set and OTP mail needs a From: address; {}",
                    "write e.g. \"SmtpOtpFrom otp@example.org\""
                ),
            ));
        }
        let cluster = cluster::read(&ini, &dir)?;
        if let Some((line, v)) =
            ini.text("StatPostUrl").filter(|(_, v)| !v.starts_with("http://") && !v.starts_with("https://"))
        {
            return Err(ini.bad(
                "StatPostUrl",
                line,
                format!("{v:?} is not an http(s):// URL; fix it, or leave it empty to post nothing"),
            ));
        }
        let nets = |key| {
            let (line, v) = ini.raw(key);
            Networks::parse(v).map_err(|e| {
                ini.bad(
                    key,
                    line,
                    format!("{e}; write addresses or networks separated by commas, e.g. 10.0.0.5, 192.0.2.0/24"),
                )
            })
        };
        let per = |key| ini.num(key, 1, 1_000_000, "a count").map(|v| v as u32);
        let c = GateConfig {
            listen_address,
            listen_port: port("ListenPort", 0)?,
            server_cert: file("ServerCert"),
            server_key: file("ServerKey"),
            database_file: file("DatabaseFile"),
            tunnel_timeout: ms("TunnelTimeout", 1_000)?,
            tunnel_keepalive: ms("TunnelKeepAlive", 100)?,
            handshake_timeout: ms("HandshakeTimeout", 100)?,
            max_unestablished: count("DosProtection_MaxUnestablishedConnections")?,
            max_connections_per_ip: count("DosProtection_MaxConnectionsPerIp")?,
            disable_dos_protection: ini.flag("DisableDoSProtection")?,
            disable_register: ini.flag("DisableRegister")?,
            register_token: text("RegisterToken").map(Secret::new),
            admin_password: match ini.raw("AdminPassword") {
                (_, "") => None,
                (line, v) => Some(Secret::new(check_admin_hash(v).map_err(|m| ini.bad("AdminPassword", line, m))?)),
            },
            register_limit_per_source: per("RegisterLimitPerSource")?,
            register_limit_total: per("RegisterLimitTotal")?,
            max_sessions: count("MaxServerSessions")?,
            max_tunnels_per_session: count("MaxTunnelsPerSession")?,
            accept_proxy_protocol: ini.flag("AcceptProxyProtocol")?,
            proxy_protocol_from: nets("ProxyProtocolFrom")?,
            no_lookup_dns_hostname: ini.flag("NoLookupDnsHostname")?,
            save_log: ini.flag("SaveLog")?,
            standalone_mode: ini.flag("StandaloneMode")?,
            cluster,
            syslog_hostname: text("SysLogHostname"),
            syslog_port: port("SysLogPort", 1)?,
            smtp: SmtpSettings {
                hostname: text("SmtpServerHostname"),
                port: port("SmtpServerPort", 1)?,
                otp_from: text("SmtpOtpFrom"),
                username: text("SmtpUsername"),
                password: text("SmtpPassword").map(Secret::new),
                auth_type: [SmtpAuth::Login, SmtpAuth::Plain]
                    [ini.num("SmtpAuthType", 0, 1, "0 (LOGIN) or 1 (PLAIN)")? as usize],
                ssl: [SmtpSsl::None, SmtpSsl::Smtps, SmtpSsl::StartTls]
                    [ini.num("SmtpSslType", 0, 2, "0 (none), 1 (SMTPS) or 2 (STARTTLS)")? as usize],
                timeout: ms("SmtpTimeout", 100)?,
                ca_file: text("SmtpCaFile").map(|f| dir.join(f)),
                allowed_domains: ini.domains("SmtpAllowedDomains")?,
                system_name: text("SmtpOtpSystemName"),
                max_mails_per_machine: per("SmtpMaxMailsPerMachine")?,
                max_mails_total: per("SmtpMaxMailsTotal")?,
            },
            stat_post_url: text("StatPostUrl"),
            stat_post_interval: ms("StatPostInterval", 1_000)?,
            dir,
            warnings: ini.warnings.clone(),
        };
        let mut c = c;
        c.warnings.extend(ini.findings(&c));
        let (k, t) = (c.tunnel_keepalive.as_millis(), c.tunnel_timeout.as_millis());
        if k >= t {
            return Err(match ini.raw("TunnelKeepAlive") {
                (0, _) => ini.bad(
                    "TunnelTimeout",
                    ini.raw("TunnelTimeout").0,
                    format!("{t} ms is not longer than TunnelKeepAlive ({k} ms); raise it"),
                ),
                (line, _) => ini.bad(
                    "TunnelKeepAlive",
                    line,
                    format!("{k} ms is not shorter than TunnelTimeout ({t} ms); lower it"),
                ),
            });
        }
        Ok(c)
    }

    /// A commented `ThinGate.ini` listing every key with its default; it parses
    /// to the defaults.
    pub fn default_ini() -> &'static str {
        static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TEXT.get_or_init(|| {
            let mut t = String::from(
                "# ThinGate.ini: settings of the gateway (thingate).\n\
                 # One `Key value` per line; `#`, `//` and `;` start comments. Times are in ms,\n\
                 # switches are 0 or 1, file names are relative to this folder, and an empty\n\
                 # value leaves a setting unset. The values below are the defaults.\n",
            );
            for (key, default, what) in KEYS {
                t.push_str(&format!("\n# {what}\n{key} {default}\n").replace(" \n", "\n"));
            }
            t
        })
    }
}

/// Checks that `v` is an Argon2 hash (PHC string), not a password.
fn check_admin_hash(v: &str) -> Result<String, String> {
    let fix = "write the hash `thingate admin-password` prints, not the password itself";
    match argon2::PasswordHash::new(v) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") && h.hash.is_some() => Ok(v.to_string()),
        Ok(h) => Err(format!("a {} hash; an Argon2 hash is needed: {fix}", h.algorithm)),
        Err(_) => Err(format!("not an Argon2 hash: {fix}")),
    }
}

/// The lines of an ini file, by key.
struct Ini<'a> {
    path: &'a Path,
    values: HashMap<&'static str, (usize, &'a str)>,
    warnings: Vec<String>,
}

impl<'a> Ini<'a> {
    fn read(text: &'a str, path: &'a Path) -> Result<Ini<'a>, ConfigError> {
        let mut ini = Ini { path, values: HashMap::new(), warnings: Vec::new() };
        for (i, line) in text.strip_prefix('\u{feff}').unwrap_or(text).lines().enumerate() {
            let (n, line) = (i + 1, line.trim());
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") || line.starts_with(';') {
                continue;
            }
            let end = line.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(line.len());
            let (name, rest) = line.split_at(end);
            let rest = rest.trim_start();
            let value = rest.strip_prefix('=').unwrap_or(rest).trim();
            let Some((key, _, _)) = KEYS.iter().find(|(k, _, _)| k.eq_ignore_ascii_case(name)) else {
                ini.warnings.push(format!("{}:{n}: unknown key {name:?} ignored; check its spelling", path.display()));
                continue;
            };
            if let Some((first, _)) = ini.values.insert(key, (n, value)) {
                return Err(ini.bad(
                    key,
                    n,
                    format!("set again (first on line {first}); keep only one of the two lines"),
                ));
            }
        }
        Ok(ini)
    }

    fn bad(&self, key: &str, line: usize, msg: String) -> ConfigError {
        ConfigError::Line { path: self.path.to_owned(), line, msg: format!("{key}: {msg}") }
    }

    /// The value on the file's line, or `(0, default)` when the key is absent.
    fn raw(&self, key: &str) -> (usize, &'a str) {
        self.values.get(key).copied().unwrap_or((0, self.default(key)))
    }

    fn default(&self, key: &str) -> &'static str {
        KEYS.iter().find(|(k, _, _)| *k == key).map_or("", |(_, d, _)| d)
    }

    /// A non-empty value.
    fn text(&self, key: &str) -> Option<(usize, &'a str)> {
        Some(self.raw(key)).filter(|(_, v)| !v.is_empty())
    }

    fn num(&self, key: &str, min: u64, max: u64, what: &str) -> Result<u64, ConfigError> {
        let (line, v) = self.raw(key);
        match v.parse::<u64>() {
            Ok(x) if (min..=max).contains(&x) => Ok(x),
            _ => Err(self.bad(
                key,
                line,
                format!("{v:?} is not {what} ({min}-{max}); write e.g. \"{key} {}\"", self.default(key)),
            )),
        }
    }

    /// Mail domains separated by commas or spaces, lower-cased.
    fn domains(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let (line, v) = self.raw(key);
        let mut out = Vec::new();
        for d in v.split([',', ' ', '\t']).filter(|d| !d.is_empty()) {
            let d = d.strip_prefix('@').unwrap_or(d).to_ascii_lowercase();
            let label_ok = |l: &str| {
                !l.is_empty() && !l.starts_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if !d.contains('.') || !d.split('.').all(label_ok) {
                return Err(self.bad(
                    key,
                    line,
                    format!(
                        "{d:?} is not a mail domain; write domains separated by commas, e.g. example.org, example.com"
                    ),
                ));
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Settings that work but that the admin should know about.
    fn findings(&self, c: &GateConfig) -> Vec<String> {
        let at = |key: &str| match self.raw(key).0 {
            0 => format!("{} ({key} unset)", self.path.display()),
            line => format!("{}:{line}", self.path.display()),
        };
        let mut out = Vec::new();
        if c.smtp.hostname.is_some() && c.smtp.ssl == SmtpSsl::None && c.smtp.username.is_some() {
            out.push(format!(
                "{}: SmtpSslType 0: SMTP AUTH sends SmtpUsername and SmtpPassword to the mail server in clear text; \
                 use SmtpSslType 2 (STARTTLS) or 1 (SMTPS)",
                at("SmtpSslType")
            ));
        }
        if let (None, Some(key)) = (&c.cluster, CLUSTER_KEYS.iter().find(|k| self.text(k).is_some())) {
            out.push(format!(
                "{}: {key} is ignored while StandaloneMode is 1 (a standalone gateway); set StandaloneMode 0 \
                 to make this gateway a cluster member, or remove the Cluster* keys",
                at(key)
            ));
        }
        if !c.accept_proxy_protocol && !c.proxy_protocol_from.is_empty() {
            out.push(format!(
                "{}: ProxyProtocolFrom is ignored while AcceptProxyProtocol is 0; set AcceptProxyProtocol 1 or remove it",
                at("ProxyProtocolFrom")
            ));
        }
        out
    }

    fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        let (line, v) = self.raw(key);
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(self.bad(key, line, format!("{v:?} is not a boolean; write 1 or 0"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_no_password_in_messages() {
        let p = Path::new("/x/ThinGate.ini");
        let c = GateConfig::parse("ListenPort=8443\nSmtpPassword  = a=b c \n", p).unwrap();
        assert_eq!((c.listen_port, c.smtp.password.as_ref().map(Secret::expose)), (8443, Some("a=b c")));
        let e = GateConfig::parse("SmtpPassword hunter2\nSmtpPasswort=hunter2\nSmtpPassword x", p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/x/ThinGate.ini:3: SmtpPassword: set again (first on line 1); keep only one of the two lines"
        );
        let w = GateConfig::parse("SmtpPasswort=hunter2", p).unwrap().warnings;
        assert!(w.len() == 1 && !w[0].contains("hunter2"), "{w:?}");
    }

    #[test]
    fn an_smtp_server_needs_a_from_address_and_the_ca_file_is_relative() {
        let p = Path::new("/x/ThinGate.ini");
        let e = GateConfig::parse("SmtpServerHostname smtp.example.org\n", p).unwrap_err().to_string();
        assert!(e.starts_with("/x/ThinGate.ini:1: SmtpOtpFrom: unset, but SmtpServerHostname is set"), "{e}");
        let c =
            GateConfig::parse("SmtpServerHostname smtp.example.org\nSmtpOtpFrom o@example.org\nSmtpCaFile ca.pem", p)
                .unwrap();
        assert_eq!(c.smtp.ca_file.as_deref(), Some(Path::new("/x/ca.pem")));
        assert_eq!(GateConfig::parse("", p).unwrap().smtp.ca_file, None);
    }

    #[test]
    fn standalone_mode_0_without_the_cluster_keys_is_refused_naming_them() {
        let p = Path::new("/x/ThinGate.ini");
        let e = GateConfig::parse("ListenPort 443\nStandaloneMode 0\n", p).unwrap_err().to_string();
        assert!(e.starts_with("/x/ThinGate.ini:2: ClusterEtcdEndpoints: unset, but StandaloneMode 0"), "{e}");
        for key in CLUSTER_KEYS {
            assert!(e.contains(key), "{key} is not named: {e}");
        }
        assert!(e.contains("set \"StandaloneMode 1\""), "{e}");
        assert!(GateConfig::parse("StandaloneMode 1\n", p).unwrap().standalone_mode);
        assert!(GateConfig::parse("", p).unwrap().standalone_mode);
    }
}
