//! The Windows outputs of the shared build (`super::built`): installers,
//! resources, reproducibility and signatures; then the real outputs under Wine
//! (see `common/wine.rs`): the NSIS setup and the MSI installed and removed,
//! two brands side by side, the installed apps relaying through the brand's own
//! gateway bundle, the service under the service manager, the apps taking the
//! proxy from the Windows Internet Options, and their windows.

use super::built::{built, PATCHED_WELCOME, SYSTEM};
use super::common::{
    self,
    wine::{self, Wine},
};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use thin_e2e::procs::Proc;

fn msi_table(msi: &Path, table: &str) -> String {
    let o =
        Command::new("msiinfo").arg("export").arg(msi).arg(table).output().expect("msiinfo (apt-get install msitools)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The MSI's summary "Word Count" (`msiinfo suminfo`'s `Source`): bit 8 set
/// means no elevation is needed to install it.
fn msi_word_count(msi: &Path) -> u32 {
    let o = Command::new("msiinfo").arg("suminfo").arg(msi).output().expect("msiinfo");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = text.lines().find_map(|l| l.strip_prefix("Source: ")).unwrap_or_else(|| panic!("{text}"));
    line.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn setups_are_64_bit_nsis_installers_and_only_the_server_one_asks_for_admin() {
    for (kind, level) in [("client", "asInvoker"), ("server", "requireAdministrator")] {
        let exe = std::fs::read(built().a.join(format!("E2eWin-1.0.0-{kind}-setup.exe"))).unwrap();
        let pe = u32::from_le_bytes(exe[0x3c..0x40].try_into().unwrap()) as usize;
        assert_eq!(&exe[pe..pe + 4], b"PE\0\0");
        assert_eq!(u16::from_le_bytes([exe[pe + 4], exe[pe + 5]]), 0x8664, "x86-64");
        assert!(contains(&exe, b"NullsoftInst"), "NSIS data");
        // The manifest Windows reads before starting it: UAC asks only for the server one.
        assert!(contains(&exe, format!("requestedExecutionLevel level=\"{level}\"").as_bytes()), "{kind}: {level}");
    }
}

#[test]
fn msis_carry_the_brand_the_build_number_and_upgrade_by_app_id() {
    let server = built().a.join("E2eWin-1.0.0-server.msi");
    let props = msi_table(&server, "Property");
    let upgrade = builder::build::compiled::brand_guid("E2eWin", "upgrade");
    assert!(props.contains(&format!("UpgradeCode\t{{{upgrade}}}")), "{props}");
    assert!(props.contains("ProductName\tE2eWin Telework Server"), "{props}");
    // Build 1 of 1.0.0: MSI compares only three fields, the build is the third.
    assert!(props.lines().any(|l| l.trim_end() == "ProductVersion\t1.0.1"), "{props}");
    assert!(props.contains("ALLUSERS\t1"), "per machine: {props}");
    assert_eq!(msi_word_count(&server) & 8, 0, "the server MSI needs elevation");
    assert!(msi_table(&server, "Upgrade").contains("WIX_UPGRADE_DETECTED"));
    assert!(msi_table(&server, "ServiceInstall").contains("E2eWinThinServer"));
    let registry = msi_table(&server, "Registry");
    assert!(registry.contains("Software\\E2eWin") && registry.contains("Build"), "{registry}");
    assert!(!msi_table(&server, "File").contains("thinclient.exe"), "no ThinClient in the server MSI");
    assert!(msi_table(&server, "Directory").contains("E2eWin"));

    // ThinClient's: per user (no ALLUSERS, no elevation), no service, its own UpgradeCode.
    let client = built().a.join("E2eWin-1.0.0-client.msi");
    let props = msi_table(&client, "Property");
    let upgrade = builder::build::compiled::brand_guid("E2eWin", "upgrade-client");
    assert!(props.contains(&format!("UpgradeCode\t{{{upgrade}}}")), "{props}");
    assert!(props.lines().any(|l| l.trim_end() == "ProductVersion\t1.0.1"), "{props}");
    assert!(!props.contains("ALLUSERS"), "per user: {props}");
    assert_eq!(msi_word_count(&client) & 8, 8, "the client MSI needs no elevation");
    let files = msi_table(&client, "File");
    assert!(files.contains("thinclient.exe") && !files.contains("thinsvr.exe"), "{files}");
    assert!(!msi_table(&client, "ServiceInstall").contains("E2eWin"), "no service in the client MSI");
    assert!(msi_table(&client, "Directory").contains("LocalAppDataFolder"));
    let shortcuts = msi_table(&client, "Shortcut");
    assert!(shortcuts.contains("E2eWin Telework Home"), "patched title in the shortcut: {shortcuts}");

    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let stage = target.join("builder/stage/E2eWin/windows");
    let nsi = std::fs::read_to_string(stage.join("setup-server.nsi")).unwrap();
    for line in [
        r#"InstallDir "$PROGRAMFILES64\E2eWin""#,
        r#"WriteRegStr HKLM "Software\E2eWin" "InstallDir" "$INSTDIR""#,
        r#"WriteRegDWORD HKLM "Software\E2eWin" "Build" 1"#,
        r#"VIProductVersion "1.0.0.1""#,
        "Target amd64-unicode",
        "RequestExecutionLevel admin",
        r#"!define SERVICE "E2eWinThinServer""#,
    ] {
        assert!(nsi.contains(line), "{line} missing from setup-server.nsi");
    }
    let nsi = std::fs::read_to_string(stage.join("setup-client.nsi")).unwrap();
    for line in
        [r#"InstallDir "$LOCALAPPDATA\Programs\E2eWin""#, "RequestExecutionLevel user", "SetShellVarContext current"]
    {
        assert!(nsi.contains(line), "{line} missing from setup-client.nsi");
    }
    assert!(!nsi.contains("sc.exe") && !nsi.contains("HKLM"), "the client setup touches no service and no HKLM");
}

#[test]
fn apps_carry_the_brand_resources_and_strings() {
    let exe = std::fs::read(built().a.join("thinclient.exe")).unwrap();
    assert!(contains(&exe, &utf16("E2eWin Telework")), "ProductName in the version resource");
    assert!(contains(&exe, &utf16("E2eWin")), "CompanyName");
    assert!(contains(&exe, &utf16("1.0.0.1")), "FileVersion: major.minor.patch.build");
    // The compiled brand handed to the apps' build carries the patch; the text
    // shows in the exe once the apps call `strings::text("APP_WELCOME")`.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let patch = std::fs::read_to_string(target.join("builder/brands/E2eWin/strtable_en.patch.stb")).unwrap();
    assert!(patch.contains(PATCHED_WELCOME), "{patch}");
    let url = format!("https://127.0.0.1:{}/thingate/", built().port);
    assert!(contains(&exe, url.as_bytes()), "entry point compiled in");
    assert!(!contains(&exe, env!("CARGO_MANIFEST_DIR").as_bytes()), "no local path in the binary");
}

#[test]
fn zip_and_sums_list_the_outputs() {
    let out = &built().a;
    let z = zip::ZipArchive::new(std::fs::File::open(out.join("E2eWin-1.0.0-portable.zip")).unwrap()).unwrap();
    let names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
    for n in ["E2eWin/thinclient.exe", "E2eWin/thinsvr.exe", "E2eWin/app.ico"] {
        assert!(names.iter().any(|x| x == n), "{names:?}");
    }
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums.lines().map(|l| l.split_once("  ").unwrap().1).collect();
    assert_eq!(
        listed,
        [
            "E2eWin-1.0.0-client-setup.exe",
            "E2eWin-1.0.0-client.msi",
            "E2eWin-1.0.0-portable.zip",
            "E2eWin-1.0.0-server-setup.exe",
            "E2eWin-1.0.0-server.msi",
            "thinapps-E2eWin-1.0.0-linux-x86_64.tar.gz",
            "thinclient.exe",
            "thingate-E2eWin-1.0.0-linux-aarch64.tar.gz",
            "thingate-E2eWin-1.0.0-linux-x86_64.tar.gz",
            "thinsvr.exe"
        ]
    );
    for line in sums.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        assert_eq!(
            hash,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(out.join(name)).unwrap())),
            "{name}"
        );
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("build-manifest.json")).unwrap()).unwrap();
    assert_eq!(m["outputs"].as_array().unwrap().len(), 10);
    // `--installers both` adds the combined setup and MSI.
    let sums = std::fs::read_to_string(built().signed.join("SHA256SUMS")).unwrap();
    for n in ["E2eSig-1.0.0-setup.exe", "E2eSig-1.0.0.msi", "E2eSig-1.0.0-server.msi", "E2eSig-1.0.0-client-setup.exe"]
    {
        assert!(sums.contains(&format!("  {n}\n")), "{n}: {sums}");
    }
}

#[test]
fn rebuilding_the_same_brand_and_build_number_gives_identical_exes_and_zip() {
    let b = built();
    for f in ["thinclient.exe", "thinsvr.exe", "E2eWin-1.0.0-portable.zip"] {
        assert_eq!(std::fs::read(b.a.join(f)).unwrap(), std::fs::read(b.a_again.join(f)).unwrap(), "{f} differs");
    }
}

