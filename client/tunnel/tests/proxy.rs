//! The proxy layer against real proxies on loopback: tinyproxy (HTTP
//! CONNECT, needs `apt-get install tinyproxy`) and a fast-socks5 server,
//! with an echo server as the target.

use std::time::Duration;
use thin_e2e::proxies::{round_trip, socks5, Tinyproxy, GATEWAY_NAME};
use thin_e2e::{echo_server, free_port};
use thin_protocol::secret::Secret;
use thin_tunnel::proxy::{connect, resolve_with, ProxyError, ProxyKind, ProxySetting};

const T: Duration = Duration::from_secs(10);
const AUTH: &str = "BasicAuth alice s3cret-pw";

fn proxy(url: &str) -> ProxySetting {
    ProxySetting::parse(url).unwrap()
}

/// Connects to `host:port` through the proxy at `url`; must succeed.
async fn via(url: &str, host: &str, port: u16) -> tokio::net::TcpStream {
    connect(host, port, Some(&proxy(url)), T).await.unwrap()
}

/// Connects to `host:port`, which must fail; returns the error and its message.
async fn fails(host: &str, port: u16, via: Option<&ProxySetting>) -> (ProxyError, String) {
    let err = connect(host, port, via, T).await.expect_err("connect should fail");
    let text = err.to_string();
    (err, text)
}

#[tokio::test]
async fn http_connect_without_auth() {
    let (tiny, echo) = (Tinyproxy::start(""), echo_server().await.port());
    let url = format!("http://127.0.0.1:{}", tiny.port);
    round_trip(via(&url, "127.0.0.1", echo).await).await;
    round_trip(via(&url, "localhost", echo).await).await;
}

#[tokio::test]
async fn http_connect_with_basic_auth() {
    let (tiny, echo) = (Tinyproxy::start(AUTH), echo_server().await.port());
    // %2D is '-': the password is percent-decoded before use.
    let url = format!("http://alice:s3cret%2Dpw@127.0.0.1:{}", tiny.port);
    round_trip(via(&url, "127.0.0.1", echo).await).await;
}

#[tokio::test]
async fn http_wrong_or_missing_password_is_explained() {
    let (tiny, echo) = (Tinyproxy::start(AUTH), echo_server().await.port());
    let wrong = proxy(&format!("http://alice:hunter2@127.0.0.1:{}", tiny.port));
    let (err, text) = fails("127.0.0.1", echo, Some(&wrong)).await;
    let port = tiny.port;
    let refused = format!("the proxy 127.0.0.1:{port} refused the user name or password");
    assert_eq!(text, refused);
    assert!(!err.is_retryable() && !format!("{err:?}").contains("hunter2"));
    let anonymous = proxy(&format!("http://127.0.0.1:{port}"));
    let (err, text) = fails("127.0.0.1", echo, Some(&anonymous)).await;
    assert!(matches!(err, ProxyError::AuthRequired { .. }), "{err:?}");
    assert!(text.contains("requires a user name and password"), "{text}");
}

