//! Helpers shared by the builder's tests: certificates made at test time (no
//! private key is committed), fixture copies, the builder binary.
#![allow(dead_code)]

/// Tesseract OCR of screenshots, from the end-to-end test harness.
#[allow(unused_imports)] // only the e2e tests read screenshots
pub use thin_e2e::ocr;
pub mod wine;
pub mod xvfb;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// What to do to the certificates of a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certs {
    /// A valid CA and gateway certificate for gw.example.org.
    Good,
    /// The gateway certificate expired a year ago.
    Expired,
    /// Valid for another host.
    WrongHost,
    /// Signed by a different CA.
    OtherCa,
    /// The key belongs to another certificate.
    KeyMismatch,
}

fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn ca() -> (CertificateParams, KeyPair, String) {
    let k = key();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "Fixture CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = p.self_signed(&k).unwrap().pem();
    (p, k, pem)
}

fn gateway(issuer: &Issuer<'_, KeyPair>, host: &str, expired: bool) -> (String, KeyPair) {
    let k = key();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, host);
    p.subject_alt_names = vec![SanType::DnsName(host.to_string().try_into().unwrap())];
    if expired {
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(730);
        p.not_after = now - Duration::days(365);
    }
    (p.signed_by(&k, issuer).unwrap().pem(), k)
}

/// Writes `certs/` of a brand folder.
pub fn write_certs(dir: &Path, what: Certs) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (p, k, ca_pem) = ca();
    let ca_key = k.serialize_pem();
    let issuer = Issuer::new(p, k);
    let host = if what == Certs::WrongHost { "other.example.org" } else { "gw.example.org" };
    let (gw_pem, mut gw_key) = if what == Certs::OtherCa {
        let (p2, k2, _) = ca();
        gateway(&Issuer::new(p2, k2), host, false)
    } else {
        gateway(&issuer, host, what == Certs::Expired)
    };
    if what == Certs::KeyMismatch {
        gw_key = key();
    }
    std::fs::write(certs.join("ca.cer"), ca_pem).unwrap();
    write_0600(&certs.join("ca.key"), &ca_key);
    std::fs::write(certs.join("ThinGate.cer"), gw_pem).unwrap();
    write_0600(&certs.join("ThinGate.key"), &gw_key.serialize_pem());
}

fn write_0600(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The fixture folder `name` under `tests/fixtures/invalid`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid").join(name)
}

/// The builder binary.
pub fn builder_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_builder"))
}