/// E2eSig's second build, same version: build 2 everywhere, and quick (the
/// warm cargo target rebuilds only the apps' crate).
#[test]
fn the_next_build_of_a_version_gets_the_next_number() {
    let b = built();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.next.join("build-manifest.json")).unwrap()).unwrap();
    assert_eq!((m["version"].as_str(), m["build"].as_u64()), (Some("1.0.0"), Some(2)), "{m}");
    assert_eq!(m["msi_product_version"], "1.0.2");
    let kept = std::fs::read_to_string(b.signed_brand.join("build-number.toml")).unwrap();
    assert!(kept.lines().any(|l| l == "last = 2"), "{kept}");
    let props = msi_table(&b.next.join("E2eSig-1.0.0-server.msi"), "Property");
    assert!(props.lines().any(|l| l.trim_end() == "ProductVersion\t1.0.2"), "{props}");
    let exe = std::fs::read(b.next.join("thinsvr.exe")).unwrap();
    assert!(contains(&exe, &utf16("1.0.0.2")), "FileVersion of build 2");
    assert!(!contains(&exe, &utf16("1.0.0.1")));
    assert!(b.next_secs < 600.0, "the warm rebuild took {:.0} s", b.next_secs);
}

/// `osslsigncode verify -CAfile <E2eSig's signing certificate> -in FILE`.
fn verify_signed(file: &Path) -> std::process::Output {
    let cert = built().signed_brand.join("certs/codesign.cer");
    Command::new("osslsigncode").arg("verify").arg("-CAfile").arg(cert).arg("-in").arg(file).output().unwrap()
}

#[test]
fn signed_build_verifies_against_the_brand_certificate() {
    let b = built();
    for f in ["thinclient.exe", "thinsvr.exe", "E2eSig-1.0.0-setup.exe", "E2eSig-1.0.0.msi"] {
        let o = verify_signed(&b.signed.join(f));
        assert!(o.status.success(), "{f}: {}", String::from_utf8_lossy(&o.stdout));
    }
    let plain = verify_signed(&b.a.join("thinclient.exe"));
    assert!(!plain.status.success(), "an unsigned build does not verify");
}

// ---- Under Wine -------------------------------------------------------------

/// `Z:\...`: how a Windows program under Wine names a host path.
fn winpath(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// `C:\Program Files\APPID\EXE`.
fn installed_exe(app_id: &str, exe: &str) -> String {
    format!(r"C:\Program Files\{app_id}\{exe}")
}

/// The Wine user's profile folder under the prefix (`C:\users\NAME`).
fn profile(w: &Wine) -> std::path::PathBuf {
    let users = w.c("users");
    std::fs::read_dir(&users)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().is_some_and(|n| n != "Public") && p.join("AppData").is_dir())
        .unwrap_or_else(|| panic!("no user profile in {}", users.display()))
}

/// The per-user install folder of a brand's ThinClient, on the host.
fn client_dir(w: &Wine, app_id: &str) -> std::path::PathBuf {
    profile(w).join("AppData/Local/Programs").join(app_id)
}

/// `C:\users\NAME\AppData\Local\Programs\APPID\thinclient.exe`: ThinClient installed per user.
fn client_exe(w: &Wine, app_id: &str) -> String {
    let user = profile(w).file_name().unwrap().to_string_lossy().into_owned();
    format!(r"C:\users\{user}\AppData\Local\Programs\{app_id}\thinclient.exe")
}

/// What the prefix held after E2eWin's ThinClient setup ran, before its
/// ThinServer setup.
struct ClientOnly {
    /// `reg query` of the service key.
    service: Option<String>,
    /// `HKLM\Software\E2eWin`.
    hklm: Option<String>,
    /// `HKCU\Software\E2eWin`.
    hkcu: Option<String>,
    /// The per-user uninstall entry.
    uninstall: Option<String>,
    /// Whether `C:\Program Files\E2eWin` existed.
    program_files: bool,
}

static CLIENT_ONLY: OnceLock<ClientOnly> = OnceLock::new();

/// The prefix with E2eWin installed by its two NSIS setups, ThinClient's then
/// ThinServer's (once, shared).
fn installed() -> &'static Wine {
    static I: OnceLock<Result<(), String>> = OnceLock::new();
    let w = wine::wine();
    let r = I.get_or_init(|| {
        std::panic::catch_unwind(|| {
            client_installed();
            let _l = wine::lock();
            let t = Instant::now();
            let _ = CLIENT_ONLY.set(ClientOnly {
                service: w.reg_query(r"HKLM\System\CurrentControlSet\Services\E2eWinThinServer"),
                hklm: w.reg_query(r"HKLM\Software\E2eWin"),
                hkcu: w.reg_query(r"HKCU\Software\E2eWin"),
                uninstall: w.reg_query(&format!(r"HKCU\{UNINSTALL}\E2eWinThinClient")),
                program_files: w.c("Program Files/E2eWin").exists(),
            });
            nsis_install(w, &built().a.join("E2eWin-1.0.0-server-setup.exe"), "E2eWin");
            eprintln!("NSIS setup of E2eWin's server under Wine: {:.1} s", t.elapsed().as_secs_f64());
        })
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "the install panicked".into()))
    });
    r.as_ref().unwrap_or_else(|e| panic!("NSIS install of E2eWin failed: {e}"));
    w
}

/// The prefix with E2eWin's ThinClient installed by its NSIS setup, and
/// nothing else (no service listening): the first step of [`installed`], and
/// all the tests of the windows alone need (once, shared).
fn client_installed() -> &'static Wine {
    static C: OnceLock<Result<(), String>> = OnceLock::new();
    let w = wine::wine();
    let r = C.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let setup = built().a.join("E2eWin-1.0.0-client-setup.exe");
            let _l = wine::lock();
            let t = Instant::now();
            nsis_install_into(w, &setup, &client_dir(w, "E2eWin"));
            eprintln!("NSIS setup of E2eWin's client under Wine: {:.1} s", t.elapsed().as_secs_f64());
        })
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "the install panicked".into()))
    });
    r.as_ref().unwrap_or_else(|e| panic!("NSIS install of E2eWin's client failed: {e}"));
    w
}

const UNINSTALL: &str = r"Software\Microsoft\Windows\CurrentVersion\Uninstall";

/// Runs a setup with `/S`. A setup that does nothing still exits 0 (a 32-bit
/// one under a 64-bit Wine), so this waits for its files instead.
fn nsis_install(w: &Wine, setup: &Path, app_id: &str) {
    nsis_install_into(w, setup, &w.c(&format!("Program Files/{app_id}")));
}

/// [`nsis_install`] of a setup that installs into `dir`; waits until its
/// uninstaller is there and, for an update, has been replaced.
fn nsis_install_into(w: &Wine, setup: &Path, dir: &Path) {
    let before = std::fs::metadata(dir.join("uninstall.exe")).and_then(|m| m.modified()).ok();
    let o = w.run(&[&winpath(setup), "/S"]);
    assert!(o.status.success(), "{}", wine::text(&o));
    w.wait_until(&format!("{} installed", setup.display()), Duration::from_secs(60), || {
        let now = std::fs::metadata(dir.join("uninstall.exe")).and_then(|m| m.modified()).ok();
        now.is_some() && now != before
    });
}

/// `--version` of an installed app (a Windows path), with extra environment.
fn version(w: &Wine, exe: &str, env: &[(&str, &str)]) -> String {
    let o = wine::output(w.wine(&[exe, "--version"]).envs(env.iter().copied()), None, wine::SHORT);
    assert!(o.status.success(), "{exe} --version: {}", wine::text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// ThinServer of `app_id` installed for all users (by its own setup or MSI,
/// or the combined one, `with_client`), its registry values and its service.
fn assert_installed(w: &Wine, app_id: &str, rpc_port: u16, with_client: bool) {
    let dir = w.c(&format!("Program Files/{app_id}"));
    assert!(dir.join("thinsvr.exe").is_file(), "{app_id}: thinsvr.exe missing");
    assert_eq!(dir.join("thinclient.exe").is_file(), with_client, "{app_id}: thinclient.exe");
    let reg = w.reg_query(&format!(r"HKLM\Software\{app_id}")).unwrap_or_else(|| panic!("no Software\\{app_id}"));
    assert!(reg.contains(&format!(r"C:\Program Files\{app_id}")), "{reg}");
    assert!(reg.contains(&format!("RpcPort    REG_DWORD    {rpc_port:#x}")), "{reg}");
    let svc = w
        .reg_query(&format!(r"HKLM\System\CurrentControlSet\Services\{app_id}ThinServer"))
        .unwrap_or_else(|| panic!("service {app_id}ThinServer not registered"));
    // NSIS (sc create) quotes the path; Wine's msiexec does not (Windows' does).
    let image = svc.lines().find_map(|l| l.trim().strip_prefix("ImagePath    REG_SZ    ")).unwrap_or_default();
    assert_eq!(image.replace('"', ""), format!(r"C:\Program Files\{app_id}\thinsvr.exe service"), "{svc}");
    let v = version(w, &installed_exe(app_id, "thinsvr.exe"), &[]);
    assert!(v.contains(&format!("AppId {app_id}")) || v.contains(&format!("[{app_id} /")), "{v}");
}

/// Removes E2eSig again if a test stopped half way, so the next one starts
/// from the shared state (E2eWin only): runs `wine ARGS` when E2eSig is there.
struct Cleanup<'a>(&'a Wine, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.0.c("Program Files/E2eSig/thinsvr.exe").exists() {
            let args: Vec<&str> = self.1.iter().map(String::as_str).collect();
            let _ = std::panic::catch_unwind(|| self.0.run(&args));
            let gone = self.0.c("Program Files/E2eSig/thinsvr.exe");
            let _ =
                std::panic::catch_unwind(|| self.0.wait_until("cleanup", Duration::from_secs(60), || !gone.exists()));
        }
    }
}

