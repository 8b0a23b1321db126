//! The admin console (`/thinadmin/`) in a real headless browser (Debian's
//! Chromium): what it shows after its JavaScript ran, the search, the
//! screenshots CI keeps (`target/screenshots/`, or `THIN_SCREENSHOT_DIR`),
//! host names from strangers shown as text, and who may change what: only
//! loopback callers, only with the page's token, only from the page's origin.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thin_e2e::*;
use thin_tunnel::server_agent::{ServeOptions, ServerState};
use thin_tunnel::settings::ConfigDir;
use thingate::machine_db::{Machine, MachineDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A host name as a stranger could plant it (the registry keeps what the
/// office PC's address resolved to, and an admin may edit the file).
const EVIL_HOST: &str = "<img src=x onerror=\"document.title='pwned'\">";

/// Debian's Chromium; the test fails (with the fix) when it is missing.
fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("Chromium is missing: install it with scripts/setup.sh (apt-get install chromium)");
}

/// Where screenshots go: `THIN_SCREENSHOT_DIR`, else `<target>/screenshots`.
fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("THIN_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target folder").join("screenshots")
}

/// What to ask of the browser.
enum Shot<'a> {
    /// The DOM after the page's scripts ran.
    Dom,
    /// A PNG of the page at this path.
    Png(&'a Path),
}

