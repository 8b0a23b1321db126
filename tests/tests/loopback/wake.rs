//! Wake-on-LAN end to end: the target reports its MAC address while it
//! serves (kept as `WolMacList`), then sleeps; the real `thinclient wake`
//! logs in to another office PC (the real `thinsvr`) in the same wake group,
//! which sends the magic packet to a UDP listener on loopback (the test-only
//! broadcast address, `THIN_TEST_WOL_BROADCAST`, honoured by debug builds
//! only). Refused, with no packet sent: a target outside the group, a wrong
//! password for the `--via` PC, and a third request for one target within a
//! minute. And a raw office PC: too many or bad MAC addresses, an old
//! office PC under rules, wake requests before serving or outside the group.

use std::process::Command;
use std::time::Duration;

use thin_e2e::procs::{bin, Proc};
use thin_e2e::*;
use thin_protocol::identity::Identity;
use thin_protocol::messages::{ErrorCode, GateToServer, ServerToGate};
use thin_protocol::policy::MASK_POLICY;

const MAC: &str = "02-00-5E-10-00-01";

fn wake(ep: &std::path::Path, target: &str, via: &str) -> Command {
    let mut c = Command::new(bin("thinclient"));
    c.arg("--entry-point").arg(ep).args(["wake", target, "--via", via, "--password-stdin"]);
    c
}

/// Runs `thinclient wake`; (success, stdout and stderr).
fn run(cmd: Command, password: &str) -> (bool, String) {
    let mut p = Proc::spawn(cmd, Some(&format!("{password}\n")));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while p.child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "thinclient wake did not end: {}", p.report());
        p.poll_lines(Duration::from_millis(50));
    }
    p.poll_lines(Duration::from_millis(50));
    let out = p.seen.join("\n");
    let (st, err) = p.finish(Duration::from_secs(5));
    (st.success(), format!("{out}\n{err}"))
}