fn assert_removed(w: &Wine, app_id: &str) {
    let dir = w.c(&format!("Program Files/{app_id}"));
    w.wait_until(&format!("{app_id} removed"), Duration::from_secs(60), || {
        !dir.join("thinclient.exe").exists()
            && !dir.join("thinsvr.exe").exists()
            && w.reg_query(&format!(r"HKLM\Software\{app_id}")).is_none()
    });
    assert!(w.reg_query(&format!(r"HKLM\System\CurrentControlSet\Services\{app_id}ThinServer")).is_none());
}

#[test]
fn client_setup_installs_per_user_without_a_service() {
    let w = installed();
    let c = CLIENT_ONLY.get().expect("recorded by installed()");
    assert!(c.service.is_none(), "the ThinClient setup registered a service: {:?}", c.service);
    assert!(c.hklm.is_none() && !c.program_files, "the ThinClient setup wrote for all users: {:?}", c.hklm);
    let user = profile(w).file_name().unwrap().to_string_lossy().into_owned();
    let hkcu = c.hkcu.as_deref().expect("HKCU\\Software\\E2eWin");
    for v in [
        format!(r"InstallDir    REG_SZ    C:\users\{user}\AppData\Local\Programs\E2eWin"),
        "Version    REG_SZ    1.0.0".into(),
        "Build    REG_DWORD    0x1".into(),
    ] {
        assert!(hkcu.contains(&v), "{v} missing:\n{hkcu}");
    }
    let un = c.uninstall.as_deref().expect("per-user uninstall entry");
    assert!(un.contains("DisplayName    REG_SZ    E2eWin Telework Home"), "{un}");
    assert!(un.contains("DisplayVersion    REG_SZ    1.0.0.1"), "{un}");
    let dir = client_dir(w, "E2eWin");
    for f in ["thinclient.exe", "app.ico", "uninstall.exe"] {
        assert!(dir.join(f).is_file(), "{f} missing from {}", dir.display());
    }
    assert!(!dir.join("thinsvr.exe").exists(), "no ThinServer in the ThinClient install");
    assert_eq!(
        std::fs::read(dir.join("thinclient.exe")).unwrap(),
        std::fs::read(built().a.join("thinclient.exe")).unwrap()
    );
    let menu = profile(w).join("AppData/Roaming/Microsoft/Windows/Start Menu/Programs/E2eWin Telework");
    assert!(menu.join("E2eWin Telework Home.lnk").is_file(), "the user's shortcut with the patched client title");
}

#[test]
fn server_setup_installs_the_app_registry_service_and_start_menu() {
    let w = installed();
    let dir = w.c("Program Files/E2eWin");
    for f in ["thinsvr.exe", "app.ico", "uninstall.exe"] {
        assert!(dir.join(f).is_file(), "{f} missing after the silent setup");
    }
    assert!(!dir.join("thinclient.exe").exists(), "no ThinClient in the ThinServer install");
    assert_eq!(
        std::fs::read(dir.join("thinsvr.exe")).unwrap(),
        std::fs::read(built().a.join("thinsvr.exe")).unwrap(),
        "the installed thinsvr.exe is the built one"
    );
    let reg = w.reg_query(r"HKLM\Software\E2eWin").expect("HKLM\\Software\\E2eWin");
    for v in [
        r"InstallDir    REG_SZ    C:\Program Files\E2eWin",
        "Version    REG_SZ    1.0.0",
        "Build    REG_DWORD    0x1",
        "RpcPort    REG_DWORD    0x26b7",
    ] {
        assert!(reg.contains(v), "{v} missing:\n{reg}");
    }
    let un = w.reg_query(&format!(r"HKLM\{UNINSTALL}\E2eWin")).expect("uninstall entry");
    assert!(un.contains("DisplayName    REG_SZ    E2eWin Telework Server"), "{un}");
    assert!(un.contains("DisplayVersion    REG_SZ    1.0.0.1"), "{un}");
    assert!(un.contains(r#"QuietUninstallString    REG_SZ    "C:\Program Files\E2eWin\uninstall.exe" /S"#), "{un}");
    let svc = w.reg_query(r"HKLM\System\CurrentControlSet\Services\E2eWinThinServer").expect("service");
    assert!(svc.contains(r#"ImagePath    REG_SZ    "C:\Program Files\E2eWin\thinsvr.exe" service"#), "{svc}");
    let menu = w.c("ProgramData/Microsoft/Windows/Start Menu/Programs/E2eWin Telework");
    assert!(menu.join("E2eWin Telework Server.lnk").is_file(), "shortcut with the server title");
    assert!(!menu.join("E2eWin Telework Home.lnk").exists(), "the client's shortcut is the user's");
}

#[test]
fn installed_apps_print_the_brand_the_build_and_the_patched_version_line() {
    let w = installed();
    for (exe, path) in [("thinclient", client_exe(w, "E2eWin")), ("thinsvr", installed_exe("E2eWin", "thinsvr.exe"))] {
        let v = version(w, &path, &[]);
        assert_eq!(v, format!("{exe} E2E-PATCHED E2eWin Telework 1.0.0 build 1 [E2eWin / {SYSTEM}]"));
    }
    // The language follows the Windows user locale (Wine takes it from LC_ALL);
    // the brand patches only English, so Japanese shows the base line.
    let ja = version(w, &client_exe(w, "E2eWin"), &[("LC_ALL", "ja_JP.UTF-8")]);
    assert_eq!(ja, format!("thinclient E2eWin Telework 1.0.0 ビルド 1 (AppId E2eWin、システム {SYSTEM})"));
}

/// Wine 8's one `Win32_QuickFixEngineering` row (`KB1234567`) is dated
/// `22/2/2022`, day first: 2022-02-22, 19,045 days after 1970-01-01.
const WINE_QFE_DAY: u64 = 19_045;

fn today() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400
}

/// `thinclient inspect` reads the home PC's state over WMI as it would for
/// an office PC's inspection rule, and reports exactly what Wine 8's
/// `wbemprox` answers: no `root\SecurityCenter2` namespace (Windows Server
/// has none either), so the antivirus is reported unread, with the WMI error,
/// never guessed; the update date from `Win32_QuickFixEngineering`; the
/// system's name from `Win32_OperatingSystem`. (A Wine that implements
/// Security Center lists a product instead, and this test says so.)
#[test]
fn installed_client_inspects_the_home_pc_as_wine_answers() {
    use thin_protocol::inspection::{judge, HomeState, Platform, Rule};
    let w = client_installed();
    let exe = client_exe(w, "E2eWin");
    let before = today();
    let o = wine::output(&mut w.wine(&[&exe, "inspect", "--json"]), None, wine::SHORT);
    let after = today();
    assert!(o.status.success(), "thinclient inspect --json: {}", wine::text(&o));
    let s: HomeState = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("inspect --json is no HomeState ({e}): {}", wine::text(&o)));
    assert_eq!(s.platform, Platform::Windows, "{s:?}");
    assert!(s.os.starts_with("Microsoft Windows "), "the name from Win32_OperatingSystem: {s:?}");
    assert!(s.antivirus.is_empty(), "Wine 8 has no Security Center; a newer Wine answers: {s:?}");
    let unread = s.antivirus_unread.as_deref().unwrap_or_default();
    assert!(
        unread.starts_with(r"WMI namespace root\SecurityCenter2: ") && unread.contains("0x8004100E"),
        "WBEM_E_INVALID_NAMESPACE expected: {s:?}"
    );
    assert_eq!(s.update_source.as_deref(), Some("Win32_QuickFixEngineering"), "{s:?}");
    assert!(s.update_unread.is_none(), "{s:?}");
    let days = s.last_update_days.expect("days since Wine's update") as u64;
    assert!(days == before - WINE_QFE_DAY || days == after - WINE_QFE_DAY, "{days} days: {s:?}");
    // The office PC's judge refuses it for both reasons, naming them.
    let rule = Rule { update_days: Some(30), allow_other_os: false };
    let why = judge(&rule, &s).expect_err("Wine's state fails the usual rule");
    assert!(why.contains("the antivirus state could not be read") && why.contains(&format!("{days} days")), "{why}");
    // The text for the user says the same, from the string tables.
    let o = wine::output(&mut w.wine(&[&exe, "inspect"]), None, wine::SHORT);
    assert!(o.status.success(), "thinclient inspect: {}", wine::text(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first().copied(), Some(&*format!("System: {}", s.os)), "{text}");
    assert!(lines.iter().any(|l| l.starts_with(r"Antivirus: not read (WMI namespace root\SecurityCenter2")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("Updates last installed: ") && l.contains("Win32_QuickFixEngineering")));
    assert!(text.contains("an office PC would refuse this PC:"), "{text}");
}

#[test]
fn second_brand_installs_beside_the_first_and_removing_it_leaves_the_first() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let _cleanup = Cleanup(w, vec![installed_exe("E2eSig", "uninstall.exe"), "/S".into()]);
    nsis_install(w, &built().signed.join("E2eSig-1.0.0-setup.exe"), "E2eSig");
    assert_installed(w, "E2eSig", 9912, true);
    assert_installed(w, "E2eWin", 9911, false);
    assert!(version(w, &installed_exe("E2eSig", "thinsvr.exe"), &[]).contains("AppId E2eSig"));
    // Both brands' services run side by side, each on its own admin port.
    // Wine's service manager took over 60 s to start it once on a loaded
    // 2-core VM (the outputs suite ran 2,139 s that time).
    w.wait_until("E2eSig's service on 9912", Duration::from_secs(120), || admin_challenge(9912).is_some());
    assert!(admin_challenge(9911).is_some(), "E2eWin's service still answers");
    // The signed setup wrote an uninstaller signed at build time (!uninstfinalize).
    let o = verify_signed(&w.c("Program Files/E2eSig/uninstall.exe"));
    assert!(o.status.success(), "installed uninstall.exe: {}", wine::text(&o));
    // The uninstaller copies itself away and re-launches: wait for its work.
    let o = w.run(&[&installed_exe("E2eSig", "uninstall.exe"), "/S"]);
    assert!(o.status.success(), "{}", wine::text(&o));
    assert_removed(w, "E2eSig");
    assert!(admin_challenge(9912).is_none(), "the uninstaller stopped E2eSig's service");
    assert!(admin_challenge(9911).is_some(), "E2eWin's service is untouched");
    let gone = w.c("Program Files/E2eSig");
    w.wait_until("E2eSig folder removed", Duration::from_secs(30), || !gone.exists());
    assert!(!w.c("ProgramData/Microsoft/Windows/Start Menu/Programs/E2eSig Telework").exists());
    assert_installed(w, "E2eWin", 9911, false);
    let v = version(w, &client_exe(w, "E2eWin"), &[]);
    assert!(v.contains("E2E-PATCHED E2eWin Telework"), "{v}");
    eprintln!("two brands side by side, NSIS uninstall: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn msi_installs_and_uninstalls_beside_another_brand() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let msi = winpath(&built().signed.join("E2eSig-1.0.0.msi"));
    let _cleanup = Cleanup(w, vec!["msiexec".into(), "/x".into(), msi.clone(), "/qn".into()]);
    let o = w.run(&["msiexec", "/i", &msi, "/qn"]);
    assert!(o.status.success(), "msiexec /i: {}", wine::text(&o));
    assert_installed(w, "E2eSig", 9912, true);
    // The MSI starts the service it installs (ServiceControl Start="install").
    w.wait_until("the MSI's service on 9912", Duration::from_secs(60), || admin_challenge(9912).is_some());
    let reg = w.reg_query(r"HKLM\Software\E2eSig").unwrap();
    assert!(reg.contains("Shortcuts    REG_DWORD    0x1"), "the MSI's own registry values: {reg}");
    let o = w.run(&["msiexec", "/x", &msi, "/qn"]);
    assert!(o.status.success(), "msiexec /x: {}", wine::text(&o));
    assert_removed(w, "E2eSig");
    assert!(admin_challenge(9912).is_none(), "the MSI stopped its service when removed");
    assert_installed(w, "E2eWin", 9911, false);
    eprintln!("MSI install and uninstall: {:.1} s", t.elapsed().as_secs_f64());
}

/// Runs Wine commands when a test fails half way (uninstalls what it
/// installed), so the next test starts from the shared state.
struct OnPanic<'a>(&'a Wine, Vec<Vec<String>>);

impl Drop for OnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for args in &self.1 {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let _ = std::panic::catch_unwind(|| self.0.run(&args));
            }
        }
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The entries of the machine's uninstall list named `name`, with their
/// versions: one per installed product.
fn products_named(w: &Wine, name: &str) -> Vec<String> {
    let all = w.reg_query(&format!(r"HKLM\{UNINSTALL}")).unwrap_or_default();
    let keys: Vec<String> = all.lines().map(str::trim).filter(|l| l.starts_with("HKEY_")).map(String::from).collect();
    keys.iter()
        .filter_map(|k| {
            let v = w.reg_query(k)?;
            v.lines().any(|l| l.trim() == format!("DisplayName    REG_SZ    {name}")).then(|| {
                v.lines().find_map(|l| l.trim().strip_prefix("DisplayVersion    REG_SZ    ")).unwrap_or("?").to_string()
            })
        })
        .collect()
}

/// Waits until the service `name` runs and answers on its admin `port`; a
/// failure shows the service manager's view and the service's log.
fn wait_service(w: &Wine, name: &str, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if service_state(w, name) == "RUNNING" && admin_challenge(port).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let app = name.trim_end_matches("ThinServer");
    let log = std::fs::read_to_string(w.c(&format!("ProgramData/{app}/ThinServer/thinsvr.log"))).unwrap_or_default();
    let sc = w.run(&["sc", "query", name]);
    panic!(
        "{what}: not running with its admin port {port} within 90 s\nsc query: {}\nthinsvr.log:\n{log}",
        wine::text(&sc)
    );
}

/// E2eSig's separate MSIs: ThinClient's installs for the user alone (its
/// folder under the profile, HKCU, no service), ThinServer's for the machine
/// with its service running; both uninstall cleanly.
#[test]
fn separate_msis_install_the_client_per_user_and_the_server_with_its_service() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let client = winpath(&built().signed.join("E2eSig-1.0.0-client.msi"));
    let server = winpath(&built().signed.join("E2eSig-1.0.0-server.msi"));
    let _undo =
        OnPanic(w, vec![strings(&["msiexec", "/x", &client, "/qn"]), strings(&["msiexec", "/x", &server, "/qn"])]);
    let o = w.run(&["msiexec", "/i", &client, "/qn"]);
    assert!(o.status.success(), "msiexec /i client: {}", wine::text(&o));
    let dir = client_dir(w, "E2eSig");
    assert!(dir.join("thinclient.exe").is_file(), "{} holds no thinclient.exe", dir.display());
    assert!(!dir.join("thinsvr.exe").exists());
    let hkcu = w.reg_query(r"HKCU\Software\E2eSig").expect("HKCU\\Software\\E2eSig");
    assert!(hkcu.contains("Build    REG_DWORD    0x1"), "{hkcu}");
    assert!(w.reg_query(r"HKLM\System\CurrentControlSet\Services\E2eSigThinServer").is_none(), "no service");
    assert!(!w.c("Program Files/E2eSig").exists() && w.reg_query(r"HKLM\Software\E2eSig").is_none());
    let v = version(w, &client_exe(w, "E2eSig"), &[]);
    assert!(v.contains("E2eSig Telework 1.0.0 build 1 (AppId E2eSig"), "{v}");

    let o = w.run(&["msiexec", "/i", &server, "/qn"]);
    assert!(o.status.success(), "msiexec /i server: {}", wine::text(&o));
    assert_installed(w, "E2eSig", 9912, false);
    w.wait_until("the server MSI's service on 9912", Duration::from_secs(60), || admin_challenge(9912).is_some());
    assert_eq!(products_named(w, "E2eSig Telework Server"), ["1.0.1"]);

    for (what, msi) in [("client", &client), ("server", &server)] {
        let o = w.run(&["msiexec", "/x", msi, "/qn"]);
        assert!(o.status.success(), "msiexec /x {what}: {}", wine::text(&o));
    }
    assert_removed(w, "E2eSig");
    w.wait_until("the client MSI removed", Duration::from_secs(60), || !dir.join("thinclient.exe").exists());
    let hkcu = w.reg_query(r"HKCU\Software\E2eSig").unwrap_or_default();
    assert!(!hkcu.contains("InstallDir"), "HKCU\\Software\\E2eSig left behind: {hkcu}");
    assert!(products_named(w, "E2eSig Telework Server").is_empty());
    assert_installed(w, "E2eWin", 9911, false);
    eprintln!("separate MSIs, install and uninstall: {:.1} s", t.elapsed().as_secs_f64());
}

