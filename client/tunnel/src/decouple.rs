//! The tunnel's byte stream under the multiplexer: sealed end to end, with
//! writing decoupled from reading.
//!
//! yamux stops reading its socket while it has a pong queued and the socket
//! refuses writes; when both ends are write-blocked at once (bulk data both
//! ways) neither reads again. Here writes are queued and drained by a separate
//! task, which also seals them into records ([`crate::seal`]), so the socket's
//! read side is always serviced and the encryption runs beside the
//! multiplexer. The queue is bounded ([`MAX_QUEUED`]): yamux's flow control
//! keeps data far below the bound (see `mux::config`), so only a peer that
//! floods frames the multiplexer answers without flow control (pings) while
//! never reading reaches it; then writes wait, yamux stops reading, and the
//! peer's own sends stall instead of this side's memory growing.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf};
use tokio::sync::mpsc;

use crate::seal::{Keys, OpenReader};

/// Most bytes queued for sending before writes wait: above the largest
/// receive window a well-behaved peer grants (`mux::MAX_WINDOW`), with room
/// for the frames yamux sends outside flow control. Each write is counted
/// with [`PER_WRITE`] more for its allocation, so the bound holds for memory
/// and not only for payload, even when a flood is answered in 12-byte pongs.
pub const MAX_QUEUED: usize = crate::mux::MAX_WINDOW + (8 << 20);
/// What one queued write costs beyond its bytes (allocation and queue slot).
const PER_WRITE: usize = 64;

struct Shared {
    queued: AtomicUsize,
    failed: AtomicBool,
    drained: AtomicWaker,
}

/// A sealed stream whose writes never block on the socket (they are queued
/// for a writer task).
pub struct Decoupled<T> {
    rd: OpenReader<ReadHalf<T>>,
    tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    shared: Arc<Shared>,
}

impl<T: AsyncRead + AsyncWrite + Send + 'static> Decoupled<T> {
    /// Splits `io`, opens what it reads with `keys.recv`, and starts the
    /// writer task that seals with `keys.send`.
    pub fn sealed(io: T, keys: Keys) -> Self {
        let (rd, mut wr) = tokio::io::split(io);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            drained: AtomicWaker::new(),
        });
        let sh = shared.clone();
        let mut sealer = keys.send;
        tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(mut batch) = rx.recv().await {
                let mut cost = batch.len() + PER_WRITE;
                // Coalesce what is already queued into one write.
                while batch.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => {
                            batch.extend_from_slice(&more);
                            cost += more.len() + PER_WRITE;
                        }
                        Err(_) => break,
                    }
                }
                out.clear();
                let ok = sealer.seal(&batch, &mut out).is_ok()
                    && wr.write_all(&out).await.is_ok()
                    && wr.flush().await.is_ok();
                sh.queued.fetch_sub(cost, Ordering::AcqRel);
                sh.drained.wake();
                if !ok {
                    sh.failed.store(true, Ordering::Release);
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        Self { rd: OpenReader::new(rd, keys.recv), tx: Some(tx), shared }
    }
}

impl<T: AsyncRead> AsyncRead for Decoupled<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl<T> AsyncWrite for Decoupled<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let broken = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed");
        if self.shared.failed.load(Ordering::Acquire) {
            return Poll::Ready(Err(broken()));
        }
        if self.shared.queued.load(Ordering::Acquire) >= MAX_QUEUED {
            self.shared.drained.register(cx.waker());
            // The writer may have drained between the check and the registration.
            if self.shared.queued.load(Ordering::Acquire) >= MAX_QUEUED {
                return Poll::Pending;
            }
        }
        let Some(tx) = &self.tx else { return Poll::Ready(Err(broken())) };
        // Counted before it is queued, so the writer never subtracts first.
        self.shared.queued.fetch_add(buf.len() + PER_WRITE, Ordering::AcqRel);
        match tx.send(buf.to_vec()) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(broken())),
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

const _: () = assert!(crate::mux::MAX_WINDOW < MAX_QUEUED);
