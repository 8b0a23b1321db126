//! Checks of the CA and gateway certificates and the gateway key (manual 5-7:
//! X.509 v3, RSA 2048-4096 with SHA-2; ECDSA P-256/P-384 is accepted as well).

use crate::error::Problem;
use crate::manifest::CertPaths;
use std::path::Path;
use x509_parser::prelude::*;

const SHA2_SIGS: [(&str, &str); 7] = [
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
];

const REGEN: &str =
    "run `builder ca regen` to make a new CA and gateway certificate, or replace the file with a valid PEM certificate";

/// Reads the first PEM `CERTIFICATE` block of a file.
fn read_der(path: &Path, shown: &str) -> Result<Vec<u8>, Problem> {
    let bytes =
        std::fs::read(path).map_err(|e| Problem::file(shown, format!("cannot read the certificate: {e}"), REGEN))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|_| Problem::file(shown, "not a PEM certificate (no -----BEGIN CERTIFICATE----- block)", REGEN))?;
    if pem.label != "CERTIFICATE" {
        return Err(Problem::file(shown, format!("the PEM block is {:?}, not CERTIFICATE", pem.label), REGEN));
    }
    Ok(pem.contents)
}

/// Checks one certificate's own properties: v3, key type and size, SHA-2 signature.
fn check_basic(cert: &X509Certificate, shown: &str, out: &mut Vec<Problem>) {
    if cert.version() != X509Version::V3 {
        out.push(Problem::file(shown, format!("certificate is X.509 version {}, not v3", cert.version().0 + 1), REGEN));
    }
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if !(2048..=4096).contains(&bits) {
                out.push(Problem::file(shown, format!("RSA key of {bits} bits is outside 2048-4096"), REGEN));
            }
        }
        Ok(x509_parser::public_key::PublicKey::EC(ec)) if matches!(ec.key_size(), 256 | 384) => {}
        _ => out.push(Problem::file(shown, "key is neither RSA 2048-4096 nor ECDSA P-256/P-384", REGEN)),
    }
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    if !SHA2_SIGS.iter().any(|(o, _)| *o == oid) {
        let name = match oid.as_str() {
            "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
            "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
            "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
            "1.2.840.113549.1.1.10" => "RSASSA-PSS",
            _ => "unknown",
        };
        out.push(Problem::file(
            shown,
            format!("signature algorithm {name} ({oid}) is not RSA or ECDSA with a SHA-2 digest"),
            REGEN,
        ));
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(rest) => h.split_once('.').is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => p == h,
    }
}

/// Whether the certificate's subjectAltName covers `host` (DNS name or IP).
fn valid_for(cert: &X509Certificate, host: &str) -> bool {
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
    san.value.general_names.iter().any(|n| match (n, ip) {
        (GeneralName::DNSName(d), None) => host_matches(d, host),
        (GeneralName::IPAddress(b), Some(std::net::IpAddr::V4(v4))) => *b == v4.octets(),
        (GeneralName::IPAddress(b), Some(std::net::IpAddr::V6(v6))) => *b == v6.octets(),
        _ => false,
    })
}

fn key_is_private(path: &Path, shown: &str, out: &mut Vec<Problem>) {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if m.permissions().mode() & 0o077 != 0 {
            out.push(Problem::file(
                shown,
                format!("private key is readable by others (mode {:o})", m.permissions().mode() & 0o777),
                format!("run chmod 600 {}", path.display()),
            ));
        }
    }
}

/// Checks the CA, the gateway certificate and key; `host` is the gateway URL's host.
/// `base` shortens paths in messages.
pub fn check(c: &CertPaths, host: Option<&str>, base: &Path) -> Vec<Problem> {
    let mut out = Vec::new();
    let s = |p: &Path| crate::paths::shown(p, base);
    let (ca_name, gw_name, key_name) = (s(&c.ca_cert), s(&c.gateway_cert), s(&c.gateway_key));
    let ca_der = read_der(&c.ca_cert, &ca_name).map_err(|p| out.push(p)).ok();
    let gw_der = read_der(&c.gateway_cert, &gw_name).map_err(|p| out.push(p)).ok();
    let ca = ca_der.as_deref().and_then(|d| match X509Certificate::from_der(d) {
        Ok((_, c)) => Some(c),
        Err(e) => {
            out.push(Problem::file(&ca_name, format!("not an X.509 certificate: {e}"), REGEN));
            None
        }
    });
    let gw = gw_der.as_deref().and_then(|d| match X509Certificate::from_der(d) {
        Ok((_, c)) => Some(c),
        Err(e) => {
            out.push(Problem::file(&gw_name, format!("not an X.509 certificate: {e}"), REGEN));
            None
        }
    });
    if let Some(ca) = &ca {
        check_basic(ca, &ca_name, &mut out);
        if !ca.is_ca() {
            out.push(Problem::file(&ca_name, "not a CA certificate (basicConstraints CA:TRUE is missing)", REGEN));
        }
    }
    let Some(gw) = gw else { return out };
    check_basic(&gw, &gw_name, &mut out);
    if let Some(ca) = &ca {
        if gw.verify_signature(Some(ca.public_key())).is_err() {
            out.push(Problem::file(
                &gw_name,
                format!("not signed by the CA in {ca_name}"),
                "run `builder ca gateway-cert --host HOST` to re-issue it under this CA",
            ));
        }
    }
    let now = ASN1Time::now();
    if gw.validity().not_after < now {
        out.push(Problem::file(
            &gw_name,
            format!("expired on {}", gw.validity().not_after),
            "run `builder ca gateway-cert --host HOST` to re-issue it",
        ));
    } else if gw.validity().not_before > now {
        out.push(Problem::file(
            &gw_name,
            format!("not valid before {}", gw.validity().not_before),
            "check the clock, or re-issue it with `builder ca gateway-cert --host HOST`",
        ));
    }
    if let Some(host) = host {
        if !valid_for(&gw, host) {
            out.push(Problem::file(
                &gw_name,
                format!("not valid for the gateway URL's host {host} (no matching subjectAltName)"),
                format!("run `builder ca gateway-cert --host {host}`, or fix gateway_url"),
            ));
        }
    }
    match std::fs::read_to_string(&c.gateway_key) {
        Err(e) => out.push(Problem::file(&key_name, format!("cannot read the gateway key: {e}"), REGEN)),
        Ok(pem) => match rcgen::KeyPair::from_pem(&pem) {
            Err(_) => out.push(Problem::file(&key_name, "not a PEM private key (PKCS#8)", REGEN)),
            Ok(key) => {
                use rcgen::PublicKeyData;
                if key.subject_public_key_info() != gw.public_key().raw {
                    out.push(Problem::file(&key_name, format!("this key does not match the certificate {gw_name}"), "put the certificate's own key here, or re-issue both with `builder ca gateway-cert --host HOST`"));
                }
                key_is_private(&c.gateway_key, &key_name, &mut out);
            }
        },
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards_match_one_label() {
        assert!(super::host_matches("*.example.org", "gw.example.org"));
        assert!(!super::host_matches("*.example.org", "a.b.example.org"));
        assert!(super::host_matches("GW.example.org", "gw.EXAMPLE.org"));
    }
}
