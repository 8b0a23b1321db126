//! Which desktop an office PC serves (`desktop` in `thinsvr.toml`), as the
//! home PC asks it through the tunnel, and the ServerMask64 bit of the
//! built-in desktop, also as the window sets it over the admin port. The
//! screen is a stand-in here; the real X11 screen and
//! the real viewer are in `tests/gui/tests/desktop.rs`.

use std::sync::Arc;
use std::time::Duration;

use thin_e2e::TestGateway;
use thin_tunnel::admin_rpc::{AdminClient, AdminReply, AdminRequest, AdminSecret, AdminStatus};
use thin_tunnel::desktop::screen::{Input, Pixels, Rect, Screen, ScreenError};
use thin_tunnel::desktop::{Desktop, DesktopInfo, DesktopMode};
use thin_tunnel::server_agent::{ServeOptions, ServerState};
use thin_tunnel::service::ServiceOptions;
use thin_tunnel::settings::ConfigDir;
use tokio_util::sync::CancellationToken;

/// A grey 64x64 screen that never changes.
struct Still;
impl Screen for Still {
    fn size(&self) -> (u16, u16) {
        (64, 64)
    }
    fn grab_all(&mut self) -> Result<Pixels, ScreenError> {
        Ok(Pixels { rect: Rect { x: 0, y: 0, width: 64, height: 64 }, stride: 256, data: vec![0x80; 64 * 64 * 4] })
    }
    fn changes(&mut self, wait: Duration) -> Result<Vec<Pixels>, ScreenError> {
        std::thread::sleep(wait);
        Ok(Vec::new())
    }
    fn input(&mut self, _: Input) -> Result<(), ScreenError> {
        Ok(())
    }
    fn clipboard_text(&mut self) -> Result<Option<String>, ScreenError> {
        Ok(None)
    }
    fn set_clipboard_text(&mut self, _: &str) -> Result<(), ScreenError> {
        Err(ScreenError::Io("the stand-in screen has no clipboard".into()))
    }
    fn clipboard_changed(&mut self) -> Result<bool, ScreenError> {
        Ok(false)
    }
}

/// A port on loopback where nothing listens (now).
fn silent_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn mask(body: &str) -> u64 {
    body.lines().find_map(|l| l.strip_prefix("ServerMask64[0] ")).unwrap().parse().unwrap()
}

