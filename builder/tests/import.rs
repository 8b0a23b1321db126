//! `builder import`: an original customisation (fixture files written from the
//! manual, `tests/fixtures/original/`; its CA and gateway certificate are made
//! by openssl at run time, RSA with SHA-512 and a PKCS#1 key as the original's
//! tools make them) becomes a brand folder that passes `builder check`; bad
//! input is named by file and line, and nothing is written.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn builder(args: &[&str], cwd: &Path) -> Output {
    Command::new(common::builder_bin()).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A copy of the fixture tree in `root/original` with a CA in its
/// EntryPoint.dat and `bin/ThinGate.cer`/`ThinGate.key` for `host`.
fn original(root: &Path, host: &str) -> PathBuf {
    let orig = root.join("original");
    common::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/original"), &orig);
    let work = root.join("ca-work");
    std::fs::create_dir_all(&work).unwrap();
    openssl(&work, &["genrsa", "-traditional", "-out", "ca.key", "2048"]);
    openssl(
        &work,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha512",
            "-days",
            "3650",
            "-subj",
            "/CN=Mikaka Root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-out",
            "ca.cer",
        ],
    );
    let bin = orig.join("src/bin");
    openssl(&work, &["genrsa", "-traditional", "-out", bin.join("ThinGate.key").to_str().unwrap(), "2048"]);
    openssl(
        &work,
        &[
            "req",
            "-new",
            "-key",
            bin.join("ThinGate.key").to_str().unwrap(),
            "-subj",
            &format!("/CN={host}"),
            "-out",
            "gw.csr",
        ],
    );
    std::fs::write(work.join("ext"), format!("subjectAltName=DNS:{host}\n")).unwrap();
    openssl(
        &work,
        &[
            "x509",
            "-req",
            "-in",
            "gw.csr",
            "-CA",
            "ca.cer",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-sha512",
            "-days",
            "365",
            "-extfile",
            "ext",
            "-out",
            bin.join("ThinGate.cer").to_str().unwrap(),
        ],
    );
    let ep = bin.join("EntryPoint.dat");
    let ca = std::fs::read_to_string(work.join("ca.cer")).unwrap();
    let rest = std::fs::read_to_string(&ep).unwrap();
    std::fs::write(&ep, format!("{ca}\n{rest}")).unwrap();
    orig
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn import_carries_an_original_customisation_over() {
    let tmp = tempfile::tempdir().unwrap();
    let orig = original(tmp.path(), "gw.mikaka.example");
    let o = builder(&["import", orig.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(!out.contains("PRIVATE KEY"), "a key was printed: {out}");
    let dir = tmp.path().join("brands/mikaka");

    // The manifest: same AppId, RPC port, system name, gateway URL; names from the patches and Vars.cs.
    let m: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("brand.toml")).unwrap()).unwrap();
    assert_eq!(m["app_id"].as_str(), Some("Mikaka"));
    assert_eq!(m["rpc_port"].as_integer(), Some(9877));
    assert_eq!(m["system_name"].as_str(), Some("Mikaka Corporation Private Gateway 001"));
    assert_eq!(m["gateway_url"].as_str(), Some("https://gw.mikaka.example/thingate/"));
    assert_eq!(m["product_name"].as_str(), Some("Mikaka Telework"));
    assert_eq!(m["company"].as_str(), Some("Mikaka Corporation"));

    // Strings: the window titles of both languages.
    let ja = std::fs::read_to_string(dir.join("strtable_ja.patch.stb")).unwrap();
    assert!(ja.contains("APP_TITLE_CLIENT\tミカカ テレワーク 自宅のPC"), "{ja}");
    assert!(ja.contains("APP_TITLE_SERVER\tミカカ テレワーク 会社のPC"), "{ja}");
    let en = std::fs::read_to_string(dir.join("strtable_en.patch.stb")).unwrap();
    assert!(en.contains("APP_TITLE_CLIENT\tMikaka Telework Home PC"), "{en}");

    // Artwork: deskclient.bmp fitted into header.bmp (white margins, the blue band in the middle).
    let header = image::open(dir.join("artwork/header.bmp")).unwrap().to_rgb8();
    assert_eq!(header.dimensions(), (150, 57));
    assert_eq!(*header.get_pixel(75, 28), image::Rgb([20, 40, 120]), "the band");
    assert_eq!(*header.get_pixel(75, 2), image::Rgb([255, 255, 255]), "the background");

    // Certificates: the original's, the key private.
    let bin = orig.join("src/bin");
    assert_eq!(
        std::fs::read(dir.join("certs/ThinGate.cer")).unwrap(),
        std::fs::read(bin.join("ThinGate.cer")).unwrap()
    );
    assert_eq!(
        std::fs::read(dir.join("certs/ThinGate.key")).unwrap(),
        std::fs::read(bin.join("ThinGate.key")).unwrap()
    );
    #[cfg(unix)]
    assert_eq!(mode(&dir.join("certs/ThinGate.key")), 0o600);
    let ca = std::fs::read_to_string(dir.join("certs/ca.cer")).unwrap();
    assert!(std::fs::read_to_string(tmp.path().join("ca-work/ca.cer")).unwrap().trim() == ca.trim());

    // What could not come along is listed.
    for item in ["$APPFULL$", "$APPVERYSHORT$", "DU_HELLO_TITLE", "AboutBox.bmp", "certs/ca.key", "icon"] {
        assert!(out.contains(item), "{item} is not listed: {out}");
    }
    // No stray staging folder, and the result passes the check (found without --brand).
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("brands")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("mikaka")]);
    let c = builder(&["check"], tmp.path());
    assert!(c.status.success(), "{}", text(&c));
    assert!(text(&c).contains("brand Mikaka is valid"), "{}", text(&c));
    // Never over an existing brand.
    let again = builder(&["import", orig.to_str().unwrap()], tmp.path());
    assert!(!again.status.success() && text(&again).contains("already exists"), "{}", text(&again));
}

