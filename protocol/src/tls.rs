//! TLS for both ends. The gateway serves TLS 1.2/1.3 with a PEM certificate and
//! key; the apps trust only the CA of their entry point, never the system store.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// File not readable or not PEM of the expected kind.
    #[error("{path}: {msg}")]
    File {
        /// Path of the offending file.
        path: String,
        /// What is wrong and the fix.
        msg: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, msg: impl Into<String>) -> TlsError {
    TlsError::File { path: path.display().to_string(), msg: msg.into() }
}

/// ring's provider with AES-128-GCM preferred over AES-256-GCM. The apps
/// offer suites in this order and the gateway takes the client's order, so
/// the two TLS legs of every tunnel use AES-128-GCM: about a third cheaper per
/// byte on the relay, which decrypts and encrypts every byte once per leg,
/// and a 128-bit cipher is what TLS 1.3 requires of every implementation.
/// What the tunnel carries is sealed end to end with AES-256-GCM besides
/// (`thin-tunnel`'s `seal`).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = provider::default_provider();
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 4,
        _ if s.version() == &rustls::version::TLS13 => 2,
        _ => 5,
    });
    Arc::new(p)
}

/// Loads a PEM certificate chain (leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    let certs = certs.map_err(|e| file_err(path, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate (-----BEGIN CERTIFICATE-----) found"));
    }
    Ok(certs)
}

/// Loads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    if let Some(why) = crate::cert_policy::private_key_problem(&data) {
        return Err(file_err(path, why));
    }
    PrivateKeyDer::from_pem_slice(&data)
        .map_err(|e| file_err(path, format!("not a PEM private key (PKCS#8, RSA or EC): {e}")))
}

/// Builds the gateway's server configuration from PEM files.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert_path)?;
    crate::cert_policy::check_gateway_leaf(&certs[0]).map_err(|m| file_err(cert_path, m))?;
    let key = load_key(key_path)?;
    let signing = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| file_err(key_path, format!("unsupported private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(certs.clone(), signing);
    certified.keys_match().map_err(|_| {
        file_err(key_path, format!("this key does not belong to the certificate {}", cert_path.display()))
    })?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// Builds the apps' client configuration: trust exactly `ca`, verified by
/// webpki as [`crate::cert_policy`] describes.
pub fn client_config(ca: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c.clone()).map_err(|e| TlsError::Config(format!("CA certificate refused: {e}")))?;
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_webpki_verifier(crate::cert_policy::verifier_for(roots)?)
        .with_no_client_auth();
    let mut cfg = cfg;
    // A tunnel's records are handled in place after the login
    // (`thin_tunnel::decouple`), following key updates with the secrets
    // kept in memory (never written anywhere) for a short while.
    cfg.enable_secret_extraction = true;
    cfg.key_log = app_secrets().clone();
    Ok(Arc::new(cfg))
}

/// The first traffic secrets of this app's recent TLS connections (see
/// [`crate::traffic_secrets`]), shared by every client configuration.
pub fn app_secrets() -> &'static Arc<crate::traffic_secrets::HandshakeSecrets> {
    static SECRETS: std::sync::LazyLock<Arc<crate::traffic_secrets::HandshakeSecrets>> =
        std::sync::LazyLock::new(Default::default);
    &SECRETS
}

/// Turns a failed TLS connect into a sentence a user (or admin) can act on.
pub fn explain_connect_error(err: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
    match inner {
        Some(Error::InvalidCertificate(CertificateError::Expired))
        | Some(Error::InvalidCertificate(CertificateError::ExpiredContext { .. })) => {
            "the gateway's certificate has expired; the gateway admin must renew it".into()
        }
        Some(Error::InvalidCertificate(CertificateError::NotValidYet))
        | Some(Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })) => {
            "the gateway's certificate is not valid yet; check this computer's clock".into()
        }
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        | Some(Error::InvalidCertificate(CertificateError::BadSignature)) => {
            "the gateway's certificate is not signed by the CA this app trusts (wrong gateway, or an interception proxy)".into()
        }
        Some(Error::InvalidCertificate(CertificateError::NotValidForName))
        | Some(Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
            "the gateway's certificate is not valid for the gateway's host name".into()
        }
        Some(Error::InvalidCertificate(other)) => format!("the gateway's certificate is not trusted: {other:?}"),
        Some(other) => format!("TLS error: {other}"),
        None => format!("TLS error: {err}"),
    }
}