/// Runs office PC `pc` with the stand-in built-in desktop and `target` as its
/// RDP target until the returned token is cancelled; returns once it is online.
async fn online_with_builtin_desktop(
    gw: &TestGateway,
    pc: &thin_e2e::RegisteredPc,
    target: std::net::SocketAddr,
) -> CancellationToken {
    let (tx, mut state) = tokio::sync::watch::channel(ServerState::Connecting);
    let desktop = Desktop::with_screen(Arc::new(|| Ok(Box::new(Still) as Box<dyn Screen>)));
    let opts = ServeOptions { target: Some(target.to_string()), desktop: Some(desktop), ..Default::default() };
    let stop = CancellationToken::new();
    tokio::spawn(thin_tunnel::server_agent::run_with(
        gw.link.clone(),
        ConfigDir(pc.dir.path().to_path_buf()),
        opts,
        stop.clone(),
        tx,
    ));
    tokio::time::timeout(Duration::from_secs(20), state.wait_for(|s| matches!(s, ServerState::Online { .. })))
        .await
        .expect("online in time")
        .unwrap();
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_serves_the_builtin_desktop_only_while_nothing_answers_at_the_target() {
    let gw = TestGateway::start().await;
    let pc = gw.register("urdp-desk", "pw").await;
    let target = silent_port();
    let stop = online_with_builtin_desktop(&gw, &pc, target).await;
    let (_, stat) = gw.get("/thinstat/").await;
    assert_eq!(mask(&stat) & 1, 1, "nothing at the target: ServerMask64 bit 1 is set: {stat}");

    // Nothing answers at the target: the built-in desktop, with its certificate's hash.
    let t = gw.connect("urdp-desk", "pw").await;
    let info = t.desktop().await.unwrap();
    let DesktopInfo::Builtin { sha256 } = &info else { panic!("{info:?}") };
    assert_eq!(sha256.len(), 64);
    assert!(sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    // The one-time password comes from this tunnel's login: another login has another.
    let again = gw.connect("urdp-desk", "pw").await;
    assert_ne!(t.desktop_password().expose(), again.desktop_password().expose());

    // An RDP host starts answering: the same office PC now hands out the RDP host.
    let host = tokio::net::TcpListener::bind(target).await.unwrap();
    assert_eq!(t.desktop().await.unwrap(), DesktopInfo::Rdp);
    // `builtin` serves the built-in desktop even so; `rdp` never does (read at each tunnel).
    pc.edit_settings(|s| s.desktop = DesktopMode::Builtin);
    let t = gw.connect("urdp-desk", "pw").await;
    assert!(matches!(t.desktop().await.unwrap(), DesktopInfo::Builtin { .. }));
    drop(host);
    pc.edit_settings(|s| s.desktop = DesktopMode::Rdp);
    let t = gw.connect("urdp-desk", "pw").await;
    assert_eq!(t.desktop().await.unwrap(), DesktopInfo::Rdp);
    stop.cancel();
}

/// In `auto`, with a built-in desktop to fall back on and an RDP host
/// answering, each forwarded connection connects to the host once: the
/// connect that finds the host is the connection (no probe before it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_connects_to_the_rdp_host_once_per_forwarded_connection() {
    use std::sync::atomic::Ordering;
    let gw = TestGateway::start().await;
    let pc = gw.register("urdp-once", "pw").await;
    let (target, accepted) = thin_e2e::net::echo_server_counting().await;
    let stop = online_with_builtin_desktop(&gw, &pc, target).await;
    let (_, stat) = gw.get("/thinstat/").await;
    assert_eq!(mask(&stat) & 1, 0, "an RDP host answers: ServerMask64 bit 1 is clear: {stat}");

    let t = gw.connect("urdp-once", "pw").await;
    // While a tunnel is open the office PC does not re-check its desktop, so
    // every connection the host accepts from here on is a forwarded one.
    let before = accepted.load(Ordering::SeqCst);
    for seed in 0..5 {
        thin_e2e::net::assert_tunnel_echo(&t, 10_000, seed).await;
    }
    // The host accepts in order, so a probe before a connection would have
    // been accepted before that connection's echo came back.
    assert_eq!(accepted.load(Ordering::SeqCst) - before, 5, "one connect to the RDP host per forwarded connection");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_office_pc_without_a_builtin_desktop_says_rdp() {
    let gw = TestGateway::start().await;
    // The usual in-process office PC has none (as thinsvr without a display).
    let _pc = gw.office_pc("plain-desk", "pw").settings(|s| s.desktop = DesktopMode::Builtin).await;
    let t = gw.connect("plain-desk", "pw").await;
    assert_eq!(t.desktop().await.unwrap(), DesktopInfo::Rdp);
    let (_, stat) = gw.get("/thinstat/").await;
    assert_eq!(mask(&stat) & 1, 0, "{stat}");
}

async fn admin(addr: std::net::SocketAddr, secret: &std::path::Path, req: AdminRequest) -> AdminStatus {
    let s = AdminSecret::load(secret).unwrap();
    match AdminClient::connect(addr, &s).await.unwrap().call(req).await.unwrap() {
        AdminReply::Status(s) => s,
        AdminReply::Error { error } => panic!("{error:?}"),
    }
}

/// Waits until `/thinstat/` shows ServerMask64 bit 1 as `on`.
async fn wait_bit(gw: &TestGateway, on: bool, why: &str) {
    thin_e2e::wait_for(why, Duration::from_secs(20), || async {
        let (_, stat) = gw.get("/thinstat/").await;
        // Only an office PC that is online has the line.
        let m = stat.lines().find_map(|l| l.strip_prefix("ServerMask64[0] "))?.parse::<u64>().ok()?;
        (((m & 1) == 1) == on).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_port_chooses_the_desktop_and_the_mask_follows_it_and_the_rdp_host() {
    let gw = TestGateway::start().await;
    let pc = gw.register("urdp-admin", "pw").await;
    // An RDP host answers at the target for now.
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = host.local_addr().unwrap();
    pc.edit_settings(|s| s.target = target.to_string());
    let desktop = Desktop::with_screen(Arc::new(|| Ok(Box::new(Still) as Box<dyn Screen>)));
    let serve = ServeOptions {
        desktop: Some(desktop),
        desktop_recheck: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let (ready, addr) = tokio::sync::oneshot::channel();
    let stop = CancellationToken::new();
    let dir = ConfigDir(pc.dir.path().to_path_buf());
    let opts = ServiceOptions { admin_port: 0, serve };
    let _svc = tokio::spawn(thin_tunnel::service::run(Some(gw.link.clone()), dir, opts, stop.clone(), Some(ready)));
    let addr = addr.await.unwrap();
    let secret = pc.dir.path().join(thin_tunnel::service::ADMIN_SECRET_FILE);

    let s = admin(addr, &secret, AdminRequest::Status).await;
    assert_eq!((s.desktop, s.builtin_desktop), (DesktopMode::Auto, true));
    wait_bit(&gw, false, "auto with an RDP host: bit 1 clear").await;

    // The window's choice goes to thinsvr.toml and the gateway sees it.
    let s = admin(addr, &secret, AdminRequest::SetDesktop { desktop: DesktopMode::Builtin }).await;
    assert_eq!(s.desktop, DesktopMode::Builtin);
    let toml = std::fs::read_to_string(pc.dir.path().join("thinsvr.toml")).unwrap();
    assert!(toml.contains("desktop = \"builtin\""), "{toml}");
    wait_bit(&gw, true, "builtin: bit 1 set").await;
    let t = gw.connect("urdp-admin", "pw").await;
    assert!(matches!(t.desktop().await.unwrap(), DesktopInfo::Builtin { .. }));
    drop(t);

    admin(addr, &secret, AdminRequest::SetDesktop { desktop: DesktopMode::Rdp }).await;
    wait_bit(&gw, false, "rdp: bit 1 clear").await;

    // Back to auto; then the RDP host stops answering: the online session
    // notices on its own and announces the built-in desktop, and again when
    // the host comes back.
    admin(addr, &secret, AdminRequest::SetDesktop { desktop: DesktopMode::Auto }).await;
    wait_bit(&gw, false, "auto with an RDP host again: bit 1 clear").await;
    drop(host);
    wait_bit(&gw, true, "auto, the RDP host gone: bit 1 set without any request").await;
    let _host = tokio::net::TcpListener::bind(target).await.unwrap();
    wait_bit(&gw, false, "auto, the RDP host back: bit 1 clear").await;
    stop.cancel();
}
