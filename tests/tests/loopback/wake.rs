//! Wake-on-LAN end to end: the target reports its MAC address while it
//! serves (kept as `WolMacList`), then sleeps; the real `thinclient wake`
//! logs in to another office PC (the real `thinsvr`) in the same wake group,
//! which sends the magic packet to a UDP listener on loopback (the test-only
//! broadcast address, `THIN_TEST_WOL_BROADCAST`, honoured by debug builds
//! only). Refused, with no packet sent: a target outside the group, a wrong
//! password for the `--via` PC, and a third request for one target within a
//! minute.

use std::process::Command;
use std::time::Duration;

use thin_e2e::procs::{bin, Proc};
use thin_e2e::*;

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