/// Loads `url` in headless Chromium (a fresh profile, 5 s of virtual time
/// for the page's scripts and requests); returns its standard output.
async fn browse(url: &str, what: Shot<'_>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        // The gateway's certificate is from the test CA, which this profile does not know.
        "--ignore-certificate-errors",
        "--virtual-time-budget=5000",
        "--window-size=1400,1100",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match what {
        Shot::Dom => cmd.arg("--dump-dom"),
        Shot::Png(p) => cmd.arg(format!("--screenshot={}", p.display())),
    };
    cmd.arg(url).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("Chromium answers within 90 s")
        .expect("Chromium runs");
    assert!(out.status.success(), "chromium {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Chromium driven over the DevTools protocol through a pipe
/// (`--remote-debugging-pipe`: it reads commands on fd 3 and answers on fd 4,
/// each message JSON ended by a NUL), to click the page's own buttons.
struct Browser {
    child: tokio::process::Child,
    to: tokio::process::ChildStdin,
    from: tokio::io::BufReader<tokio::process::ChildStdout>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The shell makes the child's stdin fd 3 and its stdout fd 4.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "exec 3<&0 4>&1; exec \"$0\" \"$@\" </dev/null >/dev/null"])
            .arg(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--ignore-certificate-errors"])
            .args(["--window-size=1400,1100", "--remote-debugging-pipe"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("Chromium runs");
        let to = child.stdin.take().unwrap();
        let from = tokio::io::BufReader::new(child.stdout.take().unwrap());
        Browser { child, to, from, next: 0, _profile: profile }
    }

    /// Sends `method` (to the page of `session`, if any) and returns its result.
    async fn call(&mut self, session: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
        use tokio::io::AsyncBufReadExt;
        self.next += 1;
        let mut m = serde_json::json!({ "id": self.next, "method": method, "params": params });
        if let Some(s) = session {
            m["sessionId"] = s.into();
        }
        let mut bytes = m.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).await.unwrap();
        loop {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(30), self.from.read_until(0, &mut buf)).await;
            let n = read.expect("Chromium answers within 30 s").unwrap();
            assert!(n > 0, "Chromium closed its pipe");
            buf.pop();
            let answer: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            if answer["id"] == self.next {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page; returns its session.
    async fn open(&mut self, url: &str) -> String {
        let target = self.call(None, "Target.createTarget", serde_json::json!({ "url": url })).await;
        let params = serde_json::json!({ "targetId": target["targetId"], "flatten": true });
        let attached = self.call(None, "Target.attachToTarget", params).await;
        attached["sessionId"].as_str().unwrap().to_string()
    }

    /// The value of `js` in the page.
    async fn eval(&mut self, session: &str, js: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": js, "returnByValue": true });
        self.call(Some(session), "Runtime.evaluate", params).await["result"]["value"].clone()
    }

    /// Waits (up to 20 s) until `js` is true in the page.
    async fn wait(&mut self, session: &str, what: &str, js: &str) {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while self.eval(session, js).await != serde_json::Value::Bool(true) {
            assert!(std::time::Instant::now() < end, "{what}: not within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page.
    async fn screenshot(&mut self, session: &str, png: &Path) {
        use base64::Engine;
        let shot = self.call(Some(session), "Page.captureScreenshot", serde_json::json!({ "format": "png" })).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::write(png, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The part of `dom` from the element with `id` to the end of its table.
fn table<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let end = dom[start..].find("</table>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// Writes a database holding one machine whose `CreateHost` is [`EVIL_HOST`].
fn plant_evil_host(dir: &GateDir) {
    let path = thingate::config::GateConfig::load(&dir.ini()).unwrap().database_file;
    let mut db = MachineDb::open(&path).unwrap();
    let mut m = Machine::new("MSID-DESK-EVIL0000000000000000000000000000000000000000", "evil-host");
    m.create_host = EVIL_HOST.into();
    m.create_date = 1_700_000_000_000;
    db.upsert(m);
    thingate::machine_db::write(&path, &db.render()).unwrap();
}

/// An HTTPS request with `headers` (`Host` is the gateway's address unless
/// given); returns (status, head, body).
async fn request(
    addr: SocketAddr,
    ca: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (u16, String, String) {
    let mut s = https::tls_connect(addr, ca).await;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{}\r\n", addr.port()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

/// The token in the console's page.
fn token_of(page: &str) -> String {
    let at = page.find("name=\"thinadmin-token\" content=\"").expect("the page carries its token");
    let rest = &page[at + "name=\"thinadmin-token\" content=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// What the page's button for `action` (`disable`, `enable`, `remove`) on
/// `pcid` sends: the page's token and its origin; returns (status, body).
pub(crate) async fn change_through_console(gw: &TestGateway, action: &str, pcid: &str) -> (u16, String) {
    let (status, _, page) = request(gw.addr, gw.ca(), "GET", "/thinadmin/", &[]).await;
    assert_eq!(status, 200);
    let headers = [("X-Thinadmin-Token", token_of(&page)), ("Origin", format!("https://127.0.0.1:{}", gw.addr.port()))];
    let path = format!("/thinadmin/api/machine/{action}?pcid={pcid}");
    let (status, _, body) = request(gw.addr, gw.ca(), "POST", &path, &headers).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_machines_and_live_tunnels_in_a_real_browser_and_host_names_as_text() {
    let dir = GateDir::new("");
    plant_evil_host(&dir);
    let gw = dir.start().await;
    let _pc = gw.office_pc("admin-desk", "pw").await;
    let tunnel = gw.connect("admin-desk", "pw").await;
    assert_tunnel_echo(&tunnel, 300_000, 7).await;
    let base = format!("https://127.0.0.1:{}/thinadmin/", gw.addr.port());

    let dom = browse(&base, Shot::Dom).await;
    assert!(dom.contains("Updated "), "the page's script ran and reached the API: {dom}");
    let machines = table(&dom, "machines");
    assert!(machines.contains("admin-desk") && machines.contains("evil-host"), "{machines}");
    assert!(machines.contains("online"), "{machines}");
    let tunnels = table(&dom, "tunnels");
    assert!(tunnels.contains("admin-desk") && tunnels.contains("127.0.0.1"), "{tunnels}");
    // 300,000 bytes each way: the tunnel's own counters, shown as KiB.
    assert!(tunnels.matches("KiB").count() >= 2, "bytes of the tunnel: {tunnels}");
    let sessions = table(&dom, "sessions");
    assert!(sessions.contains("admin-desk"), "{sessions}");
    // The charts were drawn from the samples (one at the start, one now).
    assert!(dom.contains("data-series=\"sessions\"") && dom.contains("data-series=\"down\""), "{dom}");
    // The planted host name is text, not an element.
    assert!(dom.contains("&lt;img src=x onerror="), "shown as text: {machines}");
    assert!(!dom.contains("<img"), "no element was made of it: {dom}");
    assert!(dom.contains("<title>ThinGate admin console</title>"), "no script ran from it: {dom}");

    // Search by computer ID (the page reads ?q= and filters as the admin types).
    let dom = browse(&format!("{base}?q=evil"), Shot::Dom).await;
    let machines = table(&dom, "machines");
    assert!(machines.contains("evil-host") && !machines.contains("admin-desk"), "{machines}");
    assert!(dom.contains("1 of 2 machines"), "{dom}");
    let dom = browse(&format!("{base}?q=ADMIN"), Shot::Dom).await;
    let machines = table(&dom, "machines");
    assert!(machines.contains("admin-desk") && !machines.contains("evil-host"), "{machines}");

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for (name, url) in [("thinadmin-overview.png", base.clone()), ("thinadmin-search.png", format!("{base}?q=evil"))] {
        let png = shots.join(name);
        let _ = std::fs::remove_file(&png);
        browse(&url, Shot::Png(&png)).await;
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is a real screenshot", png.display());
        println!("admin console screenshot: {}", png.display());
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_pages_token_and_origin_and_a_disabled_office_pc_is_refused_with_a_message() {
    let gw = TestGateway::start().await;
    let pc = gw.office_pc("csrf-desk", "pw").await;
    let msid = pc.cfg().identity().unwrap().msid();
    let tunnel = gw.connect("csrf-desk", "pw").await;
    let (addr, ca) = (gw.addr, gw.ca().to_string());
    let origin = format!("https://127.0.0.1:{}", addr.port());

    let (status, head, page) = request(addr, &ca, "GET", "/thinadmin/", &[]).await;
    assert_eq!(status, 200, "{head}");
    for h in ["Content-Security-Policy: default-src 'self'", "X-Frame-Options: DENY", "Cache-Control: no-store"] {
        assert!(head.contains(h), "{h} missing: {head}");
    }
    let token = token_of(&page);
    assert_eq!(token.len(), 64);
    // The API answers only with the token, also to reads.
    let (status, ..) = request(addr, &ca, "GET", "/thinadmin/api/overview", &[]).await;
    assert_eq!(status, 403, "a read without the token");
    let (status, _, json) =
        request(addr, &ca, "GET", "/thinadmin/api/overview", &[("X-Thinadmin-Token", token.clone())]).await;
    assert_eq!(status, 200);
    assert!(json.contains("\"csrf-desk\""), "{json}");

    let disable = "/thinadmin/api/machine/disable?pcid=csrf-desk";
    let tok = || ("X-Thinadmin-Token", token.clone());
    // Forged changes: each is refused and reveals nothing.
    let forged = [
        ("no token", vec![("Origin", origin.clone())]),
        ("a wrong token", vec![("Origin", origin.clone()), ("X-Thinadmin-Token", "0".repeat(64))]),
        ("no Origin", vec![tok()]),
        ("a foreign Origin", vec![tok(), ("Origin", "https://evil.example".into())]),
        ("a cross-site fetch", vec![tok(), ("Origin", origin.clone()), ("Sec-Fetch-Site", "cross-site".into())]),
        (
            "a rebound host name",
            vec![tok(), ("Host", "evil.example".into()), ("Origin", "https://evil.example".into())],
        ),
    ];
    for (what, headers) in &forged {
        let (status, _, body) = request(addr, &ca, "POST", disable, headers).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert!(!body.contains("csrf-desk"), "{what}: the refusal reveals nothing: {body}");
    }
    let (status, ..) = request(addr, &ca, "GET", disable, &[tok()]).await;
    assert_eq!(status, 405, "a GET changes nothing");
    assert!(!gw.gateway.registry.is_disabled(&msid) && gw.sessions() == 1, "nothing changed");
    assert_tunnel_echo(&tunnel, 10_000, 1).await;

    // What the page's Disable button sends.
    let (status, _, body) = request(addr, &ca, "POST", disable, &[tok(), ("Origin", origin.clone())]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"session_ended\":true") && body.contains("\"tunnels_cut\":1"), "{body}");
    assert!(gw.gateway.registry.is_disabled(&msid));
    // The office PC is told, stops serving, and its tunnel is cut.
    let ended = tokio::time::timeout(Duration::from_secs(20), pc.task).await.expect("the office PC stops").unwrap();
    let why = ended.expect_err("the office PC stops with the gateway's reason").to_string();
    assert!(why.contains("disabled this computer") && why.contains("csrf-desk"), "{why}");
    wait_for("the tunnel to be cut", Duration::from_secs(10), || {
        let live = gw.gateway.live.list().len();
        async move { (live == 0).then_some(()) }
    })
    .await;
    // Starting again is refused with the same message.
    let target = echo_server().await;
    let serve = |dir: &Path| {
        let (tx, _state) = tokio::sync::watch::channel(ServerState::Connecting);
        let opts = ServeOptions { target: Some(target.to_string()), ..Default::default() };
        let cfg = ConfigDir(dir.to_path_buf());
        thin_tunnel::server_agent::run_with(gw.link.clone(), cfg, opts, CancellationToken::new(), tx)
    };
    let again = tokio::time::timeout(Duration::from_secs(20), serve(pc.dir.path())).await.expect("refused in time");
    let why = again.expect_err("a disabled PC does not serve").to_string();
    assert!(why.contains("disabled this computer"), "{why}");
    assert_eq!(gw.sessions(), 0);

    // Enabled again, it serves; removed, its computer ID is free.
    let enable = "/thinadmin/api/machine/enable?pcid=csrf-desk";
    assert_eq!(request(addr, &ca, "POST", enable, &[tok(), ("Origin", origin.clone())]).await.0, 200);
    let back = OfficePc::run_with(pc.dir, &gw.link, target, Default::default()).await;
    assert_eq!(gw.sessions(), 1);
    let remove = "/thinadmin/api/machine/remove?pcid=csrf-desk";
    assert_eq!(request(addr, &ca, "POST", remove, &[("Origin", origin.clone())]).await.0, 403, "no token");
    let (status, _, body) = request(addr, &ca, "POST", remove, &[tok(), ("Origin", origin.clone())]).await;
    assert_eq!(status, 200, "{body}");
    assert!(!gw.gateway.registry.is_registered("csrf-desk"));
    let ended = tokio::time::timeout(Duration::from_secs(20), back.task).await.expect("stops").unwrap();
    assert!(ended.expect_err("removed").to_string().contains("removed this computer"));
    let (status, _, body) = request(addr, &ca, "POST", remove, &[tok(), ("Origin", origin.clone())]).await;
    assert_eq!(status, 404, "{body}");
    // The change is in MachineDatabase.config once the gateway stops.
    let dir = gw.shutdown().await;
    let db = MachineDb::open(&thingate::config::GateConfig::load(&dir.ini()).unwrap().database_file).unwrap();
    assert!(db.by_msid(&msid).is_none(), "removed for good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_callers_that_are_not_loopback_and_reveals_nothing() {
    let gw = TestGateway::with_ini("AcceptProxyProtocol 1\nProxyProtocolFrom 127.0.0.2").await;
    let lb = IpAddr::from([127, 0, 0, 2]);
    // Every connection comes through the balancer, the office PC's too.
    let pc_lb = crate::bounds::balancer_from(lb, gw.addr, "192.0.2.10:40002".parse().unwrap()).await;
    let _pc = gw.office_pc("far-desk", "pw").via(gw.dir.link(pc_lb)).await;
    let near = crate::bounds::balancer_from(lb, gw.addr, "127.0.0.1:40001".parse().unwrap()).await;
    let far = crate::bounds::balancer_from(lb, gw.addr, "198.51.100.23:40000".parse().unwrap()).await;
    let ca = gw.ca().to_string();
    // The TCP peer is loopback either way; the real client is in the PROXY header.
    let host = |a: SocketAddr| ("Host", format!("127.0.0.1:{}", a.port()));
    let (status, _, page) = request(near, &ca, "GET", "/thinadmin/", &[host(near)]).await;
    assert_eq!(status, 200);
    let token = token_of(&page);
    for path in ["/thinadmin/", "/thinadmin/admin.js", "/thinadmin/api/overview"] {
        let (status, head, body) =
            request(far, &ca, "GET", path, &[host(far), ("X-Thinadmin-Token", token.clone())]).await;
        assert_eq!(status, 403, "{path}: {head}");
        assert!(!body.contains(&token) && !body.contains("far-desk"), "{path}: {body}");
    }
    let origin = format!("https://127.0.0.1:{}", far.port());
    let headers = [host(far), ("X-Thinadmin-Token", token.clone()), ("Origin", origin)];
    let (status, ..) = request(far, &ca, "POST", "/thinadmin/api/machine/disable?pcid=far-desk", &headers).await;
    assert_eq!(status, 403);
    let msid = gw.gateway.registry.machines().into_iter().find(|m| m.pcid == "far-desk").unwrap().msid;
    assert!(!gw.gateway.registry.is_disabled(&msid), "a far caller with a stolen token changes nothing");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_password_a_far_caller_logs_in_and_still_needs_the_token_and_origin() {
    use base64::Engine;
    assert!(
        GateDir::new("AdminPassword correct horse battery").load_error().contains("AdminPassword: not an Argon2 hash"),
        "a password written in clear is refused at the start"
    );
    let password = "correct horse battery staple";
    // `thingate admin-password` prints the line for ThinGate.ini, never the password.
    let hash_line = |pw: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(thin_e2e::procs::bin("thingate"))
            .arg("admin-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{pw}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let short = hash_line("too short");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let out = hash_line(password);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("AdminPassword $argon2id$") && !line.contains(password), "{line}");
    let ini = format!("AcceptProxyProtocol 1\nProxyProtocolFrom 127.0.0.2\n{}", line.trim());
    let gw = TestGateway::with_ini(&ini).await;
    let lb = IpAddr::from([127, 0, 0, 2]);
    let pc_lb = crate::bounds::balancer_from(lb, gw.addr, "192.0.2.10:40002".parse().unwrap()).await;
    let pc = gw.office_pc("pw-desk", "pw").via(gw.dir.link(pc_lb)).await;
    let msid = pc.cfg().identity().unwrap().msid();
    let far = crate::bounds::balancer_from(lb, gw.addr, "198.51.100.23:40000".parse().unwrap()).await;
    let ca = gw.ca().to_string();
    // The browser uses the gateway's name; the Host check is for loopback callers.
    let host = ("Host", "gw.example.com".to_string());
    let basic = |p: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("admin:{p}"));
        ("Authorization", format!("Basic {b64}"))
    };
    let (status, head, body) = request(far, &ca, "GET", "/thinadmin/", std::slice::from_ref(&host)).await;
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("WWW-Authenticate: Basic"), "the browser asks for the password: {head}");
    assert!(!body.contains("pw-desk") && !body.contains("thinadmin-token"), "{body}");
    let (status, ..) = request(far, &ca, "GET", "/thinadmin/", &[host.clone(), basic("wrong password!")]).await;
    assert_eq!(status, 401);
    let (status, _, page) = request(far, &ca, "GET", "/thinadmin/", &[host.clone(), basic(password)]).await;
    assert_eq!(status, 200);
    let token = token_of(&page);
    let disable = "/thinadmin/api/machine/disable?pcid=pw-desk";
    let tok = ("X-Thinadmin-Token", token.clone());
    let origin = ("Origin", "https://gw.example.com".to_string());
    // Logged in, a change still needs the token and the page's origin.
    let (status, ..) = request(far, &ca, "POST", disable, &[host.clone(), basic(password), origin.clone()]).await;
    assert_eq!(status, 403, "no token");
    let foreign = ("Origin", "https://evil.example".to_string());
    let (status, ..) = request(far, &ca, "POST", disable, &[host.clone(), basic(password), tok.clone(), foreign]).await;
    assert_eq!(status, 403, "a foreign origin");
    let (status, ..) = request(far, &ca, "POST", disable, &[host.clone(), tok.clone(), origin.clone()]).await;
    assert_eq!(status, 401, "the token without the password");
    assert!(!gw.gateway.registry.is_disabled(&msid));
    let (status, _, body) = request(far, &ca, "POST", disable, &[host, basic(password), tok, origin]).await;
    assert_eq!(status, 200, "{body}");
    assert!(gw.gateway.registry.is_disabled(&msid));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_own_buttons_disable_and_remove_a_machine_in_chromium() {
    let gw = TestGateway::start().await;
    let pc = gw.office_pc("click-desk", "pw").await;
    let msid = pc.cfg().identity().unwrap().msid();
    let mut browser = Browser::launch().await;
    let page = browser.open(&format!("https://127.0.0.1:{}/thinadmin/", gw.addr.port())).await;
    let row = "#machines tr[data-pcid=\"click-desk\"]";
    browser
        .wait(&page, "the machine's row", &format!("!!document.querySelector('{row} button[data-action=disable]')"))
        .await;
    // Disable: the page's own button, its token and the browser's Origin.
    browser.eval(&page, &format!("document.querySelector('{row} button[data-action=disable]').click()")).await;
    wait_for("the machine disabled", Duration::from_secs(20), || {
        let off = gw.gateway.registry.is_disabled(&msid);
        async move { off.then_some(()) }
    })
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(20), pc.task).await.expect("the office PC stops").unwrap();
    assert!(ended.expect_err("told why").to_string().contains("disabled this computer"));
    let badge = format!("document.querySelector('{row} .badge').textContent === 'disabled'");
    browser.wait(&page, "the page shows it disabled", &badge).await;
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    browser.screenshot(&page, &shots.join("thinadmin-disabled.png")).await;
    // Remove takes two clicks.
    browser.eval(&page, &format!("document.querySelector('{row} button[data-action=arm]').click()")).await;
    let confirm = format!("{row} button[data-action=remove]");
    browser.wait(&page, "the confirmation button", &format!("!!document.querySelector('{confirm}')")).await;
    assert!(gw.gateway.registry.is_registered("click-desk"), "one click removes nothing");
    browser.eval(&page, &format!("document.querySelector('{confirm}').click()")).await;
    wait_for("the machine removed", Duration::from_secs(20), || {
        let known = gw.gateway.registry.is_registered("click-desk");
        async move { (!known).then_some(()) }
    })
    .await;
    browser
        .wait(&page, "the page lists no machine", "document.getElementById('found').textContent.startsWith('0 of 0')")
        .await;
    gw.shutdown().await;
}
