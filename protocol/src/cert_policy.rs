//! The one certificate policy of the gateway, the apps and `builder check`.
//!
//! What counts is what the running code does: `thingate` loads its
//! certificate and key with [`crate::tls::server_config`], the apps verify the
//! gateway with [`crate::tls::app_verifier`] (rustls, the ring provider,
//! webpki). [`verify_gateway`] runs exactly those: the gateway's loader, the
//! apps' verifier on the gateway certificate, and a TLS handshake in memory
//! between the two configurations, so its verdict is the apps' verdict. The
//! rules below only explain a refusal in words; each of them is a refusal of
//! rustls, ring or webpki, never an extra requirement.
//!
//! * Gateway key ([`gateway_key_problem`]): RSA 2048-4096 bits (ring signs with
//!   nothing larger), ECDSA P-256 or P-384, or Ed25519; PEM PKCS#8 (`PRIVATE
//!   KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), unencrypted.
//! * CA key ([`ca_key_problem`]): RSA 2048-8192 bits, ECDSA P-256 or P-384, or
//!   Ed25519: what webpki verifies signatures with.
//! * Signature of the gateway certificate ([`signature_problem`]): RSA PKCS#1
//!   v1.5 or RSA-PSS with SHA-256/384/512, ECDSA with SHA-256/384, Ed25519.
//!   SHA-1, SHA-224, ECDSA with SHA-512 and MD5 are refused.
//! * Names: the gateway URL's host must be a subjectAltName of the gateway
//!   certificate: a `dNSName` (a wildcard only as the whole leftmost label,
//!   `*.example.org`) for a DNS host, an `iPAddress` for an IP host; the
//!   subject's common name is ignored.
//! * The CA is a trust anchor: its own signature, version, extensions and
//!   validity are not checked (by webpki, hence not by the check either); the
//!   gateway certificate's validity is.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::*;

use crate::tls::TlsError;

/// Which file a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The CA certificate (the apps' trust anchor).
    Ca,
    /// The gateway certificate.
    GatewayCert,
    /// The gateway's private key.
    GatewayKey,
}

/// What kind of refusal a [`Finding`] is; callers choose the fix by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not readable, not PEM, not X.509.
    Unreadable,
    /// A key type or size that the gateway or the apps cannot use.
    Key,
    /// A signature algorithm the apps cannot verify.
    Signature,
    /// Not signed by the CA (or the signature does not verify).
    Chain,
    /// The gateway URL's host is not among the certificate's names.
    Name,
    /// Expired or not valid yet.
    Validity,
    /// The key does not belong to the certificate.
    KeyMismatch,
    /// Anything else rustls refused.
    Other,
}

/// One reason the gateway or the apps would refuse the certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file at fault.
    pub part: Part,
    /// Which kind of refusal.
    pub kind: Kind,
    /// The reason, in words.
    pub reason: String,
}

impl Finding {
    fn new(part: Part, kind: Kind, reason: impl Into<String>) -> Self {
        Self { part, kind, reason: reason.into() }
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";

/// The signature algorithms by OID: name, and whether webpki (ring) verifies
/// it. RSA-PSS is verified for some parameters only (SHA-256/384/512, MGF1 with
/// the same hash, a salt as long as the hash): `None`, the verifier decides.
const SIGNATURES: [(&str, &str, Option<bool>); 14] = [
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption", Some(true)),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption", Some(true)),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption", Some(true)),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption", Some(false)),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption", Some(false)),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption", Some(false)),
    (OID_RSA_PSS, "RSASSA-PSS", None),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256", Some(true)),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384", Some(true)),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512", Some(false)),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224", Some(false)),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1", Some(false)),
    (OID_ED25519, "Ed25519", Some(true)),
    (OID_ED448, "Ed448", Some(false)),
];

/// What the apps verify, in words.
pub const SUPPORTED_SIGNATURES: &str =
    "RSA (PKCS#1 v1.5 or PSS) with SHA-256, SHA-384 or SHA-512, ECDSA with SHA-256 or SHA-384, or Ed25519";

/// A public key, as far as the policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA (rsaEncryption) with this many modulus bits.
    Rsa(usize),
    /// RSA restricted to PSS (id-RSASSA-PSS).
    RsaPss,
    /// ECDSA on a named curve ("P-256", "P-384", "P-521" or the curve's OID).
    Ecdsa(String),
    /// Ed25519.
    Ed25519,
    /// Anything else, by algorithm OID.
    Other(String),
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rsa(bits) => write!(f, "RSA of {bits} bits"),
            Self::RsaPss => write!(f, "RSA-PSS-only (id-RSASSA-PSS)"),
            Self::Ecdsa(c) => write!(f, "ECDSA {c}"),
            Self::Ed25519 => write!(f, "Ed25519"),
            Self::Other(oid) => write!(f, "algorithm {oid}"),
        }
    }
}

