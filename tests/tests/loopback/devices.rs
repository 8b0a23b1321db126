//! Known home PCs (issue 18, point 2), through a real gateway: an office PC
//! that accepts only known home PCs refuses a stranger with its device ID
//! until the owner adds it with the real `thinsvr devices`; pairing adds one
//! home PC and closes; `ENFORCE_MACCHECK` makes the check mandatory and the
//! original's MAC list lets a home PC in; a client that skips the check
//! reaches nothing.

use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::Duration;

use thin_e2e::procs::{self, Proc};
use thin_e2e::*;
use thin_protocol::secret::Secret;
use thin_tunnel::client_agent::{connect_as, ClientError, ClientTunnel};
use thin_tunnel::device::DeviceStore;
use thin_tunnel::otp::NoOtp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `thinsvr --config-dir DIR devices ARGS...`, which must succeed; its stdout.
fn devices(gw: &TestGateway, dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["devices"];
    all.extend_from_slice(args);
    let Output { status, stdout, stderr } = procs::thinsvr(&gw.entry_point(), dir, &all).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert!(status.success(), "thinsvr devices {args:?}: {err}");
    out.into_owned()
}

async fn home_pc(gw: &TestGateway, pcid: &str, home: &DeviceStore) -> Result<ClientTunnel, ClientError> {
    connect_as(&gw.link, pcid, &Secret::new("pw"), &NoOtp, home).await
}

async fn echoes(t: &ClientTunnel) {
    let mut st = t.open_stream().await.unwrap();
    st.write_all(b"known").await.unwrap();
    let mut b = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), st.read_exact(&mut b)).await.expect("echo in time").unwrap();
    assert_eq!(&b, b"known");
}

