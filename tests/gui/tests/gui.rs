//! The windows against the real system: a gateway in-process, the office PC
//! registered through ThinServer's window and then running, and ThinClient's
//! window driven as a user would (egui_kittest: type the computer ID, click
//! Connect, type the password, click OK) through the real connector. The
//! viewer is a small script that sends a line through the local port and
//! keeps what comes back from the echo service on the office PC's side.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use thin_e2e::{echo_server, GateDir, TestGateway};
use thin_tunnel::settings::ConfigDir;
use thin_ui::gui::{egui, tr, trf, ClientWindow, History, PhaseKind, RealConnector, ServerWindow};
use thin_ui::strings::Key;

fn wait<S>(h: &mut Harness<'static, S>, what: &str, within: Duration, done: impl Fn(&S) -> bool) {
    let deadline = Instant::now() + within;
    while !done(h.state()) {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(2);
}

fn type_into<S>(h: &mut Harness<'static, S>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(label).type_text(text);
    h.run_steps(2);
}

fn click<S>(h: &mut Harness<'static, S>, label: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
}

fn shows<S>(h: &Harness<'static, S>, text: &str) -> bool {
    h.query_all_by_label(text).next().is_some()
}

fn client_window(link: thin_tunnel::link::Link, viewer: Option<String>) -> Harness<'static, ClientWindow> {
    let conn = RealConnector::new(link).with_viewer(viewer);
    let mut h = Harness::builder().with_size(egui::vec2(460.0, 480.0)).build_ui_state(
        |ui, w: &mut ClientWindow| w.ui(ui),
        ClientWindow::new(Arc::new(conn), History::in_memory(&[])),
    );
    h.run();
    h
}

/// Types the ID and the password and clicks OK; returns when OK was clicked.
fn connect(h: &mut Harness<'static, ClientWindow>, pcid: &str, password: &str) -> Instant {
    type_into(h, &tr(Key::THINCLIENT_PCID_LABEL), pcid);
    click(h, &tr(Key::BUTTON_CONNECT));
    type_into(h, &tr(Key::PASSWORD_PROMPT), password);
    let t = Instant::now();
    click(h, &tr(Key::BUTTON_OK));
    t
}

/// A viewer that sends one line through the tunnel and keeps the echo in `out`.
fn echo_viewer(dir: &Path, out: &Path) -> String {
    let script = dir.join("viewer.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\nset -e\nexec 3<>/dev/tcp/$1/$2\necho hello-through-the-tunnel >&3\nread -r line <&3\necho \"$line\" > {}\n",
            out.display()
        ),
    )
    .unwrap();
    format!("bash {} {{host}} {{port}}", script.display())
}

