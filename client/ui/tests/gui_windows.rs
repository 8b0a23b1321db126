//! Both windows driven as a user would (egui_kittest, headless): typing into
//! fields found by their labels and clicking buttons found by their texts,
//! with stand-in backends. Every text is looked up in the string tables, so
//! the tests hold in either language. The harness also fails on any text
//! field without a label and on any character without a glyph.

use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use thin_ui::gui::stand_in::{MemoryControl, ScriptedConnector};
use thin_ui::gui::{egui, tr, trf, ClientWindow, History, Online, PhaseKind, ServerStatus, ServerWindow};
use thin_ui::strings::Key;

fn client(conn: &ScriptedConnector, history: History) -> Harness<'static, ClientWindow> {
    let mut h = Harness::builder()
        .with_size(egui::vec2(460.0, 480.0))
        .build_ui_state(|ui, w: &mut ClientWindow| w.ui(ui), ClientWindow::new(Arc::new(conn.clone()), history));
    h.run();
    h
}

/// Steps the window until `done` holds (the worker runs on its own thread).
fn wait<S>(h: &mut Harness<'static, S>, what: &str, done: impl Fn(&S) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(h.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(2);
}

fn type_into<S>(h: &mut Harness<'static, S>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
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

/// Types the computer ID, clicks Connect, types the password, clicks OK.
fn connect(h: &mut Harness<'static, ClientWindow>, pcid: &str, password: &str) {
    type_into(h, &tr(Key::THINCLIENT_PCID_LABEL), pcid);
    click(h, &tr(Key::BUTTON_CONNECT));
    assert_eq!(h.state().phase(), PhaseKind::Password, "Connect asks for the password");
    type_into(h, &tr(Key::PASSWORD_PROMPT), password);
    click(h, &tr(Key::BUTTON_OK));
}

#[test]
fn client_connects_with_id_and_password_starts_the_viewer_and_disconnects() {
    let conn = ScriptedConnector::default();
    let mut h = client(&conn, History::in_memory(&[]));
    assert!(shows(&h, &tr(Key::APP_WELCOME)), "the brand's patched welcome text");
    connect(&mut h, "Desk-01", "secret");
    wait(&mut h, "the viewer", |w| w.phase() == PhaseKind::Running);
    assert_eq!(*conn.viewers.lock().unwrap(), ["desk-01"]);
    assert!(shows(&h, &tr(Key::THINCLIENT_VIEWER_STARTED)));
    assert!(shows(&h, &trf(Key::THINCLIENT_CONNECTED, &[&"Desk-01"])));
    assert_eq!(h.state().history().ids(), ["Desk-01"], "a successful ID is remembered");
    click(&mut h, &tr(Key::BUTTON_DISCONNECT));
    wait(&mut h, "the end of the session", |w| w.phase() == PhaseKind::Idle);
    assert!(shows(&h, &tr(Key::THINCLIENT_VIEWER_EXITED)));
    assert_eq!(h.state().error(), None);
}

#[test]
fn a_wrong_password_is_said_plainly_and_asked_again() {
    let conn = ScriptedConnector::default();
    let mut h = client(&conn, History::in_memory(&[]));
    connect(&mut h, "desk-01", "wrong");
    wait(&mut h, "the refusal", |w| w.error().is_some());
    assert_eq!(h.state().error(), Some(tr(Key::ERR_WRONG_PASSWORD).as_str()));
    assert!(shows(&h, &tr(Key::ERR_WRONG_PASSWORD)));
    assert_eq!(h.state().phase(), PhaseKind::Password, "the password is asked again");
    assert!(h.state().history().ids().is_empty(), "a failed ID is not remembered");
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "secret");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the viewer", |w| w.phase() == PhaseKind::Running);
}

