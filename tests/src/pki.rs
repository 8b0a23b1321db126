//! A throw-away private PKI for tests: CA, gateway certificate for
//! 127.0.0.1/localhost, and variants (expired, other CA).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};

/// CA and gateway certificate, PEM.
pub struct Pki {
    /// CA certificate.
    pub ca_pem: String,
    /// Gateway certificate.
    pub cert_pem: String,
    /// Gateway key.
    pub key_pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// A fresh CA and a valid gateway certificate.
    pub fn new() -> Self {
        let issuer = ca();
        let (cert_pem, key_pem) = leaf(&issuer, false);
        Self { ca_pem: issuer.pem(), cert_pem, key_pem, issuer }
    }

    /// A gateway certificate from this CA that expired yesterday.
    pub fn expired_leaf(&self) -> (String, String) {
        leaf(&self.issuer, true)
    }

    /// A new valid gateway certificate from this CA (a renewal).
    pub fn renewed_leaf(&self) -> (String, String) {
        leaf(&self.issuer, false)
    }

    /// A gateway certificate from some other CA.
    pub fn foreign_leaf() -> (String, String) {
        leaf(&ca(), false)
    }

    /// Writes ThinGate.cer and ThinGate.key into `dir`.
    pub fn write_gateway(&self, dir: &Path) {
        std::fs::write(dir.join("ThinGate.cer"), &self.cert_pem).unwrap();
        std::fs::write(dir.join("ThinGate.key"), &self.key_pem).unwrap();
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, expired: bool) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, "gateway");
    let now = time::OffsetDateTime::now_utc();
    if expired {
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    } else {
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(365);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}