/// Installs E2eSig's ThinServer build 1 with `install`, gives the service a
/// setting (OTP by e-mail) and reads its admin secret, installs build 2 of the
/// same version over it, and finds one product at build 2 with the service
/// running the new exe and both kept; then `remove`s it.
fn upgrade_keeps_one_product(w: &Wine, kind: &str, install: &dyn Fn(&Path), remove: &dyn Fn()) {
    let b = built();
    let setup =
        |out: &Path| out.join(if kind == "MSI" { "E2eSig-1.0.0-server.msi" } else { "E2eSig-1.0.0-server-setup.exe" });
    let name = "E2eSigThinServer";
    let config = w.c("ProgramData/E2eSig/ThinServer");
    install(&setup(&b.signed));
    wait_service(w, name, 9912, &format!("{kind}: build 1's service"));
    let svr = installed_exe("E2eSig", "thinsvr.exe");
    let o = w.run(&[&svr, "--config-dir", r"C:\ProgramData\E2eSig\ThinServer", "otp", "--email", "keep@example.org"]);
    assert!(o.status.success(), "thinsvr otp: {}", wine::text(&o));
    let secret = std::fs::read_to_string(config.join("admin.secret")).unwrap();
    let display = if kind == "MSI" { ("1.0.1", "1.0.2") } else { ("1.0.0.1", "1.0.0.2") };
    assert_eq!(products_named(w, "E2eSig Telework Server"), [display.0]);

    install(&setup(&b.next));
    assert_eq!(products_named(w, "E2eSig Telework Server"), [display.1], "{kind}: one product, at build 2");
    let reg = w.reg_query(r"HKLM\Software\E2eSig").expect("HKLM\\Software\\E2eSig");
    assert!(reg.contains("Build    REG_DWORD    0x2"), "{reg}");
    assert_eq!(
        std::fs::read(w.c("Program Files/E2eSig/thinsvr.exe")).unwrap(),
        std::fs::read(b.next.join("thinsvr.exe")).unwrap(),
        "{kind}: build 2's thinsvr.exe installed"
    );
    wait_service(w, name, 9912, &format!("{kind}: build 2's service"));
    assert!(version(w, &svr, &[]).contains("1.0.0 build 2"), "the running build is 2");
    assert_eq!(std::fs::read_to_string(config.join("admin.secret")).unwrap(), secret, "{kind}: admin secret kept");
    let settings = std::fs::read_to_string(config.join("thinsvr.toml")).unwrap_or_default();
    assert!(settings.contains("keep@example.org"), "{kind}: settings kept: {settings}");
    assert!(set_aside_in(&w.c("ProgramData/E2eSig")).is_empty(), "nothing moved aside");
    remove();
    assert_removed(w, "E2eSig");
    assert!(products_named(w, "E2eSig Telework Server").is_empty());
}

