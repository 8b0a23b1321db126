//! `builder ci init`: the pipelines, and their one script run on a fresh brand
//! with the secrets in environment variables. The script's `builder build` is
//! a stand-in here (the real one is a full cross build, tested by `outputs`):
//! it runs the real `builder check` on the brand the script hands to the build,
//! opens the staged PKCS#12 with the password from the variable the manifest
//! names (as `--sign` does), and writes outputs holding the staged gateway key.
//! Every other step of the script is the real one.
#![cfg(unix)]

mod common;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn builder(args: &[&str], cwd: &Path) -> Output {
    Command::new(common::builder_bin()).args(args).current_dir(cwd).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const STAND_IN: &str = r#"#!/bin/sh
set -eu
[ "$1" = build ] || exec "$REAL_BUILDER" "$@"
echo "build $*" >>"$STAND_IN_LOG"
shift
brand=""; out=""; sign=no
while [ $# -gt 0 ]; do
    case "$1" in
        --brand) brand="$2"; shift ;;
        --out) out="$2"; shift ;;
        --sign) sign=yes ;;
    esac
    shift
done
"$REAL_BUILDER" check --brand "$brand" >/dev/null
if [ "$sign" = yes ]; then
    openssl pkcs12 -in "$brand/certs/codesign.p12" -passin env:THIN_CODESIGN_PASSWORD_MIKAKA -nokeys -noout
fi
mkdir -p "$out"
echo "setup" >"$out/Mikaka-1.0.0-setup.exe"
(umask 077 && tar czf "$out/thingate-Mikaka-1.0.0-linux-x86_64.tar.gz" -C "$brand/certs" ThinGate.cer ThinGate.key)
(cd "$out" && sha256sum Mikaka-1.0.0-setup.exe thingate-Mikaka-1.0.0-linux-x86_64.tar.gz >SHA256SUMS)
"#;

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    tmpdir: PathBuf,
    stand_in: PathBuf,
    log: PathBuf,
    gateway_key: String,
    ca_key: String,
    p12_b64: String,
    password: String,
}

fn b64(data: &[u8]) -> String {
    let o = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    o.stdin.as_ref().unwrap().write_all(data).unwrap();
    String::from_utf8(o.wait_with_output().unwrap().stdout).unwrap()
}

/// A brand repository made by `builder new --self-signed-codesign`, its keys
/// read into memory (the secrets) and removed from the checkout.
fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    let o = builder(&["new", "--app-id", "Mikaka", "--self-signed-codesign"], &root);
    assert!(o.status.success(), "{}", text(&o));
    let certs = root.join("brands/mikaka/certs");
    let gateway_key = std::fs::read_to_string(certs.join("ThinGate.key")).unwrap();
    let ca_key = std::fs::read_to_string(certs.join("ca.key")).unwrap();
    let p12_b64 = b64(&std::fs::read(certs.join("codesign.p12")).unwrap());
    let password = std::fs::read_to_string(certs.join("codesign.password")).unwrap();
    for f in ["ThinGate.key", "ca.key", "codesign.p12", "codesign.password", "codesign.key"] {
        std::fs::remove_file(certs.join(f)).unwrap();
    }
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let stand_in = tmp.path().join("stand-in-builder");
    std::fs::write(&stand_in, STAND_IN).unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tmp.path().join("build.log");
    Repo { root, tmpdir, stand_in, log, gateway_key, ca_key, p12_b64, password, _tmp: tmp }
}