#[tokio::test]
async fn http_forbidden_port_shows_the_status_line() {
    let (tiny, echo) = (Tinyproxy::start("ConnectPort 1"), echo_server().await.port());
    let (port, via) = (tiny.port, proxy(&format!("http://127.0.0.1:{}", tiny.port)));
    let (err, text) = fails("127.0.0.1", echo, Some(&via)).await;
    let start = format!("the proxy 127.0.0.1:{port} refused to connect to 127.0.0.1:{echo}: HTTP/1.");
    let status_line_shown = text.starts_with(&start) && text.ends_with(" 403 Access violation");
    assert!(status_line_shown, "{text}");
    assert!(matches!(err, ProxyError::HttpStatus { status: 403, .. }));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn socks5_sends_names_for_the_proxy_to_resolve() {
    let (server, echo) = (socks5(None).await, echo_server().await.port());
    let url = format!("socks5://127.0.0.1:{}", server.port);
    round_trip(via(&url, GATEWAY_NAME, echo).await).await;
    round_trip(via(&url.replace("socks5:", "socks5h:"), GATEWAY_NAME, echo).await).await;
    round_trip(via(&url, "127.0.0.1", echo).await).await;
    let name = format!("{GATEWAY_NAME}:{echo}");
    let ip = format!("127.0.0.1:{echo}");
    assert_eq!(*server.seen.lock().unwrap(), [name.clone(), name, ip]);
}

#[tokio::test]
async fn socks5_with_user_and_password() {
    let server = socks5(Some(("alice", "p@ss word"))).await;
    let echo = echo_server().await.port();
    let url = format!("socks5://alice:p%40ss%20word@127.0.0.1:{}", server.port);
    round_trip(via(&url, GATEWAY_NAME, echo).await).await;
}

#[tokio::test]
async fn socks5_wrong_or_missing_password_is_explained() {
    let (server, echo) = (socks5(Some(("alice", "right"))).await, echo_server().await.port());
    let anonymous = ProxySetting::new(ProxyKind::Socks5, "127.0.0.1", server.port);
    let wrong = ProxySetting::with_credentials(anonymous.clone(), "alice", Secret::new("hunter2"));
    let (err, text) = fails(GATEWAY_NAME, echo, Some(&wrong)).await;
    let port = server.port;
    let refused = format!("the proxy 127.0.0.1:{port} refused the user name or password");
    assert_eq!(text, refused);
    assert!(!err.is_retryable() && !format!("{err:?}{wrong:?}{wrong}").contains("hunter2"));
    let (_, text) = fails(GATEWAY_NAME, echo, Some(&anonymous)).await;
    assert!(text.contains("requires a user name and password"), "{text}");
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn socks5_reply_codes_are_explained() {
    let server = socks5(None).await;
    let port = server.port;
    let via = proxy(&format!("socks5://127.0.0.1:{port}"));
    let (_, text) = fails("nowhere.test", 443, Some(&via)).await;
    let why = "could not connect to nowhere.test:443: host unreachable (reply code 4)";
    assert_eq!(text, format!("the SOCKS5 proxy 127.0.0.1:{port} {why}"));
    let (err, text) = fails(GATEWAY_NAME, free_port(), Some(&via)).await;
    assert!(text.contains("connection refused by the target (reply code 5)"), "{text}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn unreachable_proxy_and_target_are_named() {
    let dead = free_port();
    let urls = [format!("http://u:hunter2@127.0.0.1:{dead}"), format!("socks5://127.0.0.1:{dead}")];
    for url in urls {
        let (err, text) = fails("gw.example", 443, Some(&proxy(&url))).await;
        assert!(text.starts_with(&format!("cannot reach the proxy 127.0.0.1:{dead}: ")), "{text}");
        assert!(text.contains("refused") && !text.contains("hunter2"), "{text}");
        assert!(err.is_retryable());
    }
    let (_, text) = fails("127.0.0.1", dead, None).await;
    assert!(text.starts_with(&format!("cannot reach 127.0.0.1:{dead}: ")), "{text}");
}

#[tokio::test]
async fn a_silent_proxy_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move { listener.accept().await });
    let via = proxy(&format!("http://127.0.0.1:{port}"));
    let started = std::time::Instant::now();
    let err = connect("gw.example", 443, Some(&via), Duration::from_millis(300)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let expected = format!("the proxy 127.0.0.1:{port} did not open the connection to gw.example:443 within 0.3 s");
    assert_eq!(err.to_string(), expected);
    assert!(err.is_retryable());
    hold.abort();
}

/// The proxy the environment `env` gives for `host`.
fn from_env(host: &str, env: impl Fn(&str) -> Option<String>) -> Option<ProxySetting> {
    resolve_with(None, None, host, env, || None).unwrap()
}

#[tokio::test]
async fn environment_proxy_is_used_unless_no_proxy_matches() {
    let (tiny, echo) = (Tinyproxy::start(""), echo_server().await.port());
    let https = format!("http://127.0.0.1:{}", tiny.port);
    let chosen = from_env("127.0.0.1", |name| (name == "https_proxy").then(|| https.clone()));
    assert_eq!(chosen.as_ref().unwrap().to_string(), https);
    round_trip(connect("127.0.0.1", echo, chosen.as_ref(), T).await.unwrap()).await;

    // NO_PROXY exempts the target: a direct connection, though the proxy is dead.
    let dead = format!("socks5://127.0.0.1:{}", free_port());
    let env = |name: &str| match name {
        "ALL_PROXY" => Some(dead.clone()),
        "NO_PROXY" => Some("example.com, 127.0.0.0/8".into()),
        _ => None,
    };
    assert_eq!(from_env("127.0.0.1", env), None);
    assert_eq!(from_env("gw.example", env).unwrap().to_string(), dead);
    round_trip(connect("127.0.0.1", echo, None, T).await.unwrap()).await;
    let direct = resolve_with(Some("direct"), Some(&https), "gw.example", env, || None);
    assert_eq!(direct.unwrap(), None);
}

#[test]
fn urls_parse_and_hide_passwords() {
    let p = ProxySetting::parse("http://al%40ice:p%3Ass%25w@Proxy.corp:3128/").unwrap();
    assert_eq!(p.credentials().map(|(u, s)| (u, s.expose())), Some(("al@ice", "p:ss%w")));
    assert_eq!(p.to_string(), "http://al%40ice:***@Proxy.corp:3128");
    assert!(!format!("{p:?}").contains("ss"), "{p:?}");
    let url = "http://al%40ice:p%3Ass%25w@Proxy.corp:3128";
    assert_eq!(p.to_url_exposing_password().expose(), url);
    let raw_at = ProxySetting::parse("socks5://u:p@ss@s").unwrap();
    assert_eq!(raw_at.credentials().unwrap().1.expose(), "p@ss");
    let v6 = ProxySetting::parse("socks5h://[::1]:1081").unwrap();
    assert_eq!((v6.kind(), v6.host(), v6.addr()), (ProxyKind::Socks5h, "::1", "[::1]:1081".into()));
    assert_eq!(ProxySetting::parse("proxy.corp").unwrap().to_string(), "http://proxy.corp:80");
    assert_eq!(ProxySetting::parse("SOCKS5://s").unwrap().port(), 1080);
    let bad = "https://p:1|gopher://p:1|http://p:0|http://p:99999|http://p/x|http://:pw@p:1|\
               http://u:%zz@p:1|http://[::1:1080|http://[nope]:1|http://p q:1|http://|";
    for bad in bad.split('|') {
        assert!(ProxySetting::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}