/// The kind of a certificate's public key.
pub fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> KeyKind {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyKind::Rsa(rsa.key_size()),
            _ => KeyKind::Other(oid),
        },
        OID_RSA_PSS => KeyKind::RsaPss,
        OID_EC => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            KeyKind::Ecdsa(match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "P-256".into(),
                Some("1.3.132.0.34") => "P-384".into(),
                Some("1.3.132.0.35") => "P-521".into(),
                Some(o) => o.to_string(),
                None => "(no named curve)".into(),
            })
        }
        OID_ED25519 => KeyKind::Ed25519,
        OID_ED448 => KeyKind::Other("Ed448".into()),
        _ => KeyKind::Other(oid),
    }
}

fn ec_supported(curve: &str) -> bool {
    curve == "P-256" || curve == "P-384"
}

/// Why `thingate` cannot sign with a key of this kind (ring's limits), if it cannot.
pub fn gateway_key_problem(k: &KeyKind) -> Option<String> {
    let ok = "use RSA 2048-4096, ECDSA P-256/P-384 or Ed25519";
    match k {
        KeyKind::Rsa(bits) if (2048..=4096).contains(bits) => None,
        KeyKind::Rsa(bits) => Some(format!(
            "the gateway key is an RSA key of {bits} bits; thingate signs with RSA keys of 2048 to 4096 bits only"
        )),
        KeyKind::Ecdsa(c) if ec_supported(c) => None,
        KeyKind::Ed25519 => None,
        other => Some(format!("the gateway key is {other}, which thingate cannot sign with; {ok}")),
    }
}

/// Why the apps cannot verify signatures made by a CA key of this kind, if they cannot.
pub fn ca_key_problem(k: &KeyKind) -> Option<String> {
    match k {
        KeyKind::Rsa(bits) if (2048..=8192).contains(bits) => None,
        KeyKind::Rsa(bits) => {
            Some(format!(
                "the CA key is an RSA key of {bits} bits; the apps verify RSA signatures of 2048 to 8192 bits only"
            ))
        }
        KeyKind::Ecdsa(c) if ec_supported(c) => None,
        KeyKind::Ed25519 => None,
        other => Some(format!(
            "the CA key is {other}, whose signatures the apps cannot verify; use RSA 2048-8192, ECDSA P-256/P-384 or Ed25519"
        )),
    }
}

/// The name of a signature algorithm OID.
pub fn signature_name(oid: &str) -> &str {
    SIGNATURES.iter().find(|(o, _, _)| *o == oid).map(|(_, n, _)| *n).unwrap_or("an unknown algorithm")
}

/// Why the apps cannot verify a certificate signed with this algorithm, if that
/// is known from the algorithm alone.
pub fn signature_problem(oid: &str) -> Option<String> {
    match SIGNATURES.iter().find(|(o, _, _)| *o == oid) {
        Some((_, _, Some(true))) | Some((_, _, None)) => None,
        _ => Some(format!(
            "it is signed with {} ({oid}), which the apps cannot verify; they verify {SUPPORTED_SIGNATURES}",
            signature_name(oid)
        )),
    }
}

/// Reads a PEM private key as `thingate` does, naming what is wrong.
pub fn private_key_problem(pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Some("the key is encrypted with a passphrase, which thingate cannot ask for; decrypt it (`openssl pkey -in KEY -out KEY.plain`, keep it mode 0600)".into());
    }
    None
}

fn names_of(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                Some(format!("IP:{}", std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?)))
            }
            GeneralName::IPAddress(b) if b.len() == 16 => {
                Some(format!("IP:{}", std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?)))
            }
            _ => None,
        })
        .collect()
}

/// The apps' verifier of the gateway certificate: webpki with the ring
/// provider's algorithms, trusting exactly `ca`, no revocation.
pub(crate) fn verifier_for(roots: rustls::RootCertStore) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
        .build()
        .map_err(|e| TlsError::Config(format!("CA certificate refused: {e}")))
}

fn file_finding(e: TlsError, part: Part, kind: Kind) -> Finding {
    match e {
        TlsError::File { msg, .. } => Finding::new(part, kind, msg),
        TlsError::Config(msg) => Finding::new(part, kind, msg),
    }
}

