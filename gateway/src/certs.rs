//! The gateway's certificate and key in force, reloadable (SIGHUP) without a
//! restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use thin_protocol::tls::TlsError;

/// The TLS configuration built from `ServerCert` and `ServerKey`.
#[derive(Debug)]
pub struct Certs {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Certs {
    /// Loads certificate and key.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let current = RwLock::new(thin_protocol::tls::server_config(&cert, &key)?);
        Ok(Self { cert, key, current })
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().expect("tls lock").clone()
    }

    /// Re-reads certificate and key; on error the old ones stay in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let new = thin_protocol::tls::server_config(&self.cert, &self.key)?;
        *self.current.write().expect("tls lock") = new;
        Ok(())
    }
}