/// Each fault of the original tree is named by file and line with the fix,
/// and nothing is written.
#[test]
fn bad_originals_are_named_and_nothing_is_written() {
    let cases: Vec<(&str, &str, &str, &str, &[&str])> = vec![
        (
            "Vars/Vars.props",
            "<APP_ID_PREFIX>Mikaka</APP_ID_PREFIX>",
            "<APP_ID_PREFIX>Private</APP_ID_PREFIX>",
            "",
            &["Vars/Vars.props:5", "AppId \"Private\" differs from \"Mikaka\"", "manual 5-2"],
        ),
        (
            "bin/hamcore/strtable_en.patch.stb",
            "$APP_ID_PREFIX$\t\t\t\tMikaka",
            "$APP_ID_PREFIX$\t\t\t\tPrivate",
            "",
            &["strtable_en.patch.stb:19", "differs"],
        ),
        ("Vars/Vars.h", "9877", "3389", "", &["Vars/Vars.h:11", "DS_RPC_PORT: 3389 is the Remote Desktop port"]),
        ("Vars/Vars.h", "\"Mikaka\"\n", "\"Mikaka-Corp\"\n", "", &["Vars/Vars.h:8", "APP_ID_PREFIX"]),
        (
            "bin/EntryPoint.dat",
            "https://gw.mikaka.example/thingate/",
            "http://gw.mikaka.example/thingate/",
            "",
            &["bin/EntryPoint.dat", "https"],
        ),
        (
            "bin/EntryPoint.dat",
            "-----BEGIN CERTIFICATE-----",
            "",
            "",
            &["bin/EntryPoint.dat: no CA certificate", "--new-ca"],
        ),
        // The original apps did not check names: a certificate for another host does not pass.
        (
            "bin/EntryPoint.dat",
            "https://gw.mikaka.example/",
            "https://other.mikaka.example/",
            "",
            &["certs/ThinGate.cer", "other.mikaka.example", "--new-ca"],
        ),
    ];
    for (file, from, to, _, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let orig = original(tmp.path(), "gw.mikaka.example");
        let path = orig.join("src").join(file);
        let t = std::fs::read_to_string(&path).unwrap();
        assert!(t.contains(from), "{file} holds {from:?}");
        std::fs::write(&path, t.replacen(from, to, 1)).unwrap();
        let o = builder(&["import", orig.to_str().unwrap()], tmp.path());
        assert_eq!(o.status.code(), Some(1), "{file}: {}", text(&o));
        for e in expect {
            assert!(text(&o).contains(e), "{file}: {e:?} missing in {}", text(&o));
        }
        assert!(!text(&o).contains("PRIVATE KEY"));
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("brands"))
            .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{file}: something was written: {left:?}");
    }
    // A folder that is no original tree.
    let tmp = tempfile::tempdir().unwrap();
    let o = builder(&["import", tmp.path().to_str().unwrap()], tmp.path());
    assert!(!o.status.success() && text(&o).contains("src/Vars and src/bin"), "{}", text(&o));
}

/// `--new-ca`: the original's certificates stay behind (here: none at all),
/// a new CA and gateway certificate of the chosen type are made.
#[test]
fn new_ca_replaces_the_originals_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let orig = original(tmp.path(), "gw.mikaka.example");
    std::fs::remove_file(orig.join("src/bin/ThinGate.cer")).unwrap();
    std::fs::remove_file(orig.join("src/bin/ThinGate.key")).unwrap();
    let o = builder(&["import", orig.to_str().unwrap()], tmp.path());
    assert!(
        !o.status.success() && text(&o).contains("bin/ThinGate.cer") && text(&o).contains("--new-ca"),
        "{}",
        text(&o)
    );
    let o = builder(&["import", orig.to_str().unwrap(), "--new-ca", "--key-type", "rsa", "--dir", "b"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let key = std::fs::read_to_string(tmp.path().join("b/certs/ca.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    assert_eq!(mode(&tmp.path().join("b/certs/ca.key")), 0o600);
    assert!(builder(&["check", "--brand", "b"], tmp.path()).status.success());
}