#[test]
fn a_rebuilt_msi_of_the_same_version_replaces_the_installed_build() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let next = winpath(&built().next.join("E2eSig-1.0.0-server.msi"));
    let first = winpath(&built().signed.join("E2eSig-1.0.0-server.msi"));
    let _undo = OnPanic(w, vec![strings(&["msiexec", "/x", &next, "/qn"]), strings(&["msiexec", "/x", &first, "/qn"])]);
    let install = |msi: &Path| {
        let o = w.run(&["msiexec", "/i", &winpath(msi), "/qn"]);
        assert!(o.status.success(), "msiexec /i {}: {}", msi.display(), wine::text(&o));
    };
    let remove = || {
        let o = w.run(&["msiexec", "/x", &next, "/qn"]);
        assert!(o.status.success(), "msiexec /x: {}", wine::text(&o));
    };
    upgrade_keeps_one_product(w, "MSI", &install, &remove);
    assert_installed(w, "E2eWin", 9911, false);
    eprintln!("MSI build 1 -> build 2 under Wine: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn a_rebuilt_setup_of_the_same_version_updates_in_place() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let _undo = OnPanic(w, vec![vec![installed_exe("E2eSig", "uninstall.exe"), "/S".into()]]);
    let install = |setup: &Path| nsis_install(w, setup, "E2eSig");
    let remove = || {
        let o = w.run(&[&installed_exe("E2eSig", "uninstall.exe"), "/S"]);
        assert!(o.status.success(), "uninstall: {}", wine::text(&o));
    };
    upgrade_keeps_one_product(w, "NSIS", &install, &remove);
    let gone = w.c("Program Files/E2eSig");
    w.wait_until("E2eSig folder removed", Duration::from_secs(30), || !gone.exists());
    assert_installed(w, "E2eWin", 9911, false);
    eprintln!("NSIS setup build 1 -> build 2 under Wine: {:.1} s", t.elapsed().as_secs_f64());
}

/// The E2eWin gateway bundle, extracted and started with its own
/// `ThinGate.ini` (plus `ListenAddress 127.0.0.1`) on the compiled-in port.
struct Gateway {
    dir: tempfile::TempDir,
    _proc: Proc,
}

fn start_gateway() -> Gateway {
    let b = built();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let tgz = std::fs::File::open(b.a.join("thingate-E2eWin-1.0.0-linux-x86_64.tar.gz")).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    tar.set_preserve_permissions(true);
    tar.unpack(dir.path()).unwrap();
    let home = dir.path().join("thingate-E2eWin-1.0.0-linux-x86_64");
    for f in ["thingate", "ThinGate.ini", "ThinGate.cer", "ThinGate.key", "install.sh"] {
        assert!(home.join(f).is_file(), "{f} missing from the bundle");
    }
    let ini = home.join("ThinGate.ini");
    let mut text = std::fs::read_to_string(&ini).unwrap();
    assert!(text.contains(&format!("ListenPort {}", b.port)), "{text}");
    // Installed, the database is in the gateway user's state folder; here, beside the ini.
    let installed_db = "DatabaseFile /var/lib/thingate-e2ewin/MachineDatabase.config";
    assert!(text.contains(installed_db), "{text}");
    text = text.replace(installed_db, "DatabaseFile MachineDatabase.config");
    text.push_str("\nListenAddress 127.0.0.1\n");
    std::fs::write(&ini, text).unwrap();
    let mut cmd = Command::new(home.join("thingate"));
    cmd.arg("run").arg("--config").arg(&ini).current_dir(&home);
    let mut proc = Proc::start("thingate", &mut cmd, None);
    let addr = proc.wait_line("listening on ", Duration::from_secs(20));
    assert_eq!(addr, format!("127.0.0.1:{}", b.port));
    Gateway { dir, _proc: proc }
}

impl Gateway {
    /// The database as stored: the file and the journal of the changes since
    /// it was last written whole (both in the same text format).
    fn database(&self) -> String {
        let db = self.dir.path().join("thingate-E2eWin-1.0.0-linux-x86_64/MachineDatabase.config");
        let journal = db.with_extension("config.journal");
        std::fs::read_to_string(&db).unwrap_or_default() + &std::fs::read_to_string(journal).unwrap_or_default()
    }
}

/// `thinsvr.exe register` (E2eWin, installed) with its config in `C:\e2e\NAME`.
fn register(w: &Wine, pcid: &str, extra: &[&str]) -> std::process::Output {
    let dir = format!(r"C:\e2e\{pcid}");
    let mut args = vec![installed_exe("E2eWin", "thinsvr.exe")];
    args.extend(["register", "--pcid", pcid, "--password-stdin", "--config-dir", &dir].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    wine::output(&mut w.wine(&args), Some(b"wine e2e copper lantern\n"), wine::SHORT)
}

/// `thinsvr.exe run` (E2eWin, installed) registered as `pcid` by
/// [`register`], with an RDP target that answers nothing; waited for until
/// it is online.
fn run_without_rdp_host(w: &Wine, pcid: &str) -> Proc {
    let svr = installed_exe("E2eWin", "thinsvr.exe");
    let dir = format!(r"C:\e2e\{pcid}");
    let mut server = Proc::start(
        &format!("thinsvr.exe run ({pcid})"),
        &mut w.wine(&[&svr, "run", "--target", "127.0.0.1:9", "--config-dir", &dir]),
        None,
    );
    assert_eq!(server.wait_line("online as ", Duration::from_secs(60)), pcid);
    server
}

#[test]
fn gateway_bundle_relays_between_the_installed_windows_apps() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let gw = start_gateway();
    let o = register(w, "wine-relay", &[]);
    assert!(o.status.success(), "register: {}", wine::text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "registered as wine-relay");
    assert!(gw.database().contains("wine-relay"), "the bundle's gateway keeps the registration: {}", gw.database());
    let echo = thin_e2e::net::echo_server_blocking();
    let svr = installed_exe("E2eWin", "thinsvr.exe");
    let target = echo.to_string();
    let mut server = Proc::start(
        "thinsvr.exe run",
        &mut w.wine(&[&svr, "run", "--target", &target, "--config-dir", r"C:\e2e\wine-relay"]),
        None,
    );
    assert_eq!(server.wait_line("online as ", Duration::from_secs(60)), "wine-relay");
    let cli = client_exe(w, "E2eWin");
    let mut client = Proc::start(
        "thinclient.exe connect",
        &mut w.wine(&[&cli, "connect", "wine-relay", "--password-stdin", "--no-launch", "--listen", "127.0.0.1:0"]),
        Some(b"wine e2e copper lantern\n"),
    );
    let addr = client.wait_line("listening on ", Duration::from_secs(60));
    let addr = addr.parse().expect("thinclient prints its local address");
    thin_e2e::net::assert_tcp_echo_blocking(addr, 1 << 20, 1, Duration::from_secs(60));
    thin_e2e::net::assert_tcp_echo_blocking(addr, 4096, 2, Duration::from_secs(30));
    drop(client);
    drop(server);
    eprintln!("relay through the gateway bundle under Wine: {:.1} s", t.elapsed().as_secs_f64());
}

/// The Remote Desktop host's machine policy key that DISABLE_SHARE writes.
const TS_POLICY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";

/// `reg query` of one value of [`TS_POLICY`]: its data (`0x1`), or `None` when absent.
fn ts_value(w: &Wine, name: &str) -> Option<String> {
    let o = w.run(&["reg", "query", TS_POLICY, "/v", name]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .find(|l| l.contains(name) && l.contains("REG_DWORD"))
        .and_then(|l| l.split_whitespace().last())
        .map(String::from)
}

#[test]
fn disable_share_turns_off_redirection_in_the_rdp_host_policy_and_lifting_it_puts_back_the_owners_values() {
    let w = installed();
    let _l = wine::lock();
    let gw = start_gateway();
    let home = gw.dir.path().join("thingate-E2eWin-1.0.0-linux-x86_64");
    // The owner allowed the clipboard explicitly and never set drives.
    w.ok(&["reg", "add", TS_POLICY, "/v", "fDisableClip", "/t", "REG_DWORD", "/d", "0", "/f"]);
    let _ = w.run(&["reg", "delete", TS_POLICY, "/v", "fDisableCdm", "/f"]);
    std::fs::write(home.join("ThinGatePolicy.ini"), "DISABLE_SHARE 1\n").unwrap();
    let o = register(w, "wine-share", &[]);
    assert!(o.status.success(), "register: {}", wine::text(&o));
    let server = run_without_rdp_host(w, "wine-share");
    w.wait_until("redirection turned off", Duration::from_secs(60), || {
        ["fDisableCdm", "fDisableClip", "fDisableCpm"].iter().all(|v| ts_value(w, v).as_deref() == Some("0x1"))
    });
    // Lifted: the owner's values are back (the clipboard 0, drives unset).
    std::fs::write(home.join("ThinGatePolicy.ini"), "# no rules\n").unwrap();
    w.wait_until("the owner's values back", Duration::from_secs(60), || {
        ts_value(w, "fDisableClip").as_deref() == Some("0x0") && ts_value(w, "fDisableCdm").is_none()
    });
    drop(server);
    let _ = w.run(&["reg", "delete", TS_POLICY, "/v", "fDisableClip", "/f"]);
}

/// The display's scale for the programs started while it is held (the
/// per-user `LogPixels`, 96 DPI being 100 %); the previous value is put back
/// on drop.
struct ScaledDisplay<'a> {
    w: &'a Wine,
    before: Option<String>,
}

