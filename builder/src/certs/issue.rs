//! Making certificates with rcgen: the brand's CA, the gateway certificate it
//! signs, and a self-signed test code-signing identity. Keys are ECDSA P-256 or
//! RSA 3072 (made by `openssl genpkey`, read from its standard output: ring
//! cannot make RSA keys), signed with SHA-256. Keys are written 0600; existing
//! files are moved to a dated backup first.

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

/// The kind of key a new CA or gateway certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA P-256 (small, fast; the default).
    #[default]
    Ecdsa,
    /// RSA 3072 bits, as the original's manual asks (RSA 2048-4096).
    Rsa,
}

/// RSA modulus size of new RSA keys.
pub const RSA_BITS: u32 = 3072;

impl KeyType {
    /// The type of an existing key.
    pub fn of(key: &KeyPair) -> Self {
        if key.algorithm() == &rcgen::PKCS_RSA_SHA256 {
            Self::Rsa
        } else {
            Self::Ecdsa
        }
    }
}

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Tool {
            tool: "openssl".into(),
            msg: format!("cannot run it ({e}); install it with `apt-get install openssl`"),
        })?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(data).map_err(|e| Error::Tool { tool: "openssl".into(), msg: e.to_string() })?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Tool { tool: "openssl".into(), msg: e.to_string() })?;
    if !out.status.success() || out.stdout.is_empty() {
        // openssl's stderr names the problem, never the key.
        return Err(Error::Tool {
            tool: format!("openssl {}", args[0]),
            msg: String::from_utf8_lossy(&out.stderr).into(),
        });
    }
    Ok(out.stdout)
}

/// A new key pair of `kind`. The RSA key comes from openssl's standard output,
/// never a file.
pub fn new_key(kind: KeyType) -> Result<KeyPair> {
    match kind {
        KeyType::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err),
        KeyType::Rsa => {
            let bits = format!("rsa_keygen_bits:{RSA_BITS}");
            let pem = openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", &bits], None)?;
            let pem = String::from_utf8(pem).map_err(|_| Error::Cert("openssl genpkey wrote no PEM".into()))?;
            KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).map_err(cert_err)
        }
    }
}

/// Reads a PEM private key in any form thingate reads (PKCS#8, PKCS#1 RSA,
/// SEC1 EC); the latter two are turned into PKCS#8 by `openssl pkey` through
/// pipes, since rcgen (with ring) reads PKCS#8 only.
pub fn read_key(pem: &str) -> Result<KeyPair> {
    if pem.contains("-----BEGIN PRIVATE KEY-----") {
        return KeyPair::from_pem(pem).map_err(cert_err);
    }
    if let Some(why) = thin_protocol::cert_policy::private_key_problem(pem.as_bytes()) {
        return Err(Error::Cert(why));
    }
    let pkcs8 = openssl(&["pkey"], Some(pem.as_bytes()))?;
    let pkcs8 = String::from_utf8(pkcs8).map_err(|_| Error::Cert("openssl pkey wrote no PEM".into()))?;
    KeyPair::from_pem(&pkcs8).map_err(cert_err)
}

/// A new CA: `(certificate PEM, key PEM)`, valid 20 years.
pub fn make_ca(system_name: &str, kind: KeyType) -> Result<(String, String)> {
    let key = new_key(kind)?;
    let mut p = params(&format!("{system_name} Root CA"), 20 * 365)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = p.self_signed(&key).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A gateway certificate for `hosts` (DNS names or IP addresses) signed by the CA:
/// `(certificate PEM, key PEM)`, valid 3 years.
/// `kind` defaults to the CA key's type.
pub fn make_gateway(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    hosts: &[String],
    kind: Option<KeyType>,
) -> Result<(String, String)> {
    let ca_key = read_key(ca_key_pem)?;
    let kind = kind.unwrap_or(KeyType::of(&ca_key));
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(cert_err)?;
    let key = new_key(kind)?;
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
    let key = new_key(KeyType::Ecdsa)?;
    let mut p = params(&format!("{company} Test Code Signing"), 3 * 365)?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let cert = p.self_signed(&key).map_err(cert_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a new CA and gateway certificate into `c`, backing up what exists into
/// a dated folder beside them. Returns `(files written, backup folder)`.
pub fn write_new_ca(
    c: &CertPaths,
    system_name: &str,
    hosts: &[String],
    kind: KeyType,
) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let (ca_pem, ca_key) = make_ca(system_name, kind)?;
    let (gw_pem, gw_key) = make_gateway(&ca_pem, &ca_key, hosts, Some(kind))?;
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

/// Re-issues only the gateway certificate and key under the existing CA;
/// `kind` defaults to the CA key's type.
pub fn write_gateway_cert(
    c: &CertPaths,
    hosts: &[String],
    kind: Option<KeyType>,
) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let ca_pem = std::fs::read_to_string(&c.ca_cert).at(&c.ca_cert)?;
    let ca_key = std::fs::read_to_string(&c.ca_key).at(&c.ca_key)?;
    let (gw_pem, gw_key) = make_gateway(&ca_pem, &ca_key, hosts, kind)?;
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
        write_new_ca(&c, "Test", &["gw.example.org".into(), "127.0.0.1".into()], KeyType::Ecdsa).unwrap();
        assert!(crate::certs::check::check(&c, Some("gw.example.org"), d.path()).is_empty());
        assert!(crate::certs::check::check(&c, Some("127.0.0.1"), d.path()).is_empty());
        let bad = crate::certs::check::check(&c, Some("other.example.org"), d.path());
        assert_eq!(bad.len(), 1, "{bad:?}");
        let (_, backup) = write_gateway_cert(&c, &["other.example.org".into()], None).unwrap();
        assert!(backup.unwrap().join("ThinGate.key").exists());
        assert!(crate::certs::check::check(&c, Some("other.example.org"), d.path()).is_empty());
    }
}