impl Repo {
    fn run_script(&self, env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("sh");
        c.arg("ci/build-brand.sh")
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("TMPDIR", &self.tmpdir)
            .env("BUILDER", &self.stand_in)
            .env("REAL_BUILDER", common::builder_bin())
            .env("STAND_IN_LOG", &self.log);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// What must never be printed: the keys' PEM bodies, the PKCS#12 and its password.
    fn assert_nothing_secret_in(&self, out: &str) {
        for key in [&self.gateway_key, &self.ca_key] {
            for line in key.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!out.contains(line), "a key line was printed: {out}");
            }
        }
        assert!(!out.contains(&self.p12_b64[..64]), "the PKCS#12 was printed");
        assert!(!out.contains(self.password.trim()), "the password was printed");
        assert!(!out.contains("PRIVATE KEY"), "{out}");
    }

    /// No key left on disk: the private folder is gone and the checkout holds none.
    fn assert_no_key_left(&self) {
        assert_eq!(std::fs::read_dir(&self.tmpdir).unwrap().count(), 0, "the script's private folder was left behind");
        for e in walkdir::WalkDir::new(&self.root).into_iter().filter_map(|e| e.ok()) {
            let p = e.path();
            if e.file_type().is_file() && !p.starts_with(self.root.join("artifacts")) {
                assert!(!common::holds_secret(p), "a secret was left in {}", p.display());
            }
        }
        assert!(common::key_exposures(&self.root).is_empty(), "{:?}", common::key_exposures(&self.root));
    }
}

#[test]
fn ci_init_writes_both_pipelines_around_one_script() {
    let r = repo();
    let args = ["ci", "init", "--source-url", "https://git.example.org/thintelework.git", "--source-ref", "0123abcd"];
    let o = builder(&[&args[..], &["--github"]].concat(), &r.root);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("note: using the brand in brands/mikaka"), "{}", text(&o));
    let script = r.root.join("ci/build-brand.sh");
    assert_eq!(std::fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o755);
    let gh = std::fs::read_to_string(r.root.join(".github/workflows/brand.yml")).unwrap();
    for want in [
        "sh ci/build-brand.sh",
        "apt-get install -y",
        "nsis",
        "target add x86_64-pc-windows-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl",
        "pip\" install --quiet --require-hashes --only-binary=:all: -r .thintelework/scripts/zig-requirements.txt",
        "/bin/cargo-zigbuild\" \"$HOME/.cargo/bin/cargo-zigbuild\"",
        ".thintelework/target",
        "actions/cache@v4",
        "${{ secrets.THIN_GATEWAY_KEY_BASE64 }}",
        "${{ secrets.THIN_CODESIGN_P12_BASE64 }}",
        "THIN_CODESIGN_PASSWORD_MIKAKA: ${{ secrets.THIN_CODESIGN_PASSWORD_MIKAKA }}",
        "path: artifacts/",
        "THIN_SOURCE_REF: 0123abcd",
    ] {
        assert!(gh.contains(want), "{want:?} missing in the GitHub workflow:\n{gh}");
    }
    let o = builder(&[&args[..], &["--gitlab"]].concat(), &r.root);
    assert!(o.status.success(), "{}", text(&o));
    let gl = std::fs::read_to_string(r.root.join(".gitlab-ci.yml")).unwrap();
    for want in [
        "sh ci/build-brand.sh",
        "- .thintelework/target/",
        "paths:\n      - artifacts/",
        "THIN_SOURCE_URL: \"https://git.example.org/thintelework.git\"",
        "type \"Variable\", not \"File\"",
        "pip\" install --quiet --require-hashes --only-binary=:all: -r .thintelework/scripts/zig-requirements.txt",
    ] {
        assert!(gl.contains(want), "{want:?} missing in the GitLab pipeline:\n{gl}");
    }
    // Both pipelines install zig and cargo-zigbuild from the builder's own
    // pinned list, read from its checkout at `.thintelework`: it must exist
    // there and pin every wheel by hash.
    let pins = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/zig-requirements.txt"))
        .expect("scripts/zig-requirements.txt, which the pipelines install from");
    for name in ["ziglang==", "cargo-zigbuild=="] {
        assert!(pins.lines().any(|l| l.starts_with(name)), "{name} in scripts/zig-requirements.txt");
    }
    assert!(pins.matches("--hash=sha256:").count() >= 4, "every wheel pinned by sha256:\n{pins}");
    for f in [&gh, &gl, &std::fs::read_to_string(&script).unwrap()] {
        assert!(!f.contains("PRIVATE KEY") && !f.contains(r.password.trim()));
    }
    // Never over an existing pipeline.
    let again = builder(&[&args[..], &["--github"]].concat(), &r.root);
    assert!(!again.status.success() && text(&again).contains("already exists"), "{}", text(&again));
}

