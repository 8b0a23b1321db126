//! The framed conversation with a peer after the upgrade: the stream type,
//! writes with a deadline, and refusals.

use std::time::Duration;

use serde::Serialize;
use thin_protocol::frame::{write_frame, FrameError};
use thin_protocol::messages::{ErrorCode, GateToServer, GateToTunnel};
use thin_protocol::read_ahead::ReadAhead;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

/// A TLS connection accepted by the gateway (its socket read ahead during
/// bursts, [`ReadAhead`]).
pub type GateStream = tokio_rustls::server::TlsStream<ReadAhead<TcpStream>>;

/// Longest a frame write to a control session may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A message of a gateway -> peer direction that has an `Error` variant.
pub trait ErrorFrame: Serialize {
    /// The `Error` frame with this code and message.
    fn error(code: ErrorCode, message: String) -> Self;
}

impl ErrorFrame for GateToServer {
    fn error(code: ErrorCode, message: String) -> Self {
        Self::Error { code, message }
    }
}

impl ErrorFrame for GateToTunnel {
    fn error(code: ErrorCode, message: String) -> Self {
        Self::Error { code, message }
    }
}

/// Sends an `Error` frame of the peer's direction `M` and closes.
pub async fn refuse<M: ErrorFrame, S: AsyncWrite + Unpin>(s: &mut S, code: ErrorCode, message: String) {
    debug!(?code, %message, "refused");
    let _ = write_frame(s, &M::error(code, message)).await;
    let _ = s.shutdown().await;
}

/// Writes one frame within [`WRITE_TIMEOUT`].
pub async fn send<M: Serialize, S: AsyncWrite + Unpin>(s: &mut S, m: &M) -> Result<(), FrameError> {
    tokio::time::timeout(WRITE_TIMEOUT, write_frame(s, m))
        .await
        .map_err(|_| FrameError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")))?
}
