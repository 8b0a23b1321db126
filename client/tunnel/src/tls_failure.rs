//! Why a TLS connection to the gateway failed, as a type: the windows and the
//! admin port decide on the variant (expired, untrusted, ...), never on the
//! English sentence.

/// Why TLS to the gateway failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The gateway's certificate has expired.
    #[error("the gateway's certificate has expired; the gateway admin must renew it")]
    Expired,
    /// The gateway's certificate is not valid yet (or this computer's clock is wrong).
    #[error("the gateway's certificate is not valid yet; check this computer's clock")]
    NotYetValid,
    /// The gateway's certificate is not signed by the pinned CA.
    #[error(
        "the gateway's certificate is not signed by the CA this app trusts (wrong gateway, or an interception proxy)"
    )]
    UnknownIssuer,
    /// The gateway's certificate names another host.
    #[error("the gateway's certificate is not valid for the gateway's host name")]
    WrongName,
    /// Another problem with the gateway's certificate.
    #[error("the gateway's certificate is not trusted: {0}")]
    Untrusted(String),
    /// The gateway presented no certificate.
    #[error("TLS error: {0}")]
    NoCertificate(String),
    /// The entry point's CA cannot be used.
    #[error("{0}")]
    CaRefused(String),
    /// The gateway's host name is not one TLS can check.
    #[error("{0}")]
    BadHostName(String),
    /// The handshake did not finish in time.
    #[error("TLS handshake timed out")]
    Timeout,
    /// Any other TLS or connection failure.
    #[error("TLS error: {0}")]
    Other(String),
}

impl TlsFailure {
    /// Classifies a failed `tokio_rustls` connect.
    pub fn of_connect_error(err: &std::io::Error) -> Self {
        use rustls::{CertificateError, Error};
        match err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            Some(Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
                Self::Expired
            }
            Some(Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
            )) => Self::NotYetValid,
            Some(Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)) => {
                Self::UnknownIssuer
            }
            Some(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Self::WrongName,
            Some(Error::InvalidCertificate(other)) => Self::Untrusted(format!("{other:?}")),
            Some(e @ Error::NoCertificatesPresented) => Self::NoCertificate(e.to_string()),
            Some(other) => Self::Other(other.to_string()),
            None => Self::Other(err.to_string()),
        }
    }

    /// True when the gateway's certificate (or the CA that checks it) is the
    /// problem, rather than the network.
    pub fn is_certificate(&self) -> bool {
        !matches!(self, Self::BadHostName(_) | Self::Timeout | Self::Other(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_become_variants() {
        use rustls::{CertificateError, Error};
        let io = |e: Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            TlsFailure::of_connect_error(&io(Error::InvalidCertificate(CertificateError::Expired))),
            TlsFailure::Expired
        );
        assert_eq!(
            TlsFailure::of_connect_error(&io(Error::InvalidCertificate(CertificateError::UnknownIssuer))),
            TlsFailure::UnknownIssuer
        );
        assert!(TlsFailure::of_connect_error(&io(Error::NoCertificatesPresented)).is_certificate());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!TlsFailure::of_connect_error(&reset).is_certificate());
    }
}