#[test]
fn offline_unknown_and_malformed_ids_are_said_plainly() {
    let conn = ScriptedConnector {
        offline: vec!["sleepy".into()],
        known: vec!["sleepy".into(), "desk-01".into()],
        ..Default::default()
    };
    let mut h = client(&conn, History::in_memory(&[]));
    connect(&mut h, "sleepy", "secret");
    wait(&mut h, "the refusal", |w| w.error().is_some());
    assert!(shows(&h, &trf(Key::ERR_SERVER_OFFLINE, &[&"sleepy"])));
    assert_eq!(h.state().phase(), PhaseKind::Idle);

    h.get_by_label(&tr(Key::THINCLIENT_PCID_LABEL)).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(&tr(Key::THINCLIENT_PCID_LABEL)).type_text("nobody");
    h.run_steps(2);
    click(&mut h, &tr(Key::BUTTON_CONNECT));
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "secret");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the refusal", |w| w.error().is_some_and(|e| e.contains("nobody")));
    assert!(shows(&h, &trf(Key::ERR_UNKNOWN_PCID, &[&"nobody"])));

    let mut h = client(&conn, History::in_memory(&[]));
    type_into(&mut h, &tr(Key::THINCLIENT_PCID_LABEL), "desk 01!");
    click(&mut h, &tr(Key::BUTTON_CONNECT));
    assert_eq!(h.state().phase(), PhaseKind::Idle, "no password prompt for a malformed ID");
    assert!(shows(&h, &tr(Key::ERR_PCID_INVALID)));
    assert!(conn.viewers.lock().unwrap().is_empty());
}

#[test]
fn the_one_time_password_is_asked_when_the_office_pc_wants_it() {
    let conn = ScriptedConnector { otp: Some("123456".into()), ..Default::default() };
    let mut h = client(&conn, History::in_memory(&[]));
    connect(&mut h, "desk-01", "secret");
    wait(&mut h, "the OTP prompt", |w| w.phase() == PhaseKind::Otp);
    assert!(shows(&h, &trf(Key::OTP_SENT, &[&"a***@example.org"])));
    type_into(&mut h, &tr(Key::OTP_PROMPT), "000000");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the OTP prompt again", |w| w.phase() == PhaseKind::Otp);
    assert!(shows(&h, &tr(Key::ERR_OTP_WRONG)), "a wrong code is said");
    assert!(shows(&h, &trf(Key::OTP_TRIES_LEFT, &[&2])));
    type_into(&mut h, &tr(Key::OTP_PROMPT), "123456");
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    wait(&mut h, "the viewer", |w| w.phase() == PhaseKind::Running);
    assert_eq!(*conn.viewers.lock().unwrap(), ["desk-01"]);
}

#[test]
fn cancelling_the_one_time_password_or_the_connection_goes_back() {
    let conn = ScriptedConnector { otp: Some("123456".into()), ..Default::default() };
    let mut h = client(&conn, History::in_memory(&[]));
    connect(&mut h, "desk-01", "secret");
    wait(&mut h, "the OTP prompt", |w| w.phase() == PhaseKind::Otp);
    click(&mut h, &tr(Key::BUTTON_CANCEL));
    wait(&mut h, "idle", |w| w.phase() == PhaseKind::Idle);
    assert!(shows(&h, &tr(Key::THINCLIENT_CANCELLED)));

    let slow = ScriptedConnector { delay: Duration::from_millis(300), ..Default::default() };
    let mut h = client(&slow, History::in_memory(&[]));
    connect(&mut h, "desk-01", "secret");
    assert_eq!(h.state().phase(), PhaseKind::Working);
    assert!(shows(&h, &trf(Key::THINCLIENT_CONNECTING, &[&"desk-01"])), "progress is shown");
    click(&mut h, &tr(Key::BUTTON_CANCEL));
    wait(&mut h, "idle", |w| w.phase() == PhaseKind::Idle);
    assert!(slow.viewers.lock().unwrap().is_empty());
}

/// Opens the wake section, types both IDs and clicks Wake.
fn ask_wake(h: &mut Harness<'static, ClientWindow>, target: &str, via: &str) {
    if h.query_by_label(&tr(Key::WAKE_TARGET_LABEL)).is_none() {
        click(h, &tr(Key::WAKE_SECTION));
    }
    for (label, text) in [(tr(Key::WAKE_TARGET_LABEL), target), (tr(Key::WAKE_VIA_LABEL), via)] {
        h.get_by_label(&label).click();
        h.run_steps(2);
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        h.get_by_label(&label).type_text(text);
        h.run_steps(2);
    }
    click(h, &tr(Key::WAKE_BUTTON));
}

