//! The gateway's certificate and key in force, reloadable (SIGHUP) without a
//! restart.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use thin_protocol::tls::TlsError;

use crate::relay::HandshakeSecrets;

/// `cfg` as the relay needs it: a paired tunnel's keys can be taken out of
/// rustls, and the secrets behind them are kept for a while, in memory only
/// (`relay::records`, `relay::secrets`).
fn relay_ready(cfg: Arc<ServerConfig>, secrets: &Arc<HandshakeSecrets>) -> Arc<ServerConfig> {
    let mut cfg = Arc::unwrap_or_clone(cfg);
    cfg.enable_secret_extraction = true;
    cfg.key_log = secrets.clone();
    Arc::new(cfg)
}

/// The TLS configuration built from `ServerCert` and `ServerKey`.
#[derive(Debug)]
pub struct Certs {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    secrets: Arc<HandshakeSecrets>,
}

impl Certs {
    /// Loads certificate and key.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let secrets = Arc::new(HandshakeSecrets::default());
        let current = RwLock::new(relay_ready(thin_protocol::tls::server_config(&cert, &key)?, &secrets));
        Ok(Self { cert, key, current, secrets })
    }

    /// The first traffic secrets of recent handshakes, for the relay.
    pub fn secrets(&self) -> Arc<HandshakeSecrets> {
        self.secrets.clone()
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().expect("tls lock").clone()
    }

    /// Re-reads certificate and key; on error the old ones stay in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let new = relay_ready(thin_protocol::tls::server_config(&self.cert, &self.key)?, &self.secrets);
        *self.current.write().expect("tls lock") = new;
        Ok(())
    }
}
