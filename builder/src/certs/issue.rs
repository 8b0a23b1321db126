//! Making certificates with rcgen (ECDSA P-256 with SHA-256): the brand's CA, the
//! gateway certificate it signs, and a self-signed test code-signing identity.
//! Keys are written 0600; existing files are moved to a dated backup first.

use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::manifest::CertPaths;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use std::path::PathBuf;
use time::{Duration, OffsetDateTime};

fn cert_err(e: rcgen::Error) -> Error {
    Error::Cert(e.to_string())
}

fn params(cn: &str, days: i64) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    Ok(p)
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)
}

/// A new CA: `(certificate PEM, key PEM)`, valid 20 years.
pub fn make_ca(system_name: &str) -> Result<(String, String)> {
    let key = new_key()?;
    let mut p = params(&format!("{system_name} Root CA"), 20 * 365)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = p.self_signed(&key).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A gateway certificate for `hosts` (DNS names or IP addresses) signed by the CA:
/// `(certificate PEM, key PEM)`, valid 3 years.
pub fn make_gateway(ca_cert_pem: &str, ca_key_pem: &str, hosts: &[String]) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(cert_err)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(cert_err)?;
    let key = new_key()?;
    let first = hosts.first().ok_or_else(|| Error::Usage("give at least one --host".into()))?;
    let mut p = params(first, 3 * 365)?;
    p.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => h.clone().try_into().map(SanType::DnsName).map_err(cert_err),
        })
        .collect::<Result<_>>()?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A self-signed code-signing certificate: `(certificate PEM, key PEM)`.
pub fn make_codesign(company: &str) -> Result<(String, String)> {
    let key = new_key()?;
    let mut p = params(&format!("{company} Test Code Signing"), 3 * 365)?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let cert = p.self_signed(&key).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a new CA and gateway certificate into `c`, backing up what exists into
/// a dated folder beside them. Returns `(files written, backup folder)`.
pub fn write_new_ca(c: &CertPaths, system_name: &str, hosts: &[String]) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let (ca_pem, ca_key) = make_ca(system_name)?;
    let (gw_pem, gw_key) = make_gateway(&ca_pem, &ca_key, hosts)?;
    let all = [c.ca_cert.clone(), c.ca_key.clone(), c.gateway_cert.clone(), c.gateway_key.clone()];
    let dir = c.ca_cert.parent().expect("certificate path has a folder").to_path_buf();
    // The keys go in here: only their owner may enter it (when this creates it).
    fsutil::create_private_dir(&dir)?;
    let backup = fsutil::backup(&dir, &all)?;
    fsutil::write_new(&c.ca_cert, ca_pem.as_bytes())?;
    fsutil::write_secret(&c.ca_key, ca_key.as_bytes())?;
    fsutil::write_new(&c.gateway_cert, gw_pem.as_bytes())?;
    fsutil::write_secret(&c.gateway_key, gw_key.as_bytes())?;
    Ok((all.to_vec(), backup))
}

/// Re-issues only the gateway certificate and key under the existing CA.
pub fn write_gateway_cert(c: &CertPaths, hosts: &[String]) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let ca_pem = std::fs::read_to_string(&c.ca_cert).at(&c.ca_cert)?;
    let ca_key = std::fs::read_to_string(&c.ca_key).at(&c.ca_key)?;
    let (gw_pem, gw_key) = make_gateway(&ca_pem, &ca_key, hosts)?;
    let files = [c.gateway_cert.clone(), c.gateway_key.clone()];
    let dir = c.gateway_cert.parent().expect("certificate path has a folder").to_path_buf();
    let backup = fsutil::backup(&dir, &files)?;
    fsutil::write_new(&c.gateway_cert, gw_pem.as_bytes())?;
    fsutil::write_secret(&c.gateway_key, gw_key.as_bytes())?;
    Ok((files.to_vec(), backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_cert_passes_the_checks() {
        let d = tempfile::tempdir().unwrap();
        let c = CertPaths {
            ca_cert: d.path().join("certs/ca.cer"),
            ca_key: d.path().join("certs/ca.key"),
            gateway_cert: d.path().join("certs/ThinGate.cer"),
            gateway_key: d.path().join("certs/ThinGate.key"),
        };
        write_new_ca(&c, "Test", &["gw.example.org".into(), "127.0.0.1".into()]).unwrap();
        assert!(crate::certs::check::check(&c, Some("gw.example.org"), d.path()).is_empty());
        assert!(crate::certs::check::check(&c, Some("127.0.0.1"), d.path()).is_empty());
        let bad = crate::certs::check::check(&c, Some("other.example.org"), d.path());
        assert_eq!(bad.len(), 1, "{bad:?}");
        let (_, backup) = write_gateway_cert(&c, &["other.example.org".into()]).unwrap();
        assert!(backup.unwrap().join("ThinGate.key").exists());
        assert!(crate::certs::check::check(&c, Some("other.example.org"), d.path()).is_empty());
    }
}
