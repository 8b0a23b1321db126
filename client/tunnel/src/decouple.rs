//! Decouples writing from reading under the multiplexer.
//!
//! yamux stops reading its socket while it has a pong queued and the socket
//! refuses writes; when both ends are write-blocked at once (bulk data both
//! ways) neither reads again. Here writes are queued and drained by a separate
//! task, so the socket's read side is always serviced. The queue is bounded by
//! yamux's own flow control: a peer can only make us send what its receive
//! windows allow (see `mux::config`).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf};
use tokio::sync::mpsc;

/// A stream whose writes never block (they are queued for a writer task).
pub struct Decoupled<T> {
    rd: ReadHalf<T>,
    tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<T: AsyncRead + AsyncWrite + Send + 'static> Decoupled<T> {
    /// Splits `io` and starts its writer task.
    pub fn new(io: T) -> Self {
        let (rd, mut wr) = tokio::io::split(io);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = failed.clone();
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                let mut batch = chunk;
                // Coalesce what is already queued into one write.
                while batch.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&batch).await.is_err() || wr.flush().await.is_err() {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        Self { rd, tx: Some(tx), failed }
    }
}

impl<T: AsyncRead> AsyncRead for Decoupled<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl<T> AsyncWrite for Decoupled<T> {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let broken = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed");
        if self.failed.load(std::sync::atomic::Ordering::Relaxed) {
            return Poll::Ready(Err(broken()));
        }
        match &self.tx {
            Some(tx) if tx.send(buf.to_vec()).is_ok() => Poll::Ready(Ok(buf.len())),
            _ => Poll::Ready(Err(broken())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}
