//! The apps reaching the gateway through real proxies on loopback: tinyproxy
//! (HTTP CONNECT, Basic auth) and a SOCKS5 server.

use std::time::Duration;

use thin_e2e::*;
use thin_tunnel::server_agent::ServerState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_serve_and_relay_16_mib_through_http_and_socks5_proxies() {
    let gw = TestGateway::start().await;
    let http = proxies::Tinyproxy::start("BasicAuth alice s3cret");
    let socks = proxies::socks5(Some(("bob", "hunter2"))).await;
    // Office PC through the HTTP proxy with Basic auth.
    let office = gw.link_via(&format!("http://alice:s3cret@127.0.0.1:{}", http.port));
    let _pc = gw.office_pc("proxied", "pw").via(office).await;
    // Home PC through SOCKS5 with user/password.
    let home = gw.link_via(&format!("socks5://bob:hunter2@127.0.0.1:{}", socks.port));
    let t = connect(&home, "proxied", "pw").await;
    assert_tunnel_echo(&t, 16 << 20, 16).await;
    assert!(socks.seen.lock().unwrap().iter().any(|s| s == &gw.addr.to_string()), "SOCKS5 saw only the gateway");
    // Without credentials, both proxies work too.
    let open_http = proxies::Tinyproxy::start("");
    let open_socks = proxies::socks5(None).await;
    for p in [format!("http://127.0.0.1:{}", open_http.port), format!("socks5://127.0.0.1:{}", open_socks.port)] {
        let t = connect(&gw.link_via(&p), "proxied", "pw").await;
        let (a, b, n) = echo_check(t.open_stream().await.unwrap(), 1 << 20, 1).await;
        assert_eq!((a, n), (b, 1 << 20), "{p}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_proxy_password_is_refused_with_a_message_naming_the_proxy() {
    let gw = TestGateway::start().await;
    let http = proxies::Tinyproxy::start("BasicAuth alice s3cret");
    let bad = gw.link_via(&format!("http://alice:wrong@127.0.0.1:{}", http.port));
    let msg = try_register(&bad, "x", "pw").await.unwrap_err();
    assert!(msg.contains(&format!("127.0.0.1:{}", http.port)), "{msg}");
    assert!(msg.contains("refused the user name or password"), "{msg}");
    assert!(!msg.contains("wrong"), "the password is not shown: {msg}");
    let none = gw.link_via(&format!("http://127.0.0.1:{}", http.port));
    let msg = try_register(&none, "x", "pw").await.unwrap_err();
    assert!(msg.contains("requires a user name and password"), "{msg}");
    let socks = proxies::socks5(Some(("bob", "hunter2"))).await;
    let bad = gw.link_via(&format!("socks5://bob:nope@127.0.0.1:{}", socks.port));
    let msg = try_register(&bad, "x", "pw").await.unwrap_err();
    assert!(msg.contains(&format!("127.0.0.1:{}", socks.port)), "{msg}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restart_during_a_session_is_followed_by_recovery() {
    let gw = TestGateway::start().await;
    let http = proxies::Tinyproxy::start("");
    let port = http.port;
    let pc = gw.office_pc("via-proxy", "pw").via(gw.link_via(&format!("http://127.0.0.1:{port}"))).await;
    drop(http); // the proxy dies, cutting the control session
    let reason = pc
        .wait_for_state("the office PC reports the proxy down", Duration::from_secs(20), |st| match st {
            ServerState::Offline { reason } if reason.contains(&format!("127.0.0.1:{port}")) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("proxy"), "{reason}");
    let _http = proxies::Tinyproxy::start_on(port, "");
    pc.wait_online().await;
    let t = gw.connect("via-proxy", "pw").await;
    assert_tunnel_echo(&t, 1 << 20, 2).await;
    gw.shutdown().await;
}