fn refusal(r: Result<ClientTunnel, ClientError>) -> String {
    match r {
        Err(ClientError::Refused(m)) => m,
        other => panic!("expected a refusal, got {:?}", other.map(|_| ()).map_err(|e| e.to_string())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_with_its_device_id_until_the_owner_adds_it() {
    let gw = TestGateway::start().await;
    let pc = gw.office_pc("dev-desk", "pw").settings(|s| s.devices_only = true).await;
    let home = tempfile::tempdir().unwrap();
    let store = DeviceStore::at(home.path());

    let m = refusal(home_pc(&gw, "dev-desk", &store).await);
    let id = store.existing_id().expect("the key was made when the office PC asked");
    assert!(m.contains(&id) && m.contains("thinsvr devices --add") && m.contains("only known home PCs"), "{m}");

    // The real thinclient says the same, with the same ID, and fails.
    let ep = gw.entry_point();
    let mut cmd = procs::thinclient_connect(&ep, "dev-desk");
    cmd.env("XDG_CONFIG_HOME", home.path().join("xdg"));
    let (status, stderr) = Proc::spawn(cmd, Some("pw\n")).finish(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    let out = std::process::Command::new(procs::bin("thinclient"))
        .arg("device")
        .env("XDG_CONFIG_HOME", home.path().join("xdg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("device ID"), "{text}");
    let app_id = text.trim().rsplit(' ').next().unwrap().to_string();
    assert!(stderr.contains(&app_id) && stderr.contains("only known home PCs"), "{app_id}: {stderr}");

    // The owner adds it (the running service picks it up at the next connection).
    let listed = devices(&gw, pc.dir.path(), &["--add", &id.to_uppercase(), "--name", "laptop"]);
    assert!(listed.contains("only known home PCs may connect (1 listed)") && listed.contains(&id), "{listed}");
    let t = home_pc(&gw, "dev-desk", &store).await.expect("a known home PC");
    echoes(&t).await;
    assert_eq!(t.note, None);
    drop(t);

    // Another key is still a stranger; removing the first refuses it again.
    let other = tempfile::tempdir().unwrap();
    refusal(home_pc(&gw, "dev-desk", &DeviceStore::at(other.path())).await);
    devices(&gw, pc.dir.path(), &["--remove", &id]);
    refusal(home_pc(&gw, "dev-desk", &store).await);
    // Off: any home PC that knows the password.
    devices(&gw, pc.dir.path(), &["--require", "off"]);
    echoes(&home_pc(&gw, "dev-desk", &DeviceStore::at(other.path())).await.unwrap()).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_adds_the_next_home_pc_only() {
    let gw = TestGateway::start().await;
    let pc = gw.office_pc("pair-desk", "pw").await;
    let out = devices(&gw, pc.dir.path(), &["--require", "on", "--pair", "5"]);
    assert!(out.contains("pairing open"), "{out}");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (DeviceStore::at(a.path()), DeviceStore::at(b.path()));

    // A wrong password pairs nothing.
    let wrong = connect_as(&gw.link, "pair-desk", &Secret::new("nope"), &NoOtp, &second).await;
    assert!(matches!(wrong, Err(ClientError::Login(_))), "{:?}", wrong.map(|_| ()));

    let t = home_pc(&gw, "pair-desk", &first).await.expect("paired");
    let note = t.note.clone().expect("told it was added");
    let id = first.existing_id().unwrap();
    assert!(note.contains(&id) && note.contains("was added"), "{note}");
    echoes(&t).await;
    let m = refusal(home_pc(&gw, "pair-desk", &second).await);
    assert!(m.contains(&second.existing_id().unwrap()), "{m}");
    let out = devices(&gw, pc.dir.path(), &[]);
    assert!(out.contains(&id) && !out.contains("pairing open"), "{out}");
    echoes(&home_pc(&gw, "pair-desk", &first).await.unwrap()).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_maccheck_requires_known_home_pcs_and_the_mac_list_lets_one_in() {
    let dir = GateDir::new("");
    dir.write_policy("ENFORCE_MACCHECK 1\n");
    let gw = dir.start().await;
    let pc = gw.office_pc("mac-desk", "pw").await;
    wait_for("the office PC to hold the policy", Duration::from_secs(15), || {
        let on = pc.policy.get().enforce_maccheck;
        async move { on.then_some(()) }
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let store = DeviceStore::at(home.path());
    let m = refusal(home_pc(&gw, "mac-desk", &store).await);
    assert!(m.contains("ENFORCE_MACCHECK"), "{m}");

    let macs = thin_tunnel::wake::local_macs(&[]);
    let mac = macs.first().expect("this test needs a network adapter with a MAC address (/sys/class/net)");
    devices(&gw, pc.dir.path(), &["--add-mac", &mac.replace('-', ":")]);
    echoes(&home_pc(&gw, "mac-desk", &store).await.expect("its MAC is listed")).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_skips_the_check_reaches_nothing() {
    let gw = TestGateway::start().await;
    let (target, accepted) = thin_e2e::net::echo_server_counting().await;
    let _pc = gw.office_pc("skip-desk", "pw").target(target).settings(|s| s.devices_only = true).await;

    let pipe = thin_e2e::raw::logged_in(&gw.link, "skip-desk", "pw").await;
    let (opener, conn) = thin_tunnel::mux::client(tokio_util::compat::TokioAsyncReadCompatExt::compat(pipe));
    let _conn = tokio_util::task::AbortOnDropHandle::new(conn);
    // Straight to a forwarded connection, no check stream.
    let mut st = opener.open().await.unwrap();
    st.write_all(&[thin_tunnel::mux::KIND_TCP]).await.unwrap();
    let _ = st.write_all(b"let me in").await;
    let mut b = [0u8; 16];
    let end = tokio::time::timeout(Duration::from_secs(20), st.read(&mut b)).await.expect("closed in time");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    // A second try on the same tunnel fails too: it is closed.
    let again = tokio::time::timeout(Duration::from_secs(20), async {
        let mut st = opener.open().await?;
        st.write_all(&[thin_tunnel::mux::KIND_TCP]).await?;
        st.read(&mut b).await
    })
    .await
    .expect("answered in time");
    assert!(matches!(again, Ok(0) | Err(_)), "{again:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the local service was reached");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_inspection_refuses_a_home_pc_that_fails_the_rule_and_names_what_to_fix() {
    let dir = GateDir::new("");
    dir.write_policy("ENFORCE_INSPECTION 1\n");
    let gw = dir.start().await;
    let pc = gw.office_pc("insp-desk", "pw").await;
    let holds = |what: &'static str, f: fn(&thin_protocol::policy::Policy) -> bool| {
        let cell = pc.policy.clone();
        wait_for(what, Duration::from_secs(15), move || {
            let ok = f(&cell.get());
            async move { ok.then_some(()) }
        })
    };
    holds("the office PC to hold ENFORCE_INSPECTION", |p| p.enforce_inspection).await;
    let home = tempfile::tempdir().unwrap();
    let store = DeviceStore::at(home.path());

    // This home PC (Linux, as the test machine) is read for real and refused
    // under the usual rule, with what to do.
    let m = refusal(home_pc(&gw, "insp-desk", &store).await);
    assert!(m.contains("inspection refused this home PC") && m.contains("accepts only Windows PCs"), "{m}");

    // The admin lets other systems in and checks no update age: it passes.
    gw.dir.write_policy("ENFORCE_INSPECTION 1\nINSPECTION_ALLOW_OTHER_OS 1\nINSPECTION_UPDATE_DAYS 0\n");
    holds("the office PC to hold the looser rule", |p| p.inspection_allow_other_os).await;
    echoes(&home_pc(&gw, "insp-desk", &store).await.expect("passes the looser rule")).await;

    // Known home PCs and the inspection together: a known device that fails
    // the inspection is refused, and pairing adds nobody who fails it.
    gw.dir.write_policy("ENFORCE_INSPECTION 1\n");
    holds("the office PC to hold the strict rule again", |p| !p.inspection_allow_other_os).await;
    devices(&gw, pc.dir.path(), &["--require", "on", "--pair", "5"]);
    refusal(home_pc(&gw, "insp-desk", &store).await);
    let out = devices(&gw, pc.dir.path(), &[]);
    assert!(out.contains("pairing open") && !out.contains(&store.existing_id().unwrap()), "{out}");
    gw.shutdown().await;
}
