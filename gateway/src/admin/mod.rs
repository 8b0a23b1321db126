//! The admin console at `/thinadmin/`: a web page (static HTML, CSS and
//! vanilla JavaScript compiled into the binary, no build chain) that lists
//! the machines with their last contact, the live tunnels with their client's
//! address, duration and bytes, and charts of the last day ([`crate::live`]);
//! searches by computer ID; and disables, enables or removes a machine.
//!
//! Who may use it (checked in this order, before anything is read):
//! - the caller must be on loopback (the gateway host itself, or an SSH
//!   tunnel to it; with a trusted PROXY header, the real client counts), and
//!   the `Host` header must name loopback (`localhost`, `127.0.0.1`,
//!   `[::1]`), so a page of another site whose name resolves to 127.0.0.1
//!   (DNS rebinding) gets nothing; or, with `AdminPassword` set, a caller
//!   anywhere gives the password ([`password`]; the browser keeps it for this
//!   origin only, so a rebound name has none);
//! - every `api/` request carries the page's token (`X-Thinadmin-Token`),
//!   compared in constant time: another site can neither read the lists
//!   (`<script src>` sends no header) nor change anything;
//! - a change is a `POST` whose `Origin` is this gateway's own
//!   (`https://` + `Host`) and, when the browser sends it, `Sec-Fetch-Site:
//!   same-origin`; no `GET` changes anything.
//!
//! Every answer carries `Content-Security-Policy: default-src 'self'` (no
//! inline script, no other origin), `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`; the page writes what the database holds as
//! text (`textContent`), never as markup.

mod api;
pub mod password;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use subtle::ConstantTimeEq;
use thin_protocol::http::Request;
use tokio_util::sync::CancellationToken;

use crate::live::{History, LiveTunnels};
use crate::registry::MachineRegistry;
use crate::relay::Traffic;
use crate::sessions::Sessions;

/// The console's path.
pub const PATH: &str = "/thinadmin/";
/// The header that carries the page's token.
pub const TOKEN_HEADER: &str = "X-Thinadmin-Token";
/// How often a sample of sessions and traffic is taken.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

const INDEX_HTML: &str = include_str!("static/index.html");
const ADMIN_JS: &str = include_str!("static/admin.js");
const ADMIN_CSS: &str = include_str!("static/admin.css");

/// Headers of every answer under `/thinadmin/`.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
];

/// What the console reads and changes.
#[derive(Debug)]
pub struct Admin {
    /// Registered machines.
    pub registry: Arc<dyn MachineRegistry>,
    /// Office PCs online.
    pub sessions: Arc<Sessions>,
    /// Tunnels relaying now.
    pub live: Arc<LiveTunnels>,
    /// The last day, a sample a minute.
    pub history: Arc<History>,
    /// Relayed bytes of the whole gateway.
    pub traffic: Arc<Traffic>,
    /// The page's token: random for each start of the gateway, given only
    /// inside the page (to callers let in).
    token: String,
    /// With `AdminPassword`: lets callers off loopback in.
    password: Option<password::PasswordGate>,
}

/// An answer: status, reason, content type, body.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, reason: &'static str, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, reason, content_type, body: body.into() }
    }

    fn text(status: u16, reason: &'static str, body: &str) -> Reply {
        Reply::new(status, reason, "text/plain; charset=utf-8", format!("{status} {reason}: {body}\r\n"))
    }

    pub(crate) fn json(status: u16, reason: &'static str, v: &serde_json::Value) -> Reply {
        Reply::new(status, reason, "application/json", format!("{v}\n"))
    }

    /// The headers of this answer: those every console answer carries, and
    /// the password prompt with a 401.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut h = SECURITY_HEADERS.to_vec();
        if self.status == 401 {
            h.push(("WWW-Authenticate", "Basic realm=\"ThinGate admin console\", charset=\"UTF-8\""));
        }
        h
    }
}

/// True when `path` is the console's (the page, its files, its API).
pub fn is_admin_path(path: &str) -> bool {
    path == "/thinadmin" || path.starts_with(PATH)
}

