//! Tells the session directory when a server session starts and ends, so that
//! the other members of a cluster find the office PC here (`docs/cluster.md`).
//! A directory that cannot be written is logged, never fatal: the session
//! still serves the clients that reach this gateway.

use std::sync::Arc;

use tracing::warn;

use crate::registry::{Presence, SessionDirectory};
use crate::sessions::ServerSession;

/// The directory and this gateway's URL in it.
#[derive(Debug, Clone)]
pub struct Announcer {
    /// Where sessions are announced.
    pub directory: Arc<dyn SessionDirectory>,
    /// This gateway's `ClusterPublicUrl` (empty for a standalone gateway).
    pub url: Arc<str>,
}

impl Announcer {
    fn presence(&self, s: &ServerSession) -> Presence {
        Presence {
            msid: s.msid.clone(),
            gateway: self.url.to_string(),
            session: s.session_id.clone(),
            since_ms: s.established_ms,
        }
    }

    /// Announces that `s` serves its computer ID here.
    pub async fn announce(&self, s: &ServerSession) {
        if let Err(e) = self.directory.announce(&s.pcid, &self.presence(s)).await {
            warn!(pcid = %s.pcid, error = %e, "cannot announce the session in the cluster directory");
        }
    }

    /// Withdraws the announcement of `s` unless a newer session replaced it.
    pub async fn withdraw(&self, s: &ServerSession) {
        if let Err(e) = self.directory.withdraw(&s.pcid, &self.presence(s)).await {
            warn!(pcid = %s.pcid, error = %e, "cannot withdraw the session from the cluster directory");
        }
    }
}