/// Runs the gateway's loader, the apps' verifier and a handshake between them
/// on the CA file, the gateway certificate and key, for the gateway URL's
/// `host`, at `now`. Empty: the apps would connect. Without a host (no valid
/// gateway URL yet) the names are not checked: the certificate's first name
/// stands in for it.
pub fn verify_gateway(
    ca_path: &Path,
    cert_path: &Path,
    key_path: &Path,
    host: Option<&str>,
    now: UnixTime,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let ca = crate::tls::load_certs(ca_path).map_err(|e| out.push(file_finding(e, Part::Ca, Kind::Unreadable))).ok();
    let chain = crate::tls::load_certs(cert_path)
        .map_err(|e| out.push(file_finding(e, Part::GatewayCert, Kind::Unreadable)))
        .ok();
    // The words first: each of these is also a refusal of the real code below.
    let mut explained = false;
    for der in ca.iter().flatten() {
        match X509Certificate::from_der(der) {
            Ok((_, c)) => {
                let k = key_kind(c.public_key());
                if let Some(r) = ca_key_problem(&k) {
                    out.push(Finding::new(Part::Ca, Kind::Key, r));
                    explained = true;
                }
            }
            Err(e) => out.push(Finding::new(Part::Ca, Kind::Unreadable, format!("not an X.509 certificate: {e}"))),
        }
    }
    let leaf = chain.as_ref().and_then(|c| c.first());
    let parsed = leaf.and_then(|d| match X509Certificate::from_der(d) {
        Ok((_, c)) => Some(c),
        Err(e) => {
            out.push(Finding::new(Part::GatewayCert, Kind::Unreadable, format!("not an X.509 certificate: {e}")));
            None
        }
    });
    if let Some(c) = &parsed {
        if let Some(r) = signature_problem(&c.signature_algorithm.algorithm.to_id_string()) {
            out.push(Finding::new(Part::GatewayCert, Kind::Signature, r));
            explained = true;
        }
    }
    if let Ok(data) = std::fs::read(key_path) {
        if let Some(r) = private_key_problem(&data) {
            out.push(Finding::new(Part::GatewayKey, Kind::Unreadable, r));
            explained = true;
        }
    }
    if !out.is_empty() && (ca.is_none() || chain.is_none() || parsed.is_none()) {
        return out;
    }
    let (Some(ca), Some(chain)) = (ca.as_ref(), chain.as_ref()) else { return out };

    // thingate's loader.
    let server = match crate::tls::server_config(cert_path, key_path) {
        Ok(s) => Some(s),
        Err(e @ TlsError::File { .. }) => {
            let (part, kind) = match &e {
                TlsError::File { path, msg } if *path == key_path.display().to_string() => (
                    Part::GatewayKey,
                    if msg.contains("does not belong") {
                        Kind::KeyMismatch
                    } else if msg.starts_with("cannot read") || msg.starts_with("not a PEM") {
                        Kind::Unreadable
                    } else {
                        Kind::Key
                    },
                ),
                _ => (Part::GatewayCert, Kind::Key),
            };
            if !explained || kind == Kind::KeyMismatch {
                out.push(file_finding(e, part, kind));
            }
            None
        }
        Err(e) => {
            out.push(file_finding(e, Part::GatewayKey, Kind::Other));
            None
        }
    };

    // The apps' verifier.
    let stand_in = parsed.as_ref().and_then(|c| names_of(c).into_iter().next()).map(|n| {
        let n = n.split_once(':').map(|(_, v)| v.to_string()).unwrap_or(n);
        n.strip_prefix("*.").map(|rest| format!("x.{rest}")).unwrap_or(n)
    });
    let Some(host) = host.map(str::to_string).or(stand_in) else { return out };
    let host = host.as_str();
    let name = match ServerName::try_from(host.to_string()) {
        Ok(n) => n,
        Err(e) => {
            out.push(Finding::new(
                Part::GatewayCert,
                Kind::Name,
                format!("{host:?} is not a host name the apps can use: {e}"),
            ));
            return out;
        }
    };
    let client = match crate::tls::client_config(ca) {
        Ok(c) => c,
        Err(e) => {
            out.push(file_finding(e, Part::Ca, Kind::Unreadable));
            return out;
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        let _ = roots.add(c.clone());
    }
    let verifier = match verifier_for(roots) {
        Ok(v) => v,
        Err(e) => {
            out.push(file_finding(e, Part::Ca, Kind::Unreadable));
            return out;
        }
    };
    let mut at = now;
    let mut verified = false;
    for _ in 0..2 {
        use rustls::client::danger::ServerCertVerifier;
        match verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], at) {
            Ok(_) => {
                verified = true;
                break;
            }
            Err(rustls::Error::InvalidCertificate(e)) => {
                let f = certificate_finding(&e, parsed.as_ref(), host);
                let time = f.kind == Kind::Validity;
                if !(explained && matches!(f.kind, Kind::Signature | Kind::Chain | Kind::Other)) {
                    out.push(f);
                }
                // Out of its validity: look again from inside it, for the other reasons.
                match (time, &parsed) {
                    (true, Some(c)) => {
                        let (a, b) = (c.validity().not_before.timestamp(), c.validity().not_after.timestamp());
                        at = UnixTime::since_unix_epoch(std::time::Duration::from_secs((a / 2 + b / 2).max(0) as u64));
                    }
                    _ => break,
                }
            }
            Err(e) => {
                out.push(Finding::new(Part::GatewayCert, Kind::Other, e.to_string()));
                break;
            }
        }
    }

    // Both together, as they meet on the wire.
    if let (Some(server), true) = (server, verified && out.is_empty()) {
        if let Err(e) = handshake(client, server, name) {
            let f = match e {
                rustls::Error::InvalidCertificate(c) => certificate_finding(&c, parsed.as_ref(), host),
                other => Finding::new(
                    Part::GatewayKey,
                    Kind::Other,
                    format!("the TLS handshake between thingate and the apps fails: {other}"),
                ),
            };
            out.push(f);
        }
    } else if out.is_empty() && !verified {
        out.push(Finding::new(Part::GatewayCert, Kind::Other, "the apps refuse this certificate"));
    }
    out
}