const DESKTOP: &str = r"HKCU\Control Panel\Desktop";

impl<'a> ScaledDisplay<'a> {
    fn set(w: &'a Wine, dpi: u32) -> Self {
        let o = w.run(&["reg", "query", DESKTOP, "/v", "LogPixels"]);
        let before = String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| {
                l.trim().strip_prefix("LogPixels")?.trim().strip_prefix("REG_DWORD")?.trim().strip_prefix("0x")
            })
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .map(|v| v.to_string());
        w.ok(&["reg", "add", DESKTOP, "/v", "LogPixels", "/t", "REG_DWORD", "/d", &dpi.to_string(), "/f"]);
        Self { w, before }
    }
}

impl Drop for ScaledDisplay<'_> {
    fn drop(&mut self) {
        let _ = match &self.before {
            Some(v) => self.w.run(&["reg", "add", DESKTOP, "/v", "LogPixels", "/t", "REG_DWORD", "/d", v, "/f"]),
            None => self.w.run(&["reg", "delete", DESKTOP, "/v", "LogPixels", "/f"]),
        };
    }
}

/// What a per-monitor DPI aware program started now sees of the display
/// (`tests/fixtures/wine/display.c`): "WIDTHxHEIGHT at DPI dpi".
fn display_seen(w: &Wine) -> String {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = dir.path().join("display.exe");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wine/display.c");
    let o = wine::output(
        Command::new("x86_64-w64-mingw32-gcc").args(["-O2", "-s", "-o"]).arg(&exe).arg(src).arg("-lgdi32"),
        None,
        wine::SHORT,
    );
    assert!(o.status.success(), "compiling display.exe: {}", wine::text(&o));
    w.ok(&[&exe.to_string_lossy()]).trim().to_string()
}

/// Sets the per-user Internet Options proxy; clears it on drop.
struct SystemProxy<'a>(&'a Wine);

const INET: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings";

impl<'a> SystemProxy<'a> {
    fn set(w: &'a Wine, server: &str) -> Self {
        w.ok(&["reg", "add", INET, "/v", "ProxyEnable", "/t", "REG_DWORD", "/d", "1", "/f"]);
        w.ok(&["reg", "add", INET, "/v", "ProxyServer", "/t", "REG_SZ", "/d", server, "/f"]);
        Self(w)
    }
}

impl Drop for SystemProxy<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["reg", "add", INET, "/v", "ProxyEnable", "/t", "REG_DWORD", "/d", "0", "/f"]);
        let _ = self.0.run(&["reg", "delete", INET, "/v", "ProxyServer", "/f"]);
    }
}

#[test]
fn windows_internet_options_proxy_is_used_under_wine() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let gw = start_gateway();
    let port = built().port;
    let mut proxy = thin_e2e::proxies::Tinyproxy::start("");
    let _setting = SystemProxy::set(w, &format!("127.0.0.1:{}", proxy.port));
    let o = register(w, "wine-proxied", &[]);
    assert!(o.status.success(), "register through the system proxy: {}", wine::text(&o));
    let log = proxy.log();
    assert!(log.contains(&format!("CONNECT 127.0.0.1:{port}")), "tinyproxy saw no CONNECT to the gateway:\n{log}");
    assert!(gw.database().contains("wine-proxied"));
    // With the proxy down the app fails, naming the proxy; `--proxy direct` still works.
    proxy.stop();
    let o = register(w, "wine-noproxy", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "register with the system proxy down: {}", wine::text(&o));
    assert!(err.contains(&format!("proxy 127.0.0.1:{}", proxy.port)), "the message names the proxy: {err}");
    let o = register(w, "wine-direct", &["--proxy", "direct"]);
    assert!(o.status.success(), "--proxy direct beats the system setting: {}", wine::text(&o));
    eprintln!("Internet Options proxy under Wine: {:.1} s", t.elapsed().as_secs_f64());
}

/// `sc query NAME` says RUNNING (or STOPPED).
fn service_state(w: &Wine, name: &str) -> String {
    let o = w.run(&["sc", "query", name]);
    let out = String::from_utf8_lossy(&o.stdout);
    ["RUNNING", "STOPPED", "START_PENDING", "STOP_PENDING"]
        .into_iter()
        .find(|s| out.contains(s))
        .unwrap_or("UNKNOWN")
        .to_string()
}

/// The first frame on the admin port: the service's challenge.
fn admin_challenge(port: u16) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len).min(65536) as usize];
    s.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn the_installed_service_runs_under_the_service_manager_and_serves_the_admin_port() {
    let w = installed();
    let _l = wine::lock();
    let t = Instant::now();
    let name = "E2eWinThinServer";
    // The setup started it; the service manager reports it running (it would
    // say STOPPED after 30 s if thinsvr did not answer the dispatcher).
    w.wait_until("the service running", Duration::from_secs(60), || service_state(w, name) == "RUNNING");
    // Its admin port is the brand's RPC port, and it challenges every caller.
    let mut hello = None;
    w.wait_until("the admin port", Duration::from_secs(60), || {
        hello = admin_challenge(9911);
        hello.is_some()
    });
    let hello = hello.unwrap();
    assert!(hello.contains(r#""t":"challenge""#), "{hello}");
    // The secret it checks callers against, in its config folder.
    let secret = w.c("ProgramData/E2eWin/ThinServer/admin.secret");
    assert_eq!(std::fs::read_to_string(&secret).unwrap().trim().len(), 64, "{}", secret.display());
    // Under the service manager it logs to a file beside it (nobody reads stderr).
    let log = std::fs::read_to_string(w.c("ProgramData/E2eWin/ThinServer/thinsvr.log")).unwrap_or_default();
    assert!(log.contains("admin port open"), "thinsvr.log: {log}");
    // Stop and start as Windows does: the service ends its work and reports it.
    let o = w.run(&["net", "stop", name]);
    assert!(o.status.success(), "net stop: {}", wine::text(&o));
    w.wait_until("the service stopped", Duration::from_secs(30), || service_state(w, name) == "STOPPED");
    assert!(admin_challenge(9911).is_none(), "the admin port is closed once stopped");
    let o = w.run(&["sc", "start", name]);
    assert!(o.status.success(), "sc start: {}", wine::text(&o));
    w.wait_until("the service running again", Duration::from_secs(60), || admin_challenge(9911).is_some());
    eprintln!("Windows service stop/start under Wine: {:.1} s", t.elapsed().as_secs_f64());
}

/// Unix mode bits of a path under the prefix: Wine keeps no Windows access
/// list, it maps the one a program sets onto the file's mode.
fn unix_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Entries of `dir` whose name holds `.untrusted-` (moved aside by the service).
fn set_aside_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".untrusted-"))
        .collect();
    v.sort();
    v
}

/// The config folder attack, as far as Wine shows it (one Unix user for
/// everything, so owners cannot differ; Wine renders an access list as the
/// file's mode and a world-readable mode as an access list that lets
/// Everyone in). Someone else makes `ProgramData\E2eWin\ThinServer` before
/// the service first runs, readable by all, with their own admin.secret and
/// password.json in it: the service moves that folder aside and uses nothing
/// in it, makes a new one only it and administrators may enter, a new
/// admin.secret, and serves nobody until the password is set again (its log
/// says so). Restarted, it trusts its own folder and files: nothing more is
/// moved aside.
#[test]
fn the_service_moves_aside_a_config_folder_it_did_not_make() {
    let w = installed();
    let _l = wine::lock();
    let name = "E2eWinThinServer";
    let brand = w.c("ProgramData/E2eWin");
    let dir = brand.join("ThinServer");
    w.wait_until("the service answering", Duration::from_secs(60), || admin_challenge(9911).is_some());
    // The folders the service made: nobody else may enter (Wine: no bits for others).
    for d in [&brand, &dir] {
        assert_eq!(unix_mode(d) & 0o007, 0, "{}: {:o}", d.display(), unix_mode(d));
    }
    assert_eq!(unix_mode(&dir.join("admin.secret")) & 0o007, 0);
    let stop = |what: &str| {
        let o = w.run(&["net", "stop", name]);
        assert!(o.status.success(), "net stop ({what}): {}", wine::text(&o));
        w.wait_until("the service stopped", Duration::from_secs(30), || service_state(w, name) == "STOPPED");
    };
    let start = |what: &str| {
        let o = w.run(&["sc", "start", name]);
        assert!(o.status.success(), "sc start ({what}): {}", wine::text(&o));
        w.wait_until(what, Duration::from_secs(60), || admin_challenge(9911).is_some());
    };
    stop("before planting");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let planted = "11".repeat(32);
    std::fs::write(dir.join("admin.secret"), &planted).unwrap();
    std::fs::write(dir.join("password.json"), b"{\"planted\": true}").unwrap();
    for (p, m) in [(dir.clone(), 0o755), (dir.join("admin.secret"), 0o644), (dir.join("password.json"), 0o644)] {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap();
    }
    start("the service after the planting");
    let aside = set_aside_in(&brand);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let moved = brand.join(&aside[0]);
    assert_eq!(std::fs::read_to_string(moved.join("admin.secret")).unwrap(), planted, "moved whole");
    let secret = std::fs::read_to_string(dir.join("admin.secret")).unwrap();
    assert_eq!(secret.trim().len(), 64);
    assert_ne!(secret.trim(), planted, "the planted admin secret is not used");
    assert!(!dir.join("password.json").exists(), "the planted password verifier is not used");
    assert_eq!(unix_mode(&dir) & 0o007, 0, "{:o}", unix_mode(&dir));
    assert_eq!(unix_mode(&dir.join("admin.secret")) & 0o007, 0);
    let log = std::fs::read_to_string(dir.join("thinsvr.log")).unwrap_or_default();
    assert!(log.contains("was not made by this service") && log.contains("its access list lets WD in"), "{log}");
    assert!(log.contains("nobody can connect until the computer's owner sets the password again"), "{log}");

    // Its own folder and files it keeps across a restart.
    stop("after the planting");
    start("the service again");
    assert_eq!(set_aside_in(&brand), aside, "nothing more moved aside");
    assert!(set_aside_in(&dir).is_empty(), "{:?}", set_aside_in(&dir));
    assert_eq!(std::fs::read_to_string(dir.join("admin.secret")).unwrap(), secret, "its own secret is kept");
}