#[test]
fn register_in_the_server_window_then_connect_from_the_client_window() {
    thin_e2e::init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gw = rt.block_on(TestGateway::start());
    let link = gw.link.clone();
    let echo = rt.block_on(echo_server());

    // The office PC: no service answers on its admin port, so the window runs
    // the service inside itself and talks to it over that port, as it talks
    // to the installed one. Local port, suggested ID, password, register.
    let office = tempfile::tempdir().unwrap();
    let cfg = ConfigDir(office.path().to_path_buf());
    let control = thin_ui::gui::connect_or_embed(cfg.clone(), Some(link.clone()), 0).unwrap();
    let mut sw = Harness::builder().with_size(egui::vec2(480.0, 900.0)).build_ui_state(
        |ui, w: &mut ServerWindow| w.ui(ui),
        ServerWindow::with_names(Arc::new(control), "Gui.User", "office-host"),
    );
    sw.run();
    type_into(&mut sw, &tr(Key::THINSVR_SERVICE_PORT), &echo.port().to_string());
    click(&mut sw, &tr(Key::BUTTON_SAVE));
    wait(&mut sw, "the settings", Duration::from_secs(20), |w| !w.is_busy());
    assert_eq!(sw.state().error(), None);
    click(&mut sw, &tr(Key::THINSVR_USE_SUGGESTION));
    type_into(&mut sw, &tr(Key::PASSWORD_PROMPT), "pw-from-the-window");
    type_into(&mut sw, &tr(Key::PASSWORD_CONFIRM_PROMPT), "pw-from-the-window");
    click(&mut sw, &tr(Key::THINSVR_PCID_REGISTER));
    wait(&mut sw, "the registration", Duration::from_secs(20), |w| !w.is_busy());
    assert_eq!(sw.state().error(), None);
    assert!(shows(&sw, &trf(Key::THINSVR_REGISTERED, &[&"gui-user"])));
    assert!(gw.gateway.registry.is_registered("gui-user"));
    assert_eq!(cfg.settings().unwrap().target, format!("127.0.0.1:{}", echo.port()));
    // The service goes online with the new settings; the window shows it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !shows(&sw, &tr(Key::THINSVR_ONLINE)) {
        assert!(Instant::now() < deadline, "the window never showed the service online");
        sw.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(shows(&sw, &trf(Key::THINSVR_NUM_CLIENTS, &[&0])));

    // Home: the client window reaches it and starts the viewer.
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("echoed.txt");
    let mut h = client_window(link.clone(), Some(echo_viewer(home.path(), &out)));
    let clicked = connect(&mut h, "GUI-User", "pw-from-the-window");
    wait(&mut h, "the viewer", Duration::from_secs(20), |w| w.phase() != PhaseKind::Working);
    let to_viewer = clicked.elapsed();
    eprintln!("gui: OK clicked -> viewer started: {} ms (debug build)", to_viewer.as_millis());
    assert!(h.state().error().is_none(), "{:?}", h.state().error());
    // The viewer may already be done; either way it ran through the tunnel.
    wait(&mut h, "the viewer to exit", Duration::from_secs(20), |w| w.phase() == PhaseKind::Idle);
    assert!(shows(&h, &tr(Key::THINCLIENT_VIEWER_EXITED)), "{:?}", h.state().error());
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "hello-through-the-tunnel");
    assert_eq!(h.state().history().ids(), ["GUI-User"]);
    assert!(to_viewer < Duration::from_secs(10), "{to_viewer:?}");
    drop(sw);
    rt.block_on(gw.shutdown());
}

#[test]
fn the_client_window_says_what_went_wrong_in_plain_words() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gw = rt.block_on(TestGateway::start());
    let link = gw.link.clone();
    let pc = rt.block_on(gw.office_pc("desk-err", "right-pw").start());
    // Registered but not running: offline.
    let _idle = rt.block_on(gw.register("sleepy", "x"));

    let cases: Vec<(thin_tunnel::link::Link, &str, &str, String)> = vec![
        (link.clone(), "desk-err", "wrong-pw", tr(Key::ERR_WRONG_PASSWORD)),
        (link.clone(), "sleepy", "x", trf(Key::ERR_SERVER_OFFLINE, &[&"sleepy"])),
        (link.clone(), "nobody", "x", trf(Key::ERR_UNKNOWN_PCID, &[&"nobody"])),
        // Another company's CA: the gateway's certificate is not trusted.
        (GateDir::new("").link(gw.addr), "desk-err", "right-pw", tr(Key::ERR_CERT_UNTRUSTED)),
    ];
    for (link, pcid, pw, expected) in cases {
        let mut h = client_window(link, Some("true".into()));
        connect(&mut h, pcid, pw);
        wait(&mut h, &expected, Duration::from_secs(20), |w| w.error().is_some());
        assert_eq!(h.state().error(), Some(expected.as_str()));
        assert!(shows(&h, &expected));
    }

    // A gateway that is gone: unreachable.
    let addr = gw.addr;
    pc.stop.cancel();
    let _ = rt.block_on(pc.task);
    let gate = rt.block_on(gw.shutdown());
    let mut h = client_window(gate.link(addr), Some("true".into()));
    connect(&mut h, "desk-err", "right-pw");
    wait(&mut h, "unreachable", Duration::from_secs(20), |w| w.error().is_some());
    assert_eq!(h.state().error(), Some(trf(Key::ERR_GATEWAY_UNREACHABLE, &[&addr]).as_str()));
}
