//! The apps reaching the gateway through real proxies on loopback: tinyproxy
//! (HTTP CONNECT, Basic auth) and a SOCKS5 server.

#[allow(dead_code)]
#[path = "../../client/tunnel/tests/fixtures/proxy/harness.rs"]
mod harness;

use std::time::Duration;

use thin_e2e::*;
use thin_protocol::entry_point::EntryPoint;
use thin_protocol::secret::Secret;
use thin_tunnel::link::Link;
use thin_tunnel::proxy::ProxySetting;
use thin_tunnel::server_agent::ServerState;

fn link_via(g: &GateDir, addr: std::net::SocketAddr, proxy: &str) -> Link {
    let ep = EntryPoint::load(&g.entry_point(addr)).unwrap();
    Link::new(ep, Some(ProxySetting::parse(proxy).unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_serve_and_relay_16_mib_through_http_and_socks5_proxies() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let http = harness::Tinyproxy::start("BasicAuth alice s3cret");
    let socks = harness::socks5(Some(("bob", "hunter2"))).await;
    let target = echo_server().await;
    // Office PC through the HTTP proxy with Basic auth.
    let office = link_via(&g, gw.addr, &format!("http://alice:s3cret@127.0.0.1:{}", http.port));
    let _pc = OfficePc::start(&office, "proxied", "pw", target).await;
    // Home PC through SOCKS5 with user/password.
    let home = link_via(&g, gw.addr, &format!("socks5://bob:hunter2@127.0.0.1:{}", socks.port));
    let t = thin_tunnel::client_agent::connect(&home, "proxied", &Secret::new("pw")).await.unwrap();
    let (a, b, n) = echo_check(t.open_stream().await.unwrap(), 16 << 20, 16).await;
    assert_eq!((a, n), (b, 16 << 20));
    assert!(socks.seen.lock().unwrap().iter().any(|s| s == &gw.addr.to_string()), "SOCKS5 saw only the gateway");
    // Without credentials, both proxies work too.
    let open_http = harness::Tinyproxy::start("");
    let open_socks = harness::socks5(None).await;
    for p in [format!("http://127.0.0.1:{}", open_http.port), format!("socks5://127.0.0.1:{}", open_socks.port)] {
        let t = thin_tunnel::client_agent::connect(&link_via(&g, gw.addr, &p), "proxied", &Secret::new("pw"))
            .await
            .unwrap();
        let (a, b, n) = echo_check(t.open_stream().await.unwrap(), 1 << 20, 1).await;
        assert_eq!((a, n), (b, 1 << 20), "{p}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_proxy_password_is_refused_with_a_message_naming_the_proxy() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let http = harness::Tinyproxy::start("BasicAuth alice s3cret");
    let dir = tempfile::tempdir().unwrap();
    let cfg = thin_tunnel::settings::ConfigDir(dir.path().to_path_buf());
    let bad = link_via(&g, gw.addr, &format!("http://alice:wrong@127.0.0.1:{}", http.port));
    let msg = thin_tunnel::server_agent::register(&bad, &cfg, "x", &Secret::new("pw")).await.unwrap_err().to_string();
    assert!(msg.contains(&format!("127.0.0.1:{}", http.port)), "{msg}");
    assert!(msg.contains("refused the user name or password"), "{msg}");
    assert!(!msg.contains("wrong"), "the password is not shown: {msg}");
    let none = link_via(&g, gw.addr, &format!("http://127.0.0.1:{}", http.port));
    let msg = thin_tunnel::server_agent::register(&none, &cfg, "x", &Secret::new("pw")).await.unwrap_err().to_string();
    assert!(msg.contains("requires a user name and password"), "{msg}");
    let socks = harness::socks5(Some(("bob", "hunter2"))).await;
    let bad = link_via(&g, gw.addr, &format!("socks5://bob:nope@127.0.0.1:{}", socks.port));
    let msg = thin_tunnel::server_agent::register(&bad, &cfg, "x", &Secret::new("pw")).await.unwrap_err().to_string();
    assert!(msg.contains(&format!("127.0.0.1:{}", socks.port)), "{msg}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restart_during_a_session_is_followed_by_recovery() {
    let g = GateDir::new("");
    let gw = g.start().await;
    let http = harness::Tinyproxy::start("");
    let port = http.port;
    let target = echo_server().await;
    let office = link_via(&g, gw.addr, &format!("http://127.0.0.1:{port}"));
    let pc = OfficePc::start(&office, "via-proxy", "pw", target).await;
    drop(http); // the proxy dies, cutting the control session
    let st = pc.state.clone();
    let reason = wait_for("the office PC reports the proxy down", Duration::from_secs(20), || {
        let r = match &*st.borrow() {
            ServerState::Offline { reason } if reason.contains(&format!("127.0.0.1:{port}")) => Some(reason.clone()),
            _ => None,
        };
        async move { r }
    })
    .await;
    assert!(reason.contains("proxy"), "{reason}");
    let _http = harness::Tinyproxy::start_on(port, "");
    pc.wait_online().await;
    let t = thin_tunnel::client_agent::connect(&g.link(gw.addr), "via-proxy", &Secret::new("pw")).await.unwrap();
    let (a, b, n) = echo_check(t.open_stream().await.unwrap(), 1 << 20, 2).await;
    assert_eq!((a, n), (b, 1 << 20));
    gw.shutdown().await;
}