/// Both windows of the installed apps (started without arguments) under Wine
/// on a private Xvfb, in English and Japanese: each reports its first frame,
/// its screenshot (`<target>/screenshots/wine-<app>-<lang>.png`, kept by CI)
/// shows the brand's header and icon BMPs pixel for pixel, ThinClient's
/// English window shows the brand's patched welcome text (read back with
/// Tesseract; the Japanese one, unpatched, must not), and the time from
/// spawning `wine` to the first frame is printed.
#[test]
fn windows_of_the_installed_apps_under_wine_show_the_brand() {
    use common::xvfb;
    let w = installed();
    let _l = wine::lock();
    // The Wine session's own X server: Wine binds its desktop to the display
    // its first process had, so the windows must open on that one.
    let x = &w.xvfb;
    // The artwork of the brand folder E2eWin was built from (`builder new`'s).
    let art = built().a.parent().unwrap().join("a/artwork");
    let header = xvfb::load_bmp(&art.join("header.bmp"));
    let icon = xvfb::load_bmp(&art.join("icon.bmp"));
    let out = xvfb::screenshot_dir();
    std::fs::create_dir_all(&out).unwrap();
    let mut shots = Vec::new();
    let mut service_waited = false;
    for (exe, lang) in
        [("thinclient.exe", "en"), ("thinclient.exe", "ja"), ("thinsvr.exe", "en"), ("thinsvr.exe", "ja")]
    {
        let app = exe.trim_end_matches(".exe");
        if exe == "thinsvr.exe" && !service_waited {
            // ThinServer's window shows the service's state: let the service
            // the setup started answer first (`the_installed_service_runs_...`
            // asserts it; here a window showing it stopped is still shot).
            let deadline = Instant::now() + Duration::from_secs(60);
            while admin_challenge(9911).is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            if admin_challenge(9911).is_none() {
                eprintln!("the E2eWin service does not answer on its admin port after 60 s");
            }
            service_waited = true;
        }
        let path = if exe == "thinclient.exe" { client_exe(w, "E2eWin") } else { installed_exe("E2eWin", exe) };
        let mut cmd = w.wine(&[&path]);
        // `Wine::cmd` removes THIN_LANG; Mesa's llvmpipe through GLX.
        cmd.env("THIN_GUI_REPORT_READY", "1").env("THIN_LANG", lang).env("LIBGL_ALWAYS_SOFTWARE", "1");
        let t = Instant::now();
        let mut window = Proc::start(&format!("{exe} ({lang})"), &mut cmd, None);
        window.wait_stderr("thin-gui: ready", Duration::from_secs(90));
        let ready = t.elapsed();
        // A few more frames after the first one.
        std::thread::sleep(Duration::from_secs(1));
        let png = out.join(format!("wine-{app}-{lang}.png"));
        x.shoot(&png);
        // Killing the Wine process closes its X connection and so its window:
        // the next screenshot shows only the next window.
        drop(window);
        let img = xvfb::load_png(&png);
        assert_eq!((img.w, img.h), (1024, 768), "{}", png.display());
        for (name, bmp) in [("header", &header), ("icon", &icon)] {
            assert!(
                xvfb::find(&img, bmp, 0).is_some(),
                "{}: the brand's {name} BMP is not in the window pixel for pixel (found with a per-channel \
                 tolerance of: {:?})",
                png.display(),
                xvfb::tolerance_needed(&img, bmp)
            );
        }
        if app == "thinclient" {
            // The patch gives APP_WELCOME in English only.
            let text = common::ocr::read(&png);
            assert_eq!(
                common::ocr::contains_approx(&text, PATCHED_WELCOME, 4),
                lang == "en",
                "{}: the patched welcome {PATCHED_WELCOME:?} {} in the window; Tesseract read:\n{text}",
                png.display(),
                if lang == "en" { "is not" } else { "unexpectedly is" }
            );
        }
        println!("wine: {app} {lang}: {} ms to the first frame ({})", ready.as_millis(), png.display());
        shots.push(img.px);
    }
    // Each window in each language looks different (no stale window was shot).
    for i in 0..shots.len() {
        for j in i + 1..shots.len() {
            assert!(shots[i] != shots[j], "screenshots {i} and {j} are identical");
        }
    }
}