/// True when the `Host` header names loopback: `localhost`, `127.0.0.0/8`
/// or `[::1]`, with or without a port.
pub fn host_is_loopback(host: &str) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Admin {
    /// The console over the gateway's parts, with a fresh token; with
    /// `admin_password` (`AdminPassword`), callers off loopback may log in.
    pub fn new(
        registry: Arc<dyn MachineRegistry>,
        sessions: Arc<Sessions>,
        live: Arc<LiveTunnels>,
        history: Arc<History>,
        traffic: Arc<Traffic>,
        admin_password: Option<thin_protocol::secret::Secret>,
    ) -> Admin {
        let mut t = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut t);
        let password = admin_password.map(password::PasswordGate::new);
        Admin { registry, sessions, live, history, traffic, token: hex::encode(t), password }
    }

    /// Answers a request under `/thinadmin/` from `peer`.
    pub async fn answer(&self, req: &Request, peer: SocketAddr) -> Reply {
        let host = if peer.ip().is_loopback() {
            match req.header("host").filter(|h| host_is_loopback(h)) {
                Some(h) => h,
                None => return Reply::text(403, "Forbidden", "open the console as https://localhost:PORT/thinadmin/"),
            }
        } else {
            let Some(gate) = &self.password else {
                return Reply::text(
                    403,
                    "Forbidden",
                    "/thinadmin/ answers only on the gateway itself (use an SSH tunnel)",
                );
            };
            match gate.check(req, peer.ip()).await {
                Ok(()) => req.header("host").unwrap_or(""),
                Err(password::Refusal::Unauthorized) => {
                    return Reply::text(401, "Unauthorized", "log in as admin with the console's password")
                }
                Err(password::Refusal::TooMany(wait)) => {
                    let why = format!("too many password checks; try again in {} s", wait.as_secs().max(1));
                    return Reply::text(429, "Too Many Requests", &why);
                }
                Err(password::Refusal::Busy) => {
                    return Reply::text(503, "Service Unavailable", "password checks under way; try again")
                }
            }
        };
        let path = req.path();
        match (req.method.as_str(), path) {
            ("GET" | "HEAD", "/thinadmin") => Reply::text(404, "Not Found", "the console is at /thinadmin/"),
            ("GET" | "HEAD", PATH) => {
                let page = INDEX_HTML.replace("{{TOKEN}}", &self.token);
                Reply::new(200, "OK", "text/html; charset=utf-8", page)
            }
            ("GET" | "HEAD", "/thinadmin/admin.js") => {
                Reply::new(200, "OK", "text/javascript; charset=utf-8", ADMIN_JS)
            }
            ("GET" | "HEAD", "/thinadmin/admin.css") => Reply::new(200, "OK", "text/css; charset=utf-8", ADMIN_CSS),
            (method, p) if p.starts_with("/thinadmin/api/") => {
                if !self.token_matches(req) {
                    return Reply::text(403, "Forbidden", "missing or wrong token; reload the page");
                }
                match method {
                    "GET" if p == "/thinadmin/api/overview" => api::overview(self, query_value(req, "q")),
                    "POST" => {
                        if let Err(why) = same_origin(req, host) {
                            return Reply::text(403, "Forbidden", why);
                        }
                        let Some(action) = p.strip_prefix("/thinadmin/api/machine/").and_then(api::Action::parse)
                        else {
                            return Reply::text(404, "Not Found", "no such action");
                        };
                        let Some(pcid) = query_value(req, "pcid") else {
                            return Reply::text(400, "Bad Request", "name the computer: ?pcid=ID");
                        };
                        api::change(self, action, &pcid).await
                    }
                    _ => Reply::text(405, "Method Not Allowed", "read with GET, change with POST"),
                }
            }
            ("GET" | "HEAD", _) => Reply::text(404, "Not Found", "no such page"),
            _ => Reply::text(405, "Method Not Allowed", "changes are POSTs to /thinadmin/api/"),
        }
    }

    fn token_matches(&self, req: &Request) -> bool {
        req.header(TOKEN_HEADER).is_some_and(|t| {
            let (a, b) = (t.trim().as_bytes(), self.token.as_bytes());
            a.len() == b.len() && bool::from(a.ct_eq(b))
        })
    }

    /// Takes a sample every [`SAMPLE_EVERY`] until `shutdown` fires (the
    /// first at once, so the chart has a point from the start).
    pub async fn sample_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let (sessions, tunnels) = (self.sessions.len() as u64, self.live.list().len() as u64);
            self.history.record(crate::machine_db::now_ms(), sessions, tunnels, &self.traffic);
        }
    }
}

/// Checks that a change comes from the console's own page: `Origin` is
/// `https://` + `host`, and `Sec-Fetch-Site`, when sent, is `same-origin`.
fn same_origin(req: &Request, host: &str) -> Result<(), &'static str> {
    let Some(origin) = req.header("origin") else {
        return Err("a change needs the Origin header of the console's page");
    };
    if !origin.trim().eq_ignore_ascii_case(&format!("https://{}", host.trim())) {
        return Err("a change must come from the console's own page (Origin differs)");
    }
    if req.header("sec-fetch-site").is_some_and(|s| !s.trim().eq_ignore_ascii_case("same-origin")) {
        return Err("a change must come from the console's own page (Sec-Fetch-Site)");
    }
    Ok(())
}

/// The value of `key` in the query string, percent-decoded.
fn query_value(req: &Request, key: &str) -> Option<String> {
    let q = req.query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            headers: headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        }
    }

    #[test]
    fn only_loopback_host_names_are_taken() {
        for h in ["localhost", "localhost:8443", "127.0.0.1:443", "127.0.0.5", "[::1]:8443", "[::1]", "LOCALHOST"] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in ["evil.example", "evil.example:8443", "192.0.2.1:443", "[2001:db8::1]:443", "localhost.evil", ""] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }

    #[test]
    fn a_change_needs_the_consoles_own_origin() {
        let host = "127.0.0.1:8443";
        assert!(same_origin(&req("POST", "/", &[("Origin", "https://127.0.0.1:8443")]), host).is_ok());
        let sec = [("Origin", "https://127.0.0.1:8443"), ("Sec-Fetch-Site", "same-origin")];
        assert!(same_origin(&req("POST", "/", &sec), host).is_ok());
        for bad in [
            vec![],
            vec![("Origin", "https://evil.example")],
            vec![("Origin", "http://127.0.0.1:8443")],
            vec![("Origin", "null")],
            vec![("Origin", "https://127.0.0.1:8443"), ("Sec-Fetch-Site", "cross-site")],
        ] {
            assert!(same_origin(&req("POST", "/", &bad), host).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let r = req("GET", "/x?a=1&pcid=desk%2D01&q=a+b&bad=%zz&end=%4&sign=%+1", &[]);
        assert_eq!(query_value(&r, "pcid").as_deref(), Some("desk-01"));
        assert_eq!(query_value(&r, "q").as_deref(), Some("a b"));
        assert_eq!(query_value(&r, "bad").as_deref(), Some("%zz"));
        assert_eq!(query_value(&r, "end").as_deref(), Some("%4"));
        assert_eq!(query_value(&r, "sign").as_deref(), Some("% 1"), "a sign is no hex digit");
        assert_eq!(query_value(&r, "none"), None);
    }
}