#[test]
fn the_window_wakes_a_pc_through_another_with_its_password_and_otp() {
    let conn =
        ScriptedConnector { otp: Some("123456".into()), wake_group: vec!["desk-02".into()], ..Default::default() };
    let mut h = client(&conn, History::in_memory(&[]));
    assert!(h.query_by_label(&tr(Key::WAKE_TARGET_LABEL)).is_none(), "the section starts closed");
    // A malformed ID is said before anything is asked.
    ask_wake(&mut h, "desk 02", "desk-01");
    assert_eq!(h.state().phase(), PhaseKind::Idle);
    assert!(shows(&h, &tr(Key::ERR_PCID_INVALID)));
    // The via PC's password, then its one-time password, then the result.
    ask_wake(&mut h, "Desk-02", "desk-01");
    assert_eq!(h.state().phase(), PhaseKind::Password, "Wake asks for the password of the PC that sends");
    assert!(shows(&h, &format!("{}: {}", tr(Key::THINCLIENT_PCID_LABEL), "desk-01")));
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "wrong");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the password again", |w| w.error().is_some());
    assert_eq!(h.state().phase(), PhaseKind::Password);
    assert_eq!(h.state().error(), Some(tr(Key::ERR_WRONG_PASSWORD).as_str()));
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "secret");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the OTP prompt", |w| w.phase() == PhaseKind::Otp);
    type_into(&mut h, &tr(Key::OTP_PROMPT), "123456");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the result", |w| w.phase() == PhaseKind::Idle);
    let sent = trf(Key::WAKE_SENT, &[&"desk-01", &"Desk-02", &1]);
    assert_eq!(h.state().status(), Some(sent.as_str()));
    assert_eq!(h.state().error(), None);
    assert!(shows(&h, &sent));
    assert_eq!(*conn.woken.lock().unwrap(), ["desk-02 via desk-01"]);
    assert!(conn.viewers.lock().unwrap().is_empty(), "no viewer for a wake");
    assert!(h.state().history().ids().is_empty(), "a wake is not a recent connection");

    // Outside the group: the refusal is shown, nothing woken.
    ask_wake(&mut h, "desk-09", "desk-01");
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "secret");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the OTP prompt", |w| w.phase() == PhaseKind::Otp);
    type_into(&mut h, &tr(Key::OTP_PROMPT), "123456");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the refusal", |w| w.error().is_some());
    let refused = trf(Key::WAKE_REFUSED, &[&"\"desk-01\" may not wake \"desk-09\""]);
    assert_eq!(h.state().error(), Some(refused.as_str()));
    assert!(shows(&h, &refused));
    assert_eq!(conn.woken.lock().unwrap().len(), 1);
}

#[test]
fn recent_ids_are_kept_across_windows_and_offered() {
    let dir = tempfile::tempdir().unwrap();
    let conn = ScriptedConnector { hold: false, ..Default::default() };
    for id in ["lab-pc", "desk-01"] {
        let mut h = client(&conn, History::load(dir.path()));
        h.get_by_label(&tr(Key::THINCLIENT_PCID_LABEL)).click();
        h.run_steps(2);
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        h.get_by_label(&tr(Key::THINCLIENT_PCID_LABEL)).type_text(id);
        h.run_steps(2);
        click(&mut h, &tr(Key::BUTTON_CONNECT));
        type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "secret");
        click(&mut h, &tr(Key::BUTTON_OK));
        wait(&mut h, "the session to end", |w| {
            w.phase() == PhaseKind::Idle && w.history().ids().first().map(String::as_str) == Some(id)
        });
    }
    let mut h = client(&conn, History::load(dir.path()));
    assert!(shows(&h, &tr(Key::THINCLIENT_HISTORY)));
    assert_eq!(
        h.get_by_label(&tr(Key::THINCLIENT_PCID_LABEL)).value().as_deref(),
        Some("desk-01"),
        "the newest is filled in"
    );
    click(&mut h, "lab-pc");
    assert_eq!(
        h.get_by_label(&tr(Key::THINCLIENT_PCID_LABEL)).value().as_deref(),
        Some("lab-pc"),
        "a recent ID is one click away"
    );
    click(&mut h, &tr(Key::BUTTON_CONNECT));
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "secret");
    click(&mut h, &tr(Key::BUTTON_OK));
    wait(&mut h, "the session", |w| w.phase() == PhaseKind::Idle && w.history().ids()[0] == "lab-pc");
    assert_eq!(History::load(dir.path()).ids(), ["lab-pc", "desk-01"]);
}