/// The next datagram within `within`, if any.
async fn packet(udp: &tokio::net::UdpSocket, within: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    match tokio::time::timeout(within, udp.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_sends_the_magic_packet_only_within_a_wake_group_for_a_logged_in_user() {
    let dir = GateDir::new("");
    dir.write_policy("WOL_GROUP floor1 wake-a, wake-b\n");
    let gw = dir.start().await;
    let ep = gw.entry_point();

    // The target serves once (reporting its MAC), then goes to sleep.
    let target = gw.office_pc("wake-b", "pw").settings(|s| s.wol_macs = vec![MAC.to_lowercase()]).await;
    assert_eq!(gw.state().registry.wol_macs("wake-b"), [MAC]);
    target.stop.cancel();
    gw.wait_sessions("the target asleep", 0, Duration::from_secs(10)).await;
    let _outside = gw.register("wake-c", "pw").await;

    // The PC that sends the packet: the real thinsvr, broadcasting to loopback.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = udp.local_addr().unwrap().to_string();
    let via = gw.register("wake-a", "via-password").await;
    let mut cmd = thin_e2e::procs::thinsvr(&ep, via.dir.path(), &["run", "--target", "127.0.0.1:9"]);
    cmd.env(thin_tunnel::wake::TEST_BROADCAST_ENV, &to);
    let _via = Proc::spawn(cmd, None);
    gw.wait_sessions("wake-a online", 1, Duration::from_secs(20)).await;

    let (ok, out) = run(wake(&ep, "wake-b", "wake-a"), "via-password");
    assert!(ok && out.contains("wake-a sent the Wake-on-LAN packet for wake-b"), "{out}");
    let p = packet(&udp, Duration::from_secs(5)).await.expect("a magic packet");
    assert_eq!(p.len(), 102);
    assert_eq!(&p[..6], &[0xff; 6]);
    let mac = thin_protocol::policy::parse_mac(MAC).unwrap();
    assert!(p[6..].chunks(6).all(|c| c == mac), "{p:02x?}");

    // Outside the group: refused by the gateway, nothing sent.
    let (ok, out) = run(wake(&ep, "wake-c", "wake-a"), "via-password");
    assert!(!ok && out.contains("may not wake \"wake-c\"") && out.contains("WOL_GROUP"), "{out}");
    // A stranger without the --via PC's password gets no further than the login.
    let (ok, out) = run(wake(&ep, "wake-b", "wake-a"), "guess");
    assert!(!ok && out.to_lowercase().contains("wrong password"), "{out}");
    assert_eq!(packet(&udp, Duration::from_millis(300)).await, None, "no packet for a refused request");

    // Two requests per target per minute; the third is refused.
    let (ok, out) = run(wake(&ep, "wake-b", "wake-a"), "via-password");
    assert!(ok, "{out}");
    assert!(packet(&udp, Duration::from_secs(5)).await.is_some());
    let (ok, out) = run(wake(&ep, "wake-b", "wake-a"), "via-password");
    assert!(!ok && out.contains("try again in"), "{out}");
    assert_eq!(packet(&udp, Duration::from_millis(300)).await, None);

    let dir = gw.shutdown().await;
    let db = read(&dir.path("MachineDatabase.config"));
    assert!(db.contains(&format!("string WolMacList {MAC}")), "{db}");
}

/// What the gateway answers a raw control session that sends `m` after `Register`.
async fn answer_to(gw: &TestGateway, pcid: &str, m: ServerToGate) -> GateToServer {
    let mut s = raw::RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    assert!(matches!(s.register(pcid, None).await, GateToServer::Registered { .. }));
    s.send(&m).await;
    s.recv().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_pcs_cannot_fish_for_mac_addresses_or_report_bad_ones() {
    let dir = GateDir::new("");
    dir.write_policy("SERVER_MESSAGE hello\nWOL_GROUP g raw-a,raw-b\n");
    let gw = dir.start().await;
    let serve = |macs: Vec<String>| ServerToGate::Serve { server_mask: 146, policy: true, macs };

    // Too many, or not MAC addresses: refused naming the field.
    let many = (0..17).map(|i| format!("02-00-00-00-00-{i:02X}")).collect();
    match answer_to(&gw, "raw-x", serve(many)).await {
        GateToServer::Error { code: ErrorCode::Protocol, message } => {
            assert!(message.contains("Serve.macs: 17"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    match answer_to(&gw, "raw-y", serve(vec!["ff-ff-ff-ff-ff-ff".into()])).await {
        GateToServer::Error { code: ErrorCode::Protocol, message } => {
            assert!(message.contains("Serve.macs"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // An office PC that cannot apply policies is refused while rules apply.
    match answer_to(&gw, "raw-old", ServerToGate::Serve { server_mask: 18, policy: false, macs: vec![] }).await {
        GateToServer::Error { code: ErrorCode::Version, message } => assert!(message.contains("update ThinServer")),
        other => panic!("{other:?}"),
    }
    // Not serving: no wake. Serving outside the group: no MAC addresses.
    let wake = |pcid: &str| ServerToGate::Wake { request_id: 9, pcid: pcid.into() };
    match answer_to(&gw, "raw-z", wake("raw-a")).await {
        GateToServer::WakeMacs { request_id: 9, macs, error: Some(e) } => {
            assert!(macs.is_empty() && e.contains("not serving"))
        }
        other => panic!("{other:?}"),
    }
    let mut s = raw::RawServer::login(gw.addr, gw.ca(), Identity::generate()).await;
    s.register("raw-out", None).await;
    s.send(&serve(vec![MAC.into()])).await;
    assert!(matches!(s.recv().await, GateToServer::Serving { .. }));
    assert!(
        matches!(s.recv().await, GateToServer::Policy { policy } if policy.server_message.as_deref() == Some("hello"))
    );
    assert_eq!(gw.state().sessions.get("raw-out").unwrap().mask() & MASK_POLICY, MASK_POLICY);
    s.send(&wake("raw-a")).await;
    match s.recv().await {
        GateToServer::WakeMacs { macs, error: Some(e), .. } => assert!(macs.is_empty() && e.contains("may not wake")),
        other => panic!("{other:?}"),
    }
    gw.shutdown().await;
}
