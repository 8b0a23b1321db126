//! Checks of the CA and gateway certificates and the gateway key. The verdict is
//! `thin_protocol::cert_policy`'s, which runs the gateway's loader, the apps'
//! verifier and a handshake between them: the check accepts exactly what
//! `thingate` and the apps accept, and gives the reason for the rest.

use crate::error::Problem;
use crate::manifest::CertPaths;
use std::path::Path;
use thin_protocol::cert_policy::{self, Finding, Kind, Part};

const REGEN: &str =
    "run `builder ca regen` to make a new CA and gateway certificate, or replace the file with a valid PEM certificate";
const REISSUE: &str = "run `builder ca gateway-cert --host HOST` to re-issue it under this CA";

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

/// The fix for a finding.
fn fix(f: &Finding, host: Option<&str>) -> String {
    match (f.part, f.kind) {
        (Part::Ca, _) => REGEN.into(),
        (Part::GatewayKey, Kind::Unreadable) => "put the gateway certificate's PEM private key there (mode 0600), or make a new pair with `builder ca gateway-cert --host HOST`".into(),
        (_, Kind::Name) => match host {
            Some(h) => format!("run `builder ca gateway-cert --host {h}`, or fix gateway_url"),
            None => "run `builder ca gateway-cert --host HOST`, or fix gateway_url".into(),
        },
        (_, Kind::Validity) if f.reason.starts_with("not valid before") => {
            "check the clock, or re-issue it with `builder ca gateway-cert --host HOST`".into()
        }
        (_, Kind::Validity) => "run `builder ca gateway-cert --host HOST` to re-issue it".into(),
        (_, Kind::KeyMismatch) => {
            "put the certificate's own key here, or re-issue both with `builder ca gateway-cert --host HOST`".into()
        }
        (_, Kind::Signature) => {
            "re-issue it with a supported signature: `builder ca gateway-cert --host HOST` (SHA-256), or `openssl x509 -req -sha256 ...` with your own tools".into()
        }
        (_, Kind::Key) => "re-issue the gateway certificate and key with a supported key: `builder ca gateway-cert --host HOST [--key-type rsa|ecdsa]`".into(),
        (_, Kind::Chain) => REISSUE.into(),
        _ => REGEN.into(),
    }
}

/// Checks the CA, the gateway certificate and key; `host` is the gateway URL's host.
/// `base` shortens paths in messages.
pub fn check(c: &CertPaths, host: Option<&str>, base: &Path) -> Vec<Problem> {
    let s = |p: &Path| crate::paths::shown(p, base);
    let (ca_name, gw_name, key_name) = (s(&c.ca_cert), s(&c.gateway_cert), s(&c.gateway_key));
    let now = rustls_pki_types::UnixTime::now();
    let findings = cert_policy::verify_gateway(&c.ca_cert, &c.gateway_cert, &c.gateway_key, host, now);
    let mut out: Vec<Problem> = findings
        .iter()
        .map(|f| {
            let file = match f.part {
                Part::Ca => &ca_name,
                Part::GatewayCert => &gw_name,
                Part::GatewayKey => &key_name,
            };
            let what = match f.kind {
                Kind::Chain => format!("{} in {ca_name}", f.reason),
                Kind::KeyMismatch => format!("this key does not match the certificate {gw_name}"),
                _ => f.reason.clone(),
            };
            Problem::file(file, what, fix(f, host))
        })
        .collect();
    if c.gateway_key.is_file() {
        key_is_private(&c.gateway_key, &key_name, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand_certs(dir: &Path) -> CertPaths {
        CertPaths {
            ca_cert: dir.join("certs/ca.cer"),
            ca_key: dir.join("certs/ca.key"),
            gateway_cert: dir.join("certs/ThinGate.cer"),
            gateway_key: dir.join("certs/ThinGate.key"),
        }
    }

    #[test]
    fn wildcards_match_one_label() {
        let d = tempfile::tempdir().unwrap();
        let c = brand_certs(d.path());
        crate::certs::issue::write_new_ca(&c, "Test", &["*.example.org".into()], crate::certs::issue::KeyType::Ecdsa)
            .unwrap();
        assert!(check(&c, Some("gw.example.org"), d.path()).is_empty());
        assert!(check(&c, Some("GW.EXAMPLE.org"), d.path()).is_empty());
        let deeper = check(&c, Some("a.b.example.org"), d.path());
        assert_eq!(deeper.len(), 1, "{deeper:?}");
        assert!(deeper[0].what.contains("DNS:*.example.org"), "{deeper:?}");
    }

    #[test]
    fn a_readable_key_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let c = brand_certs(d.path());
        crate::certs::issue::write_new_ca(&c, "Test", &["gw.example.org".into()], crate::certs::issue::KeyType::Ecdsa)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&c.gateway_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = check(&c, Some("gw.example.org"), d.path());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].what.contains("readable by others"), "{p:?}");
    }
}