fn server(control: Arc<MemoryControl>) -> Harness<'static, ServerWindow> {
    let mut h = Harness::builder().with_size(egui::vec2(480.0, 900.0)).build_ui_state(
        |ui, w: &mut ServerWindow| w.ui(ui),
        ServerWindow::with_names(control, "Taro.Yamada", "DESK-7"),
    );
    h.run();
    h
}

fn wait_idle(h: &mut Harness<'static, ServerWindow>) {
    wait(h, "the action", |w| !w.is_busy());
}

#[test]
fn server_suggests_an_id_and_registers_it_with_a_password() {
    let control = Arc::new(MemoryControl::default());
    let mut h = server(control.clone());
    assert!(shows(&h, &tr(Key::THINSVR_NOT_REGISTERED)));
    assert!(shows(&h, &trf(Key::THINSVR_PCID_SUGGEST, &[&"taro-yamada"])));
    click(&mut h, &tr(Key::THINSVR_USE_SUGGESTION));
    assert_eq!(h.get_by_label(&tr(Key::THINSVR_PCID_LABEL)).value().as_deref(), Some("taro-yamada"));

    click(&mut h, &tr(Key::THINSVR_PCID_REGISTER));
    assert!(shows(&h, &tr(Key::ERR_PASSWORD_EMPTY)), "a first registration needs the password");
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "pw-1");
    type_into(&mut h, &tr(Key::PASSWORD_CONFIRM_PROMPT), "pw-2");
    click(&mut h, &tr(Key::THINSVR_PCID_REGISTER));
    assert!(shows(&h, &tr(Key::ERR_PASSWORD_MISMATCH)));
    assert!(control.calls.lock().unwrap().is_empty(), "nothing changed on bad input");

    let retype = |h: &mut Harness<'static, ServerWindow>, label: Key, text: &str| {
        h.get_by_label(&tr(label)).click();
        h.run_steps(2);
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        h.get_by_label(&tr(label)).type_text(text);
        h.run_steps(2);
    };
    retype(&mut h, Key::PASSWORD_CONFIRM_PROMPT, "pw-1");
    click(&mut h, &tr(Key::THINSVR_PCID_REGISTER));
    assert!(shows(&h, &trf(Key::ERR_PASSWORD_TOO_SHORT, &[&"10", &"4"])), "a short password is refused");
    for weak in ["taro-yamada-2024", "password1234"] {
        retype(&mut h, Key::PASSWORD_PROMPT, weak);
        retype(&mut h, Key::PASSWORD_CONFIRM_PROMPT, weak);
        click(&mut h, &tr(Key::THINSVR_PCID_REGISTER));
        let said = h.state().error().unwrap_or_default().to_string();
        let template = trf(Key::ERR_PASSWORD_GUESSABLE, &[&"\u{0}"]);
        let (head, tail) = template.split_once('\u{0}').unwrap();
        assert!(said.starts_with(head) && said.ends_with(tail) && shows(&h, &said), "{weak}: {said}");
    }
    assert!(control.calls.lock().unwrap().is_empty(), "nothing changed on a weak password");
    retype(&mut h, Key::PASSWORD_PROMPT, "window copper lantern");
    retype(&mut h, Key::PASSWORD_CONFIRM_PROMPT, "window copper lantern");
    click(&mut h, &tr(Key::THINSVR_PCID_REGISTER));
    wait_idle(&mut h);
    assert_eq!(*control.calls.lock().unwrap(), ["register taro-yamada with password"]);
    assert!(shows(&h, &trf(Key::THINSVR_REGISTERED, &[&"taro-yamada"])));
    assert!(h.query_by_label(&tr(Key::THINSVR_PCID_CHANGE)).is_some(), "registered: the button renames");
    assert_eq!(
        h.get_by_label(&tr(Key::PASSWORD_PROMPT)).value().as_deref(),
        Some(""),
        "the password fields are cleared"
    );
}

