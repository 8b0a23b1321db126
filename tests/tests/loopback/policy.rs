//! The company's rules (`ThinGatePolicy.ini`) end to end through a real
//! gateway: `ENFORCE_OTP` stops an office PC without an OTP address (the real
//! `thinsvr`, which says why); a change of the file reaches a running office
//! PC without a restart (ServerMask64 bit 32 follows); `IDLE_TIMEOUT` closes
//! a tunnel without input and spares one in use; `REQUIRE_MINIMUM_CLIENT_BUILD`
//! refuses the real `thinclient` (build 0) with a message to update and lets
//! a newer build through; a bad file stops the start naming line, key and fix.

use std::time::{Duration, Instant};

use thin_e2e::procs::{self, Proc};
use thin_e2e::*;
use thin_protocol::frame::read_frame;
use thin_protocol::messages::{ErrorCode, GateToTunnel};
use thin_protocol::policy::MASK_POLICY;
use thin_tunnel::client_agent::ClientError;
use thin_tunnel::link::LinkError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// ServerMask64 of `pcid` in `/thinstat/` now.
fn mask(gw: &TestGateway, pcid: &str) -> Option<u64> {
    gw.state().sessions.get(pcid).map(|s| s.mask())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_otp_keeps_an_office_pc_without_an_otp_address_from_serving_and_it_says_why() {
    let dir = GateDir::new("");
    dir.write_policy("# company rules\nENFORCE_OTP 1\n");
    let gw = dir.start().await;
    // With an address it serves, under the policy (bits 64 and 32).
    let _ok = gw.office_pc("otp-yes", "pw").settings(|s| s.otp_email = Some("a@example.org".into())).await;
    let m = mask(&gw, "otp-yes").expect("online");
    assert_eq!(m & (MASK_POLICY | 64), MASK_POLICY | 64, "mask {m}");

    // Without one, the real thinsvr stops and says why.
    let pc = gw.register("otp-no", "pw").await;
    let cmd = procs::thinsvr(&gw.entry_point(), pc.dir.path(), &["run", "--target", "127.0.0.1:9"]);
    let (status, stderr) = Proc::spawn(cmd, None).finish(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("ENFORCE_OTP") && stderr.contains("thinsvr otp --email"), "{stderr}");
    gw.wait_sessions("only the PC with an address online", 1, Duration::from_secs(10)).await;
    match gw.try_connect("otp-no", "pw").await {
        Err(ClientError::Link(LinkError::Refused { code: ErrorCode::ServerOffline, .. })) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_a_running_office_pc_without_a_restart() {
    let gw = TestGateway::start().await;
    let pc = gw.office_pc("live-desk", "pw").await;
    let session = pc.session_id();
    assert_eq!(mask(&gw, "live-desk").unwrap() & MASK_POLICY, 0, "no policy, no bit 32");
    assert!(pc.policy.get().is_empty());

    gw.dir.write_policy("SERVER_MESSAGE Back up your files\nIDLE_TIMEOUT 30\n");
    wait_for("the office PC to hold the new rules", Duration::from_secs(15), || {
        let p = pc.policy.get();
        async move { (p.server_message.as_deref() == Some("Back up your files")).then_some(()) }
    })
    .await;
    assert_eq!(pc.policy.get().idle_timeout_s, Some(1800));
    assert_eq!(pc.session_id(), session, "the same session: no restart, no reconnect");
    wait_for("bit 32 at the gateway", Duration::from_secs(5), || {
        let m = mask(&gw, "live-desk");
        async move { (m.unwrap_or(0) & MASK_POLICY != 0).then_some(()) }
    })
    .await;

    // A bad file is refused and the rules in force stay.
    gw.dir.write_policy("SERVER_MESSAGE Back up your files\nIDLE_TIMEOUT soon\n");
    gw.state().policy.report(gw.state().policy.reload());
    assert_eq!(pc.policy.get().idle_timeout_s, Some(1800));

    // Rules it cannot meet stop it serving, and it says why.
    gw.dir.write_policy("ENFORCE_OTP 1\n");
    wait_for("the office PC to stop serving", Duration::from_secs(15), || {
        let done = pc.task.is_finished();
        async move { done.then_some(()) }
    })
    .await;
    let err = pc.task.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("ENFORCE_OTP"), "{err}");
    gw.wait_sessions("no office PC online", 0, Duration::from_secs(10)).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_a_tunnel_without_input_and_spares_one_in_use() {
    let dir = GateDir::new("");
    dir.write_policy("IDLE_TIMEOUT 2s\n");
    let gw = dir.start().await;
    let _pc = gw.office_pc("idle-desk", "pw").await;

    // In use: a byte every 300 ms for 4 s (twice the limit) keeps it open.
    let busy = gw.connect("idle-desk", "pw").await;
    let mut st = busy.open_stream().await.unwrap();
    for i in 0..14u8 {
        st.write_all(&[i]).await.unwrap();
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), st.read_exact(&mut b)).await.expect("echo in time").unwrap();
        assert_eq!(b[0], i);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Idle (keepalives still flow): closed after about 2 s.
    let idle = gw.connect("idle-desk", "pw").await;
    let mut st = idle.open_stream().await.unwrap();
    st.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    st.read_exact(&mut b).await.unwrap();
    let quiet = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(20), st.read(&mut b)).await.expect("closed within 20 s");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    assert!(quiet.elapsed() >= Duration::from_millis(1500), "closed after {:?}, before the limit", quiet.elapsed());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_client_build_is_refused_with_a_message_to_update() {
    let dir = GateDir::new("");
    dir.write_policy("REQUIRE_MINIMUM_CLIENT_BUILD 5\n");
    let gw = dir.start().await;
    let _pc = gw.office_pc("build-desk", "pw").await;
    // The real thinclient of this build (0, no builder) is refused.
    let cli = Proc::spawn(procs::thinclient_connect(&gw.entry_point(), "build-desk"), Some("pw\n"));
    let (status, stderr) = cli.finish(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("build 5 or later") && stderr.contains("update ThinClient"), "{stderr}");
    // Build 5 gets through to the office PC.
    let mut c = raw::client_connect_build(gw.addr, gw.ca(), "build-desk", 5).await;
    let m = tokio::time::timeout(Duration::from_secs(20), read_frame::<GateToTunnel, _>(&mut c)).await.unwrap();
    assert!(matches!(m, Ok(GateToTunnel::Paired { .. })), "{m:?}");
    gw.shutdown().await;
}

#[test]
fn a_bad_policy_file_stops_the_start_naming_line_key_and_fix() {
    let dir = GateDir::new("");
    dir.write_policy("ENFORCE_OTP 1\nIDLE_TIMEOUT  forever\n");
    let e = dir.load_error();
    assert!(e.contains("ThinGatePolicy.ini:2: IDLE_TIMEOUT: \"forever\" is not a time; write minutes"), "{e}");
    let (status, stderr) = Proc::spawn(dir.run_command(&[]), None).finish(Duration::from_secs(20));
    assert!(!status.success() && stderr.contains("ThinGatePolicy.ini:2: IDLE_TIMEOUT"), "{stderr}");
}
