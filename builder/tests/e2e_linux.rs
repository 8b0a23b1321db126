//! End to end: `builder new` + `builder build --target linux` (x86_64) for a
//! fresh brand. The build runs once and every test reads its output.

mod common;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

struct Built {
    out: PathBuf,
    again: PathBuf,
    json: serde_json::Value,
}

fn built() -> &'static Built {
    // Built once; a failed build fails every test without being retried.
    static B: OnceLock<Result<Built, String>> = OnceLock::new();
    let r = B.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-linux");
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            let run = |args: &[&str]| {
                let o = Command::new(common::builder_bin()).args(args).current_dir(&root).output().unwrap();
                assert!(
                    o.status.success(),
                    "builder {args:?}:\n{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                o
            };
            run(&[
                "new",
                "--app-id",
                "E2eLin",
                "--dir",
                "brand",
                "--gateway-url",
                "https://gw.e2e.example:8443/thingate/",
            ]);
            let o = run(&[
                "--json",
                "build",
                "--brand",
                "brand",
                "--target",
                "linux",
                "--linux-arch",
                "x86_64",
                "--out",
                "out",
            ]);
            let json = serde_json::from_slice(&o.stdout).unwrap();
            run(&["build", "--brand", "brand", "--target", "linux", "--linux-arch", "x86_64", "--out", "again"]);
            Built { out: root.join("out"), again: root.join("again"), json }
        })
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_else(|| "the build panicked".into()))
    });
    r.as_ref().unwrap_or_else(|e| panic!("shared build failed: {e}"))
}

const TGZ: &str = "thingate-E2eLin-1.0.0-linux-x86_64.tar.gz";

fn entries() -> Vec<(String, u32, Vec<u8>)> {
    let f = std::fs::File::open(built().out.join(TGZ)).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mode = e.header().mode().unwrap();
            assert_eq!((e.header().uid().unwrap(), e.header().gid().unwrap()), (0, 0));
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, mode, data)
        })
        .collect()
}

fn file(name: &str) -> (u32, Vec<u8>) {
    let full = format!("thingate-E2eLin-1.0.0-linux-x86_64/{name}");
    entries()
        .into_iter()
        .find(|(n, _, _)| *n == full)
        .map(|(_, m, d)| (m, d))
        .unwrap_or_else(|| panic!("{full} missing"))
}

#[test]
fn bundle_holds_the_gateway_and_its_rendered_files() {
    let (mode, bin) = file("thingate");
    assert_eq!(mode, 0o755);
    assert_eq!(&bin[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bin[18], bin[19]]), 62, "x86_64 ELF");
    let (_, ini) = file("ThinGate.ini");
    let ini = String::from_utf8(ini).unwrap();
    assert!(ini.contains("ListenPort 8443"), "{ini}");
    assert!(ini.contains("ServerCert ThinGate.cer"));
    assert_eq!(file("ThinGate.key").0, 0o600);
    let unit = String::from_utf8(file("thingate-e2elin.service").1).unwrap();
    assert!(
        unit.contains("ExecStart=/opt/thingate-e2elin/thingate run --config /opt/thingate-e2elin/ThinGate.ini"),
        "{unit}"
    );
    let sysctl = String::from_utf8(file("sysctl.d/90-thingate-e2elin.conf").1).unwrap();
    assert!(sysctl.contains("net.core.somaxconn = 1024") && sysctl.contains("fs.file-max = 1048575"));
    let limits = String::from_utf8(file("limits.d/90-thingate-e2elin.conf").1).unwrap();
    assert!(limits.contains("nofile      1048575") && limits.contains("memlock     unlimited"));
    let (mode, sh) = file("install.sh");
    assert_eq!(mode, 0o755);
    assert!(String::from_utf8(sh).unwrap().starts_with("#!/bin/sh"));
}

#[test]
fn certificate_in_the_bundle_is_the_brands() {
    let (_, cer) = file("ThinGate.cer");
    let brand = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-linux/brand/certs/ThinGate.cer");
    assert_eq!(cer, std::fs::read(brand).unwrap());
}

#[test]
fn sums_and_manifest_list_every_output() {
    let b = built();
    let sums = std::fs::read_to_string(b.out.join("SHA256SUMS")).unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(b.out.join(TGZ)).unwrap()));
    assert_eq!(sums, format!("{hash}  {TGZ}\n"));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.out.join("build-manifest.json")).unwrap()).unwrap();
    assert_eq!(m["outputs"][0]["sha256"], hash.as_str());
    assert_eq!(m["app_id"], "E2eLin");
    assert!(m["brand_digest"].as_str().unwrap().len() == 64);
    assert!(m["tools"]["rustc"].as_str().unwrap().starts_with("rustc "));
    assert_eq!(b.json["outputs"][0]["name"], TGZ);
}

#[test]
fn two_builds_give_identical_bundles() {
    let b = built();
    assert_eq!(std::fs::read(b.out.join(TGZ)).unwrap(), std::fs::read(b.again.join(TGZ)).unwrap());
}