#[test]
fn server_validates_the_id_and_the_port_and_moves_past_a_taken_suggestion() {
    let control = Arc::new(MemoryControl { taken: vec!["taro-yamada".into()], ..Default::default() });
    let mut h = server(control.clone());
    type_into(&mut h, &tr(Key::THINSVR_PCID_LABEL), "taro yamada");
    assert!(shows(&h, &tr(Key::ERR_PCID_INVALID)), "said while typing");
    click(&mut h, &tr(Key::THINSVR_USE_SUGGESTION));
    assert!(!shows(&h, &tr(Key::ERR_PCID_INVALID)));
    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "window copper lantern");
    type_into(&mut h, &tr(Key::PASSWORD_CONFIRM_PROMPT), "window copper lantern");
    click(&mut h, &tr(Key::THINSVR_PCID_REGISTER));
    wait_idle(&mut h);
    assert!(shows(&h, &trf(Key::ERR_PCID_TAKEN, &[&"taro-yamada"])));
    assert_eq!(h.state().suggestion(), Some("desk-7"), "the next suggestion");
    assert!(shows(&h, &trf(Key::THINSVR_PCID_SUGGEST, &[&"desk-7"])));

    let port = tr(Key::THINSVR_SERVICE_PORT);
    assert_eq!(h.get_by_label(&port).value().as_deref(), Some("3389"), "the default port");
    h.get_by_label(&port).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(&port).type_text("70000");
    h.run_steps(2);
    assert!(shows(&h, &tr(Key::ERR_PORT_INVALID)));
    click(&mut h, &tr(Key::BUTTON_SAVE));
    assert!(!control.calls.lock().unwrap().iter().any(|c| c.starts_with("set_port")), "a bad port is not saved");
    h.get_by_label(&port).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(&port).type_text("13389");
    h.run_steps(2);
    click(&mut h, &tr(Key::BUTTON_SAVE));
    wait_idle(&mut h);
    assert!(control.calls.lock().unwrap().contains(&"set_port 13389".to_string()));
    assert!(shows(&h, &tr(Key::THINSVR_SETTINGS_SAVED)));
}

#[test]
fn server_turns_on_one_time_passwords_with_a_valid_address() {
    let control = Arc::new(MemoryControl::online("desk-01", 0));
    let mut h = server(control.clone());
    assert!(h.query_by_label(&tr(Key::THINSVR_OTP_EMAIL)).is_none(), "no address field while off");
    click(&mut h, &tr(Key::THINSVR_OTP_ENABLE));
    type_into(&mut h, &tr(Key::THINSVR_OTP_EMAIL), "not an address");
    click(&mut h, &tr(Key::BUTTON_SAVE));
    assert!(shows(&h, &tr(Key::ERR_EMAIL_INVALID)));
    assert!(control.calls.lock().unwrap().is_empty());
    h.get_by_label(&tr(Key::THINSVR_OTP_EMAIL)).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(&tr(Key::THINSVR_OTP_EMAIL)).type_text("alice@example.org");
    h.run_steps(2);
    click(&mut h, &tr(Key::BUTTON_SAVE));
    wait_idle(&mut h);
    assert_eq!(control.config.lock().unwrap().otp_email.as_deref(), Some("alice@example.org"));
}