fn certificate_finding(e: &rustls::CertificateError, cert: Option<&X509Certificate<'_>>, host: &str) -> Finding {
    use rustls::CertificateError as E;
    let sig = cert.map(|c| c.signature_algorithm.algorithm.to_id_string()).unwrap_or_default();
    match e {
        E::Expired | E::ExpiredContext { .. } => Finding::new(
            Part::GatewayCert,
            Kind::Validity,
            match cert {
                Some(c) => format!("expired on {}", c.validity().not_after),
                None => "expired".into(),
            },
        ),
        E::NotValidYet | E::NotValidYetContext { .. } => Finding::new(
            Part::GatewayCert,
            Kind::Validity,
            match cert {
                Some(c) => format!("not valid before {}", c.validity().not_before),
                None => "not valid yet".into(),
            },
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            let names = cert.map(names_of).unwrap_or_default();
            let names = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            Finding::new(
                Part::GatewayCert,
                Kind::Name,
                format!("not valid for the gateway URL's host {host} (its subjectAltNames: {names}; the common name is not used)"),
            )
        }
        E::UnknownIssuer | E::BadSignature => Finding::new(Part::GatewayCert, Kind::Chain, "not signed by the CA"),
        #[allow(deprecated)]
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext { .. }
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => Finding::new(
            Part::GatewayCert,
            Kind::Signature,
            signature_problem(&sig).unwrap_or_else(|| {
                format!(
                    "it is signed with {} ({sig}) with parameters or a CA key that the apps cannot verify; they verify {SUPPORTED_SIGNATURES}",
                    signature_name(&sig)
                )
            }),
        ),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => Finding::new(
            Part::GatewayCert,
            Kind::Other,
            "its extendedKeyUsage does not include serverAuth",
        ),
        other => Finding::new(Part::GatewayCert, Kind::Other, format!("the apps refuse it: {other}")),
    }
}

/// A TLS handshake in memory between the gateway's and the apps' configurations.
/// The client's error is the one that explains (the server only sees an alert).
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: ServerName<'static>,
) -> Result<(), rustls::Error> {
    let mut c = ClientConnection::new(client, name)?;
    let mut s = ServerConnection::new(server)?;
    for _ in 0..16 {
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let server_result = s.process_new_packets().map(|_| ());
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        let client_result = c.process_new_packets().map(|_| ());
        client_result?;
        server_result?;
    }
    Err(rustls::Error::General("the handshake did not finish".into()))
}

/// Whether a certificate chain's leaf is one `thingate` may serve: its key is
/// one ring signs with. The message names the key and the fix.
pub(crate) fn check_gateway_leaf(leaf: &CertificateDer<'_>) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| format!("not X.509: {e}"))?;
    match gateway_key_problem(&key_kind(cert.public_key())) {
        None => Ok(()),
        Some(r) => Err(r),
    }
}
