//! ThinServer as a service, driven the way its window drives it: the real
//! `thinsvr service` binary with a real gateway, set up entirely through the
//! local admin port (computer ID, password, local port), then reached by the
//! real `thinclient`; a caller without the admin secret refused; SIGTERM stops
//! it cleanly.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use thin_e2e::procs::{bin, thinclient_connect, Proc};
use thin_e2e::*;
use thin_protocol::secret::Secret;
use thin_tunnel::admin_rpc::{AdminClient, AdminError, AdminReply, AdminRequest, AdminSecret, AdminStatus, LinkState};
use thin_tunnel::control::ControlError;
use thin_tunnel::password_policy::WeakPassword;

async fn call(admin: SocketAddr, secret: &Path, req: AdminRequest) -> Result<AdminStatus, ControlError> {
    let s = AdminSecret::load(secret).unwrap();
    let mut c = AdminClient::connect(admin, &s).await.unwrap();
    match c.call(req).await.unwrap() {
        AdminReply::Status(s) => Ok(s),
        AdminReply::Error { error } => Err(error),
    }
}

async fn wait_state(admin: SocketAddr, secret: &Path, want: LinkState) -> AdminStatus {
    wait_for(&format!("the service to be {want:?}"), Duration::from_secs(30), || async {
        let s = call(admin, secret, AdminRequest::Status).await.unwrap();
        (s.state == want).then_some(s)
    })
    .await
}

/// `thinclient connect` through the gateway; echoes 256 KiB through its local port.
async fn reach(ep: &Path, pcid: &str, password: &str) -> Result<(), String> {
    let mut cli = Proc::spawn(thinclient_connect(ep, pcid), Some(&format!("{password}\n")));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = cli.seen.iter().find_map(|l| l.strip_prefix("listening on ")) {
            assert_tcp_echo(l.trim().parse().unwrap(), 256 << 10, 7).await;
            return Ok(());
        }
        if let Some(st) = cli.child.try_wait().unwrap() {
            let (_, err) = cli.finish(Duration::from_secs(5));
            return Err(format!("{st}: {err}"));
        }
        assert!(std::time::Instant::now() < deadline, "thinclient neither listened nor failed");
        cli.poll_lines(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinsvr_service_is_set_up_through_the_admin_port_and_serves_clients() {
    let gw = TestGateway::start().await;
    let ep = gw.entry_point();
    let target = echo_server().await;
    let cfg = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = cfg.path().join("service.log");
    let mut cmd = Command::new(bin("thinsvr"));
    cmd.arg("--entry-point").arg(&ep).arg("--config-dir").arg(cfg.path()).arg("--rpc-port").arg(port.to_string());
    cmd.arg("service").env("RUST_LOG", "debug");
    let (svc, _stdin) = Proc::spawn_interactive(cmd, &log);
    let admin = SocketAddr::from(([127, 0, 0, 1], port));
    let secret = cfg.path().join("admin.secret");
    wait_for("the admin port", Duration::from_secs(20), || async {
        (secret.exists() && tokio::net::TcpStream::connect(admin).await.is_ok()).then_some(())
    })
    .await;
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
    assert_eq!((mode(&secret), mode(cfg.path())), (0o600, 0o700));

    // Someone who cannot read the secret is refused before any request.
    let guess = AdminSecret::load_or_create(&cfg.path().join("..").join(format!("guess-{port}.secret"))).unwrap();
    let e = AdminClient::connect(admin, &guess).await.unwrap_err();
    assert!(matches!(&e, AdminError::Refused(m) if m.contains("wrong admin secret")), "{e}");

    // Fresh: the service waits for an ID and a password.
    let s = call(admin, &secret, AdminRequest::Status).await.unwrap();
    assert_eq!((s.state, s.pcid, s.password_set, s.local_port), (LinkState::NotRegistered, None, false, 3389));

    // What the window does: the local port, then the ID with a password.
    call(admin, &secret, AdminRequest::SetLocalPort { port: target.port() }).await.unwrap();
    let bad =
        call(admin, &secret, AdminRequest::SetPcid { pcid: "no spaces".into(), password: Some(Secret::new("x")) });
    assert_eq!(bad.await.unwrap_err(), ControlError::PcidInvalid);
    // A weak password is refused by the admin port itself, whatever the window checked.
    for (weak, want) in [
        ("short", WeakPassword::TooShort { chars: 5 }),
        ("svc-desk-2024", WeakPassword::Guessable { score: 0, hint: None }),
    ] {
        let req = AdminRequest::SetPcid { pcid: "Svc-Desk".into(), password: Some(Secret::new(weak)) };
        match call(admin, &secret, req).await.unwrap_err() {
            ControlError::WeakPassword(got) => {
                assert_eq!(std::mem::discriminant(&got), std::mem::discriminant(&want), "{weak}: {got:?}")
            }
            other => panic!("{weak}: {other:?}"),
        }
    }
    assert!(!gw.gateway.registry.is_registered("svc-desk"), "a weak password registered nothing");
    let s = call(
        admin,
        &secret,
        AdminRequest::SetPcid { pcid: "Svc-Desk".into(), password: Some(Secret::new("first tram violet ledger")) },
    )
    .await
    .unwrap();
    assert_eq!(s.pcid.as_deref(), Some("svc-desk"));
    assert!(gw.gateway.registry.is_registered("svc-desk"));
    wait_state(admin, &secret, LinkState::Online).await;
    reach(&ep, "svc-desk", "first tram violet ledger").await.unwrap();

    // A new password takes effect without restarting the service.
    let weak = call(admin, &secret, AdminRequest::SetPassword { password: Secret::new("password123") }).await;
    assert!(matches!(weak, Err(ControlError::WeakPassword(WeakPassword::Guessable { .. }))), "{weak:?}");
    call(admin, &secret, AdminRequest::SetPassword { password: Secret::new("second copper lantern river") })
        .await
        .unwrap();
    wait_state(admin, &secret, LinkState::Online).await;
    let old = reach(&ep, "svc-desk", "first tram violet ledger").await.unwrap_err();
    assert!(old.contains("wrong password"), "{old}");
    reach(&ep, "svc-desk", "second copper lantern river").await.unwrap();

    // An address that is not one changes nothing.
    let e = call(admin, &secret, AdminRequest::SetOtpEmail { email: Some("nobody".into()) }).await.unwrap_err();
    assert_eq!(e, ControlError::EmailInvalid);
    assert_eq!(call(admin, &secret, AdminRequest::Status).await.unwrap().otp_email, None);

    svc.signal(nix::sys::signal::Signal::SIGTERM);
    let (st, _) = svc.finish(Duration::from_secs(15));
    assert!(st.success(), "{st}");
    let text = std::fs::read_to_string(&log).unwrap();
    for secret_text in
        ["first tram violet ledger", "second copper lantern river", std::fs::read_to_string(&secret).unwrap().trim()]
    {
        assert!(!text.contains(secret_text), "the log shows a secret");
    }
    assert!(text.contains("admin port open"), "{text}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_on_the_same_admin_port_says_why_it_cannot_start() {
    let cfg = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cmd = Command::new(bin("thinsvr"));
    cmd.arg("--config-dir").arg(cfg.path()).arg("--rpc-port").arg(port.to_string()).arg("service");
    let (st, err) = Proc::spawn(cmd, None).finish(Duration::from_secs(15));
    assert!(!st.success());
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("--rpc-port"), "{err}");
}