#[test]
fn server_chooses_the_desktop_home_pcs_see() {
    let control = Arc::new(MemoryControl::online("desk-01", 0));
    let mut h = server(control.clone());
    h.run_steps(2);
    assert!(shows(&h, &tr(Key::THINSVR_DESKTOP_LABEL)));
    assert!(!shows(&h, &tr(Key::THINSVR_DESKTOP_UNAVAILABLE)), "this PC has a built-in desktop");
    click(&mut h, &tr(Key::THINSVR_DESKTOP_BUILTIN));
    click(&mut h, &tr(Key::BUTTON_SAVE));
    wait_idle(&mut h);
    assert!(control.calls.lock().unwrap().contains(&"set_desktop builtin".to_string()));
    assert_eq!(control.config.lock().unwrap().desktop, thin_ui::gui::DesktopMode::Builtin);
    click(&mut h, &tr(Key::THINSVR_DESKTOP_RDP));
    click(&mut h, &tr(Key::BUTTON_SAVE));
    wait_idle(&mut h);
    assert_eq!(control.config.lock().unwrap().desktop, thin_ui::gui::DesktopMode::Rdp);

    // A PC without a built-in desktop says so.
    let control = Arc::new(MemoryControl::online("desk-02", 0));
    control.config.lock().unwrap().builtin_desktop = false;
    let mut h = server(control);
    h.run_steps(2);
    assert!(shows(&h, &tr(Key::THINSVR_DESKTOP_UNAVAILABLE)));
}

#[test]
fn server_shows_the_companys_policy_and_keeps_otp_on_under_enforce_otp() {
    let control = Arc::new(MemoryControl::online("desk-01", 0));
    let policy = thin_protocol::policy::Policy {
        enforce_otp: true,
        idle_timeout_s: Some(1800),
        server_message: Some("Log off at 6 pm".into()),
        ..Default::default()
    };
    *control.status.lock().unwrap() = ServerStatus { online: Online::Online, clients: Some(0), policy };
    let mut h = server(control.clone());
    h.run_steps(2);
    assert!(shows(&h, &trf(Key::THINSVR_POLICY_MESSAGE, &[&"Log off at 6 pm"])));
    assert!(shows(&h, &trf(Key::THINSVR_POLICY_FIXED, &[&"ENFORCE_OTP, IDLE_TIMEOUT 1800 s"])));
    // The box is ticked and cannot be cleared: the address field stays.
    click(&mut h, &tr(Key::THINSVR_OTP_ENABLE));
    h.run_steps(2);
    assert!(h.query_by_label(&tr(Key::THINSVR_OTP_EMAIL)).is_some(), "ENFORCE_OTP keeps one-time passwords on");
}

#[test]
fn server_shows_the_live_state_and_renames_keeping_the_password() {
    let control = Arc::new(MemoryControl::online("desk-01", 2));
    let mut h = server(control.clone());
    assert!(shows(&h, &trf(Key::THINSVR_REGISTERED, &[&"desk-01"])));
    assert!(shows(&h, &tr(Key::THINSVR_ONLINE)));
    assert!(shows(&h, &trf(Key::THINSVR_NUM_CLIENTS, &[&2])));
    *control.status.lock().unwrap() =
        ServerStatus { online: Online::Offline("gateway gone".into()), clients: Some(0), policy: Default::default() };
    h.run_steps(2);
    assert!(shows(&h, &trf(Key::THINSVR_OFFLINE, &[&"gateway gone"])), "the state follows without a click");
    assert!(shows(&h, &trf(Key::THINSVR_NUM_CLIENTS, &[&0])));

    h.get_by_label(&tr(Key::THINSVR_PCID_LABEL)).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(&tr(Key::THINSVR_PCID_LABEL)).type_text("desk-02");
    h.run_steps(2);
    click(&mut h, &tr(Key::THINSVR_PCID_CHANGE));
    wait_idle(&mut h);
    assert_eq!(*control.calls.lock().unwrap(), ["register desk-02 keeping password"]);
    assert!(shows(&h, &trf(Key::THINSVR_REGISTERED, &[&"desk-02"])));

    type_into(&mut h, &tr(Key::PASSWORD_PROMPT), "new tram violet ledger");
    type_into(&mut h, &tr(Key::PASSWORD_CONFIRM_PROMPT), "new tram violet ledger");
    click(&mut h, &tr(Key::THINSVR_PASSWORD_SET));
    wait_idle(&mut h);
    assert!(shows(&h, &tr(Key::THINSVR_PASSWORD_CHANGED)));
}