/// `xdotool ARGS` on the Wine session's X server; its output lines.
fn xdotool(x: &common::xvfb::Xvfb, args: &[&str]) -> Vec<String> {
    let o = Command::new("xdotool").args(args).env("DISPLAY", &x.display).output().expect("cannot run xdotool");
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

/// A Windows PC whose OpenGL is only 1.1 (no GPU driver, Windows Server, some
/// VDI), as Mesa under Wine with `MESA_GL_VERSION_OVERRIDE=1.1`: eframe's
/// OpenGL painter cannot open a window there (`glutin error: Invalid handle`).
/// With OpenGL forced (`THIN_RENDERER=opengl`) the installed ThinClient says
/// so in a message box (found by its title, its text read back with
/// Tesseract, kept as `wine-thinclient-gl11-message-box.png`) and exits 1 once
/// the box is closed with Enter. Left to choose, it paints the same window on
/// the CPU: it reports the software painter and its first frame, and the
/// screenshot (`wine-thinclient-gl11-software.png`) shows the brand's header
/// BMP pixel for pixel and the patched welcome text.
#[test]
fn without_opengl_2_the_window_is_painted_on_the_cpu_and_a_failure_shows_a_message_box() {
    use common::xvfb;
    let w = client_installed();
    let _l = wine::lock();
    let x = &w.xvfb;
    let exe = client_exe(w, "E2eWin");
    let out = xvfb::screenshot_dir();
    std::fs::create_dir_all(&out).unwrap();
    let header = xvfb::load_bmp(&built().a.parent().unwrap().join("a/artwork/header.bmp"));
    let gl11 = [("MESA_GL_VERSION_OVERRIDE", "1.1"), ("LIBGL_ALWAYS_SOFTWARE", "1"), ("THIN_GUI_REPORT_READY", "1")];
    // The patched client title, also the message box's.
    let title = "E2eWin Telework Home";

    // OpenGL forced: the failure shows in a message box.
    let mut cmd = w.wine(&[&exe]);
    cmd.envs(gl11).env("THIN_RENDERER", "opengl");
    let mut p = Proc::start("thinclient.exe (OpenGL 1.1, OpenGL forced)", &mut cmd, None);
    // The app logs the failure just before it shows the box.
    p.wait_stderr("The window could not be opened", Duration::from_secs(90));
    w.wait_until(&format!("a message box titled {title:?}"), Duration::from_secs(30), || {
        !xdotool(x, &["search", "--name", &format!("^{title}$")]).is_empty()
    });
    // Its text is drawn once it is mapped.
    std::thread::sleep(Duration::from_secs(1));
    let png = out.join("wine-thinclient-gl11-message-box.png");
    x.shoot(&png);
    let text = common::ocr::read(&png);
    for phrase in ["The window could not be opened", "OpenGL 2 or newer is needed"] {
        assert!(
            common::ocr::contains_approx(&text, phrase, 3),
            "{}: {phrase:?} is not in the message box; Tesseract read:\n{text}",
            png.display()
        );
    }
    // Enter on the box (searched again: the window OpenGL failed in had the same title).
    for id in xdotool(x, &["search", "--name", &format!("^{title}$")]) {
        xdotool(x, &["windowfocus", "--sync", &id]);
        xdotool(x, &["key", "--window", &id, "Return"]);
    }
    let (status, stderr) = p.finish(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "exit code once the box is closed; stderr:\n{stderr}");
    assert!(stderr.contains("glutin error"), "OpenGL failed as on such a PC; stderr:\n{stderr}");

    // Left to choose: painted on the CPU.
    let mut cmd = w.wine(&[&exe]);
    cmd.envs(gl11);
    let t = Instant::now();
    let mut window = Proc::start("thinclient.exe (OpenGL 1.1)", &mut cmd, None);
    window.wait_stderr("thin-gui: ready", Duration::from_secs(90));
    let ready = t.elapsed();
    let log = window.stderr();
    assert!(log.contains("glutin error"), "OpenGL was tried first and failed; stderr:\n{log}");
    assert!(log.contains("thin-gui: renderer software"), "the CPU painter shows the window; stderr:\n{log}");
    // A few more frames after the first one.
    std::thread::sleep(Duration::from_secs(1));
    let png = out.join("wine-thinclient-gl11-software.png");
    x.shoot(&png);
    drop(window);
    let img = xvfb::load_png(&png);
    assert!(
        xvfb::find(&img, &header, 0).is_some(),
        "{}: the brand's header BMP is not in the window pixel for pixel (found with a per-channel tolerance of: {:?})",
        png.display(),
        xvfb::tolerance_needed(&img, &header)
    );
    let text = common::ocr::read(&png);
    assert!(
        common::ocr::contains_approx(&text, PATCHED_WELCOME, 4),
        "{}: the patched welcome {PATCHED_WELCOME:?} is not in the window; Tesseract read:\n{text}",
        png.display()
    );
    println!("wine: thinclient en, OpenGL 1.1: painted on the CPU, {} ms to the first frame", ready.as_millis());
}

/// The built-in desktop of the Windows build (issue 15, point 4): the
/// installed `thinsvr.exe`, run in the Wine session with `desktop =
/// "builtin"` and an RDP target that answers nothing, serves the Wine desktop
/// (GDI capture, `SendInput`) through the brand's gateway bundle; the brand's
/// Linux `thinclient` (from its apps bundle) connects and starts the real
/// `xfreerdp` on a second Xvfb display. The viewer's screenshot
/// (`wine-builtin-desktop-viewer.png`, kept by CI) shows the text of a
/// Notepad window open on the office PC (Tesseract); a click and keys typed
/// into the viewer with `xdotool` reach that Notepad, whose Ctrl+S saves
/// them to its file, and the typed text comes back to the viewer's screen
/// (`wine-builtin-desktop-typed.png`). The display is scaled to 200 % (192
/// DPI) for the programs of the test: thinsvr.exe still serves every physical
/// pixel (its log, the viewer's window size) and the clicks land. Then the
/// clipboard, text both ways, with Notepad's Ctrl+V and Ctrl+C.
#[test]
fn builtin_desktop_of_thinsvr_exe_under_wine_is_seen_and_driven_with_xfreerdp_through_the_gateway() {
    use common::xvfb;
    let w = installed();
    let _l = wine::lock();
    for tool in ["xfreerdp", "xdotool", "xclip", "tesseract"] {
        assert!(thin_e2e::procs::on_path(tool), "{tool} is not on PATH; scripts/setup.sh installs it");
    }
    let t = Instant::now();
    let gw = start_gateway();
    let o = register(w, "wine-desk", &[]);
    assert!(o.status.success(), "register: {}", wine::text(&o));
    let settings = w.c("e2e/wine-desk/thinsvr.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    assert!(text.contains("desktop = \"auto\""), "{}: {text}", settings.display());
    std::fs::write(&settings, text.replace("desktop = \"auto\"", "desktop = \"builtin\"")).unwrap();

    // A scaled display (200 %, a high-DPI laptop's): the programs started
    // from here on draw at 192 DPI, and what is served must still be every
    // physical pixel, with the pointer landing where the viewer clicks.
    let _scaled = ScaledDisplay::set(w, 192);
    let physical = xdotool(&w.xvfb, &["getdisplaygeometry"]).join(" ").replace(' ', "x");
    assert_eq!(display_seen(w), format!("{physical} at 192 dpi"), "the Wine display is not scaled");

    // The office PC's screen: Notepad with a known text.
    const TEXT: &str = "QUARTERLY REPORT 4711";
    let memo = w.c("e2e/memo.txt");
    std::fs::write(&memo, format!("{TEXT}\r\n")).unwrap();
    let x = &w.xvfb;
    let notepad = Proc::start("notepad", &mut w.wine(&["notepad", r"C:\e2e\memo.txt"]), None);
    let mut note_window = String::new();
    w.wait_until("Notepad's window", Duration::from_secs(60), || {
        note_window = xdotool(x, &["search", "--name", "memo"]).pop().unwrap_or_default();
        !note_window.is_empty()
    });
    let geometry = xdotool(x, &["getwindowgeometry", &note_window]);
    let at = |prefix: &str| -> (i32, i32) {
        let line = geometry.iter().find_map(|l| l.trim().strip_prefix(prefix)).unwrap_or_default();
        let (a, b) = line.split_once([',', 'x']).unwrap_or(("0", "0"));
        (a.trim().parse().unwrap_or(0), b.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0))
    };
    let (nx, ny) = at("Position: ");

    let mut server = run_without_rdp_host(w, "wine-desk");

    // The home PC: the brand's Linux thinclient starts xfreerdp on its display.
    let home = xvfb::Xvfb::start();
    let apps = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let tgz = std::fs::File::open(built().a.join("thinapps-E2eWin-1.0.0-linux-x86_64.tar.gz")).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    tar.set_preserve_permissions(true);
    tar.unpack(apps.path()).unwrap();
    let thinclient = apps.path().join("thinapps-E2eWin-1.0.0-linux-x86_64/thinclient");
    let mut cmd = Command::new(&thinclient);
    cmd.args(["connect", "wine-desk", "--password-stdin", "--listen", "127.0.0.1:0"])
        .env("DISPLAY", &home.display)
        .env("HOME", apps.path())
        .env("XDG_CONFIG_HOME", apps.path().join("config"))
        .env_remove("THIN_VIEWER")
        .env_remove("THIN_VIEWER_BUILTIN");
    let mut client = Proc::start("thinclient connect (Linux)", &mut cmd, Some(b"wine e2e copper lantern\n"));
    client.wait_line("listening on", Duration::from_secs(60));
    let mut viewer = String::new();
    w.wait_until("xfreerdp's window on the home display", Duration::from_secs(60), || {
        viewer = xdotool(&home, &["search", "--name", "FreeRDP"]).pop().unwrap_or_default();
        !viewer.is_empty()
    });

    // The whole physical screen is served, and the viewer's window has its size.
    server.wait_stderr("desktop session started", Duration::from_secs(60));
    let log = server.stderr_plain();
    let started = log.lines().find(|l| l.contains("desktop session started")).unwrap_or_default();
    let (pw, ph) = physical.split_once('x').unwrap();
    assert!(started.contains(&format!("width={pw} height={ph}")), "not the physical {physical}: {started}");
    let shown = xdotool(&home, &["getwindowgeometry", &viewer]);
    assert!(shown.iter().any(|l| l.trim() == format!("Geometry: {physical}")), "xfreerdp's window: {shown:?}");

    // Notepad's text on the home screen.
    let out = xvfb::screenshot_dir();
    std::fs::create_dir_all(&out).unwrap();
    let png = out.join("wine-builtin-desktop-viewer.png");
    if let Err(read) = common::ocr::wait_for(&png, TEXT, 2, Duration::from_secs(60), |p| home.shoot(p)) {
        panic!(
            "{}: {TEXT:?} is not on the viewer's screen; Tesseract read:\n{read}\nthinsvr.exe: {}\nthinclient: {}",
            png.display(),
            server.report(),
            client.report()
        );
    }
    println!("wine built-in desktop: {}", png.display());

    // A click into Notepad through the viewer, keys typed there, Ctrl+S.
    let xdo = |args: &[&str]| {
        let st = Command::new("xdotool").args(args).env("DISPLAY", &home.display).status().unwrap();
        assert!(st.success(), "xdotool {args:?}");
    };
    xdo(&["windowfocus", "--sync", &viewer]);
    let (cx, cy) = ((nx + 120).to_string(), (ny + 120).to_string());
    xdo(&["mousemove", "--window", &viewer, &cx, &cy]);
    xdo(&["click", "1"]);
    // Repeats `keys` (ending with Ctrl+S) until Notepad's file holds `text`.
    let until_saved = |server: &mut Proc, text: &str, what: &str, keys: &dyn Fn()| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            keys();
            std::thread::sleep(Duration::from_millis(1000));
            let saved = String::from_utf8_lossy(&std::fs::read(&memo).unwrap_or_default()).into_owned();
            if saved.contains(text) {
                break;
            }
            assert!(Instant::now() < deadline, "{what} (memo.txt: {saved:?}); thinsvr.exe: {}", server.report());
        }
    };
    until_saved(&mut server, "hello4711", "keys typed into the viewer did not reach Notepad on the office PC", &|| {
        xdo(&["key", "ctrl+End"]);
        xdo(&["type", "--delay", "60", "hello4711"]);
        xdo(&["key", "ctrl+s"]);
    });
    // What was typed comes back as changed tiles (the viewer's screen shows it).
    let png = out.join("wine-builtin-desktop-typed.png");
    if let Err(read) = common::ocr::wait_for(&png, "hello4711", 1, Duration::from_secs(30), |p| home.shoot(p)) {
        panic!("{}: the typed text is not on the viewer's screen; read:\n{read}", png.display());
    }

    // The clipboard: text copied at home is pasted into Notepad (Ctrl+V)...
    let xclip = |args: &[&str]| {
        let mut c = Command::new("xclip");
        c.args(["-selection", "clipboard"]).args(args).env("DISPLAY", &home.display).stderr(Stdio::null());
        c
    };
    let mut home_app = xclip(&["-i", "-quiet"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    home_app.stdin.take().unwrap().write_all(b"from home 0815").unwrap();
    until_saved(&mut server, "from home 0815", "text copied at home was not pasted into Notepad", &|| {
        xdo(&["key", "ctrl+End", "ctrl+v", "ctrl+s"])
    });
    // ... and Notepad's text, copied there (Ctrl+A, Ctrl+C), is pasted at home.
    xdo(&["key", "ctrl+a", "ctrl+c"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = xclip(&["-o"]).output().unwrap();
        let pasted = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        if pasted.starts_with(&format!("{TEXT}\nhello4711")) && pasted.contains("from home 0815") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Notepad's copy is not on the home clipboard (it holds {pasted:?}); thinsvr.exe: {}",
            server.report()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = home_app.kill();
    let _ = home_app.wait();
    assert!(client.child.try_wait().unwrap().is_none(), "thinclient ended: {}", client.report());
    drop(client);
    drop(server);
    drop(notepad);
    drop(gw);
    eprintln!("built-in desktop of thinsvr.exe under Wine: {:.1} s", t.elapsed().as_secs_f64());
}