#[test]
fn the_script_builds_with_secrets_from_the_environment_and_keeps_none() {
    let r = repo();
    let o = builder(&["ci", "init", "--github", "--source-ref", "0123abcd"], &r.root);
    assert!(o.status.success(), "{}", text(&o));
    let ca_b64 = b64(r.ca_key.as_bytes());
    let o = r.run_script(&[
        ("THIN_GATEWAY_KEY", &r.gateway_key),
        ("THIN_CA_KEY_BASE64", &ca_b64),
        ("THIN_CODESIGN_P12_BASE64", &r.p12_b64),
        ("THIN_CODESIGN_PASSWORD_MIKAKA", r.password.trim()),
        ("THIN_ARTIFACTS", "artifacts"),
        ("GITHUB_RUN_NUMBER", "42"),
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    r.assert_nothing_secret_in(&out);
    r.assert_no_key_left();
    // The build was asked to sign everything, on a copy of the brand outside
    // the checkout, numbered by the CI run.
    let log = std::fs::read_to_string(&r.log).unwrap();
    assert!(log.contains("--sign") && log.contains("--target all"), "{log}");
    assert!(log.contains("--build-number 42"), "{log}");
    assert!(log.contains(&r.tmpdir.display().to_string()), "{log}");
    // The artifacts: the outputs and SHA256SUMS, which verify; the bundle keeps 0600 and the secret's key.
    let art = r.root.join("artifacts");
    let v = Command::new("sha256sum").args(["--check", "SHA256SUMS"]).current_dir(&art).output().unwrap();
    assert!(v.status.success(), "{}", text(&v));
    let bundle = art.join("thingate-Mikaka-1.0.0-linux-x86_64.tar.gz");
    assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o600);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&bundle).unwrap()));
    let mut found = false;
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("ThinGate.key") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert_eq!(s.trim(), r.gateway_key.trim());
            found = true;
        }
    }
    assert!(found, "the gateway key went into the bundle");
}

#[test]
fn the_script_fails_on_bad_secrets_without_printing_or_keeping_them() {
    let r = repo();
    assert!(builder(&["ci", "init", "--gitlab", "--source-ref", "0123abcd"], &r.root).status.success());
    let other = {
        let k = rcgen::KeyPair::generate().unwrap();
        k.serialize_pem()
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "set the CI secret THIN_GATEWAY_KEY"),
        (vec![("THIN_GATEWAY_KEY", &other)], "this key does not match the certificate"),
        (
            vec![("THIN_GATEWAY_KEY", &r.gateway_key), ("THIN_CA_KEY", &other)],
            "THIN_CA_KEY does not belong to certs/ca.cer",
        ),
        (vec![("THIN_GATEWAY_KEY_BASE64", "not base64!")], "THIN_GATEWAY_KEY_BASE64 is not base64"),
        (
            vec![("THIN_GATEWAY_KEY", &r.gateway_key), ("THIN_CODESIGN_P12_BASE64", &r.p12_b64)],
            "THIN_CODESIGN_PASSWORD_MIKAKA (its password) is not",
        ),
    ];
    for (env, want) in cases {
        let o = r.run_script(&env);
        let out = text(&o);
        assert!(!o.status.success(), "{want}: {out}");
        assert!(out.contains(want), "{want:?} missing: {out}");
        r.assert_nothing_secret_in(&out);
        assert!(!out.contains(other.lines().nth(1).unwrap()), "{out}");
        r.assert_no_key_left();
        assert!(!r.root.join("artifacts").exists());
    }
}
