//! End to end: `builder new` + `builder build --target windows` for fresh
//! brands: a plain one (built twice, to check reproducibility) and a signed one
//! (the warm rebrand). The builds run once and every test reads their output.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

struct Built {
    a: PathBuf,
    a_again: PathBuf,
    signed: PathBuf,
    signed_brand: PathBuf,
}

fn builder(root: &Path, args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let o =
        Command::new(common::builder_bin()).args(args).current_dir(root).envs(envs.iter().cloned()).output().unwrap();
    assert!(
        o.status.success(),
        "builder {args:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn built() -> &'static Built {
    // Built once; a failed build fails every test without being retried.
    static B: OnceLock<Result<Built, String>> = OnceLock::new();
    let r = B.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-windows");
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            builder(
                &root,
                &[
                    "new",
                    "--app-id",
                    "E2eWin",
                    "--dir",
                    "a",
                    "--rpc-port",
                    "9911",
                    "--gateway-url",
                    "https://127.0.0.1:8443/thingate/",
                ],
                &[],
            );
            std::fs::write(
                root.join("a/strtable_en.patch.stb"),
                "# e2e patch\nAPP_TITLE_CLIENT\t%PRODUCT% Home\nAPP_WELCOME\tE2E patched welcome\n",
            )
            .unwrap();
            let t = Instant::now();
            builder(&root, &["build", "--brand", "a", "--target", "windows", "--out", "out-a"], &[]);
            eprintln!("build --target windows (E2eWin): {:.0} s", t.elapsed().as_secs_f64());
            builder(
                &root,
                &["new", "--app-id", "E2eSig", "--dir", "s", "--rpc-port", "9912", "--self-signed-codesign"],
                &[],
            );
            let pw = std::fs::read_to_string(root.join("s/certs/codesign.password")).unwrap();
            let t = Instant::now();
            builder(
                &root,
                &["build", "--brand", "s", "--target", "windows", "--sign", "--out", "out-s"],
                &[("THIN_CODESIGN_PASSWORD_E2ESIG", pw)],
            );
            eprintln!("warm rebrand, signed (E2eSig): {:.0} s", t.elapsed().as_secs_f64());
            builder(&root, &["build", "--brand", "a", "--target", "windows", "--out", "out-a2"], &[]);
            Built {
                a: root.join("out-a"),
                a_again: root.join("out-a2"),
                signed: root.join("out-s"),
                signed_brand: root.join("s"),
            }
        })
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "the build panicked".into()))
    });
    r.as_ref().unwrap_or_else(|e| panic!("shared build failed: {e}"))
}

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

#[test]
fn setup_is_a_64_bit_nsis_installer() {
    let exe = std::fs::read(built().a.join("E2eWin-1.0.0-setup.exe")).unwrap();
    let pe = u32::from_le_bytes(exe[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(&exe[pe..pe + 4], b"PE\0\0");
    assert_eq!(u16::from_le_bytes([exe[pe + 4], exe[pe + 5]]), 0x8664, "x86-64");
    assert!(contains(&exe, b"NullsoftInst"), "NSIS data");
}

#[test]
fn msi_carries_the_brand_and_upgrades_by_app_id() {
    let msi = built().a.join("E2eWin-1.0.0.msi");
    let props = msi_table(&msi, "Property");
    let upgrade = builder::build::compiled::brand_guid("E2eWin", "upgrade");
    assert!(props.contains(&format!("UpgradeCode\t{{{upgrade}}}")), "{props}");
    assert!(props.contains("ProductName\tE2eWin Telework"), "{props}");
    assert!(msi_table(&msi, "Upgrade").contains("WIX_UPGRADE_DETECTED"));
    assert!(msi_table(&msi, "ServiceInstall").contains("E2eWinThinServer"));
    assert!(msi_table(&msi, "Registry").contains("Software\\E2eWin"));
    let shortcuts = msi_table(&msi, "Shortcut");
    assert!(shortcuts.contains("E2eWin Telework Home"), "patched title in the shortcut: {shortcuts}");
    assert!(msi_table(&msi, "Directory").contains("E2eWin"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let nsi = std::fs::read_to_string(target.join("builder/stage/E2eWin/windows/setup.nsi")).unwrap();
    for line in [
        r#"InstallDir "$PROGRAMFILES64\E2eWin""#,
        r#"WriteRegStr HKLM "Software\E2eWin" "InstallDir" "$INSTDIR""#,
        "Target amd64-unicode",
        r#"!define SERVICE "E2eWinThinServer""#,
    ] {
        assert!(nsi.contains(line), "{line} missing from setup.nsi");
    }
}

#[test]
fn apps_carry_the_brand_resources_and_strings() {
    let exe = std::fs::read(built().a.join("thinclient.exe")).unwrap();
    assert!(contains(&exe, &utf16("E2eWin Telework")), "ProductName in the version resource");
    assert!(contains(&exe, &utf16("E2eWin")), "CompanyName");
    // The compiled brand handed to the apps' build carries the patch; the text
    // shows in the exe once the apps call `strings::text("APP_WELCOME")`.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let patch = std::fs::read_to_string(target.join("builder/brands/E2eWin/strtable_en.patch.stb")).unwrap();
    assert!(patch.contains("E2E patched welcome"), "{patch}");
    assert!(contains(&exe, b"https://127.0.0.1:8443/thingate/"), "entry point compiled in");
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
        ["E2eWin-1.0.0-portable.zip", "E2eWin-1.0.0-setup.exe", "E2eWin-1.0.0.msi", "thinclient.exe", "thinsvr.exe"]
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
    assert_eq!(m["outputs"].as_array().unwrap().len(), 5);
}

#[test]
fn rebuilding_the_same_brand_gives_identical_exes_and_zip() {
    let b = built();
    for f in ["thinclient.exe", "thinsvr.exe", "E2eWin-1.0.0-portable.zip"] {
        assert_eq!(std::fs::read(b.a.join(f)).unwrap(), std::fs::read(b.a_again.join(f)).unwrap(), "{f} differs");
    }
}

#[test]
fn signed_build_verifies_against_the_brand_certificate() {
    let b = built();
    let cert = b.signed_brand.join("certs/codesign.cer");
    for f in ["thinclient.exe", "thinsvr.exe", "E2eSig-1.0.0-setup.exe", "E2eSig-1.0.0.msi"] {
        let o = Command::new("osslsigncode")
            .arg("verify")
            .arg("-CAfile")
            .arg(&cert)
            .arg("-in")
            .arg(b.signed.join(f))
            .output()
            .unwrap();
        assert!(o.status.success(), "{f}: {}", String::from_utf8_lossy(&o.stdout));
    }
    let plain = Command::new("osslsigncode")
        .arg("verify")
        .arg("-CAfile")
        .arg(&cert)
        .arg("-in")
        .arg(b.a.join("thinclient.exe"))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "an unsigned build does not verify");
}
