//! Which desktop an office PC serves (`desktop` in `thinsvr.toml`), as the
//! home PC asks it through the tunnel, and the ServerMask64 bit of the
//! built-in desktop. The screen is a stand-in here; the real X11 screen and
//! the real viewer are in `tests/gui/tests/desktop.rs`.

use std::sync::Arc;
use std::time::Duration;

use thin_e2e::TestGateway;
use thin_tunnel::desktop::screen::{Input, Pixels, Rect, Screen, ScreenError};
use thin_tunnel::desktop::{Desktop, DesktopInfo, DesktopMode};
use thin_tunnel::server_agent::{ServeOptions, ServerState};
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
}

/// A port on loopback where nothing listens (now).
fn silent_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn mask(body: &str) -> u64 {
    body.lines().find_map(|l| l.strip_prefix("ServerMask64[0] ")).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_serves_the_builtin_desktop_only_while_nothing_answers_at_the_target() {
    let gw = TestGateway::start().await;
    let pc = gw.register("urdp-desk", "pw").await;
    let target = silent_port();
    let (tx, mut state) = tokio::sync::watch::channel(ServerState::Connecting);
    let desktop = Desktop::with_screen(Arc::new(|| Ok(Box::new(Still) as Box<dyn Screen>)));
    let opts = ServeOptions { target: Some(target.to_string()), desktop: Some(desktop), ..Default::default() };
    let stop = CancellationToken::new();
    let _run = tokio::spawn(thin_tunnel::server_agent::run_with(
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
