//! The opened side of a tunnel, read where the multiplexer is while traffic
//! is light and by a task of its own during bursts.
//!
//! Opening what arrives (TLS, then the end-to-end records,
//! [`crate::seal::OpenReader`]) is most of a receiving app's work. Done in the
//! multiplexer's task, it is one serial stage with the frame parsing and the
//! hand-out to every stream. During a burst ([`BURST`] bytes within
//! [`BURST_WINDOW`]) the reader moves into a task that opens up to
//! [`READ_AHEAD`] chunks of [`READ_CHUNK`] bytes ahead, on the other core,
//! while the multiplexer hands out the previous ones. When nothing arrives
//! for [`QUIET`], or at the end of the stream, the task hands the reader
//! back, so a new connection's set-up (a few small messages) pays no extra
//! wake-up. Memory stays bounded: a chunk is read only when the channel has
//! room for it, so a multiplexer that stops reading stops the socket's
//! reading too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

/// Bytes read within [`BURST_WINDOW`] that start a burst.
pub const BURST: usize = 256 * 1024;
/// The window [`BURST`] is counted over (256 KiB a millisecond is 2 Gbit/s).
pub const BURST_WINDOW: Duration = Duration::from_millis(1);
/// Most bytes in one chunk the task hands over.
pub const READ_CHUNK: usize = 64 * 1024;
/// Chunks opened ahead of the multiplexer.
pub const READ_AHEAD: usize = 4;
/// Silence that ends a burst.
pub const QUIET: Duration = Duration::from_millis(2);

/// What the task hands over, in order.
enum Chunk<R> {
    Data(Vec<u8>),
    /// The burst is over (or the stream ended): the reader comes back.
    Back(R),
    Failed(io::Error),
}

/// Reads `R` inline, or through a read-ahead task during bursts.
pub struct Inbound<R> {
    state: State<R>,
}

enum State<R> {
    Inline {
        rd: R,
        /// Bytes read since `since`.
        run: usize,
        since: Instant,
    },
    Ahead {
        rx: mpsc::Receiver<Chunk<R>>,
        cur: Vec<u8>,
        pos: usize,
        _task: AbortOnDropHandle<()>,
    },
    /// A read failed; every later read fails the same way.
    Failed(io::ErrorKind, String),
}

impl<R: AsyncRead + Send + Unpin + 'static> Inbound<R> {
    /// Reads `rd`, inline until the first burst.
    pub fn new(rd: R) -> Self {
        Self { state: State::Inline { rd, run: 0, since: Instant::now() } }
    }

    /// Whether a read-ahead task has the reader now.
    pub fn is_ahead(&self) -> bool {
        matches!(self.state, State::Ahead { .. })
    }

    fn ahead(mut rd: R) -> State<R> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = tx.reserve().await else { return };
                let mut buf = Vec::with_capacity(READ_CHUNK);
                match tokio::time::timeout(QUIET, rd.read_buf(&mut buf)).await {
                    // Quiet, or the end: the reader goes back, after every chunk before it.
                    Err(_) | Ok(Ok(0)) => {
                        permit.send(Chunk::Back(rd));
                        return;
                    }
                    Ok(Err(e)) => {
                        permit.send(Chunk::Failed(e));
                        return;
                    }
                    Ok(Ok(_)) => {}
                }
                // Take what else is there already, without waiting.
                let mut failed = None;
                while buf.len() < READ_CHUNK {
                    match rd.read_buf(&mut buf).now_or_never() {
                        Some(Ok(n)) if n > 0 => {}
                        Some(Err(e)) => {
                            failed = Some(e);
                            break;
                        }
                        _ => break,
                    }
                }
                permit.send(Chunk::Data(buf));
                if let Some(e) = failed {
                    let _ = tx.send(Chunk::Failed(e)).await;
                    return;
                }
            }
        });
        State::Ahead { rx, cur: Vec::new(), pos: 0, _task: AbortOnDropHandle::new(task) }
    }
}

impl<R: AsyncRead + Send + Unpin + 'static> AsyncRead for Inbound<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            match &mut me.state {
                State::Inline { rd, run, since } => {
                    let before = out.filled().len();
                    match Pin::new(rd).poll_read(cx, out) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {
                            let n = out.filled().len() - before;
                            let now = Instant::now();
                            if now.duration_since(*since) > BURST_WINDOW {
                                (*run, *since) = (0, now);
                            }
                            *run += n;
                            if n > 0 && *run >= BURST {
                                let State::Inline { rd, .. } = std::mem::replace(
                                    &mut me.state,
                                    State::Failed(io::ErrorKind::Other, String::new()),
                                ) else {
                                    unreachable!("inline")
                                };
                                me.state = Self::ahead(rd);
                            }
                            return Poll::Ready(Ok(()));
                        }
                        Poll::Ready(Err(e)) => {
                            me.state = State::Failed(e.kind(), e.to_string());
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                State::Ahead { rx, cur, pos, .. } => {
                    if *pos < cur.len() {
                        let n = (cur.len() - *pos).min(out.remaining());
                        out.put_slice(&cur[*pos..*pos + n]);
                        *pos += n;
                        return Poll::Ready(Ok(()));
                    }
                    match rx.poll_recv(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Chunk::Data(v))) => (*cur, *pos) = (v, 0),
                        Poll::Ready(Some(Chunk::Back(rd))) => {
                            me.state = State::Inline { rd, run: 0, since: Instant::now() }
                        }
                        Poll::Ready(Some(Chunk::Failed(e))) => {
                            me.state = State::Failed(e.kind(), e.to_string());
                            return Poll::Ready(Err(e));
                        }
                        Poll::Ready(None) => {
                            me.state = State::Failed(io::ErrorKind::BrokenPipe, "connection closed".into());
                        }
                    }
                }
                State::Failed(kind, message) => return Poll::Ready(Err(io::Error::new(*kind, message.clone()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! With the clock paused (it moves only while every task waits), a burst
    //! is one however slowly a debug build on a busy machine reads it.
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// Reads one small message until the reader is back inline (the task
    /// hands it back after [`QUIET`]; a busy machine may schedule it late).
    async fn until_inline<R: AsyncRead + Send + Unpin + 'static>(
        inbound: &mut Inbound<R>,
        far: &mut tokio::io::DuplexStream,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(QUIET * 5).await;
            far.write_all(b"after").await.unwrap();
            let mut got = [0u8; 5];
            inbound.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"after");
            if !inbound.is_ahead() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "still read ahead after 10 s of light traffic");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_read_ahead_and_light_traffic_inline_in_order_to_the_end() {
        let (mut far, near) = tokio::io::duplex(1 << 20);
        let mut inbound = Inbound::new(near);
        // A small message is read inline.
        far.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        inbound.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert!(!inbound.is_ahead());
        // A burst (more than BURST bytes waiting) moves the reading into the task.
        let want = data(4 << 20);
        far.write_all(&want[..1 << 20]).await.unwrap();
        let sent = want.clone();
        let writer = tokio::spawn(async move {
            far.write_all(&sent[1 << 20..]).await.unwrap();
            far
        });
        let mut got = vec![0u8; want.len()];
        let mut saw_ahead = false;
        let mut at = 0;
        while at < got.len() {
            let n = inbound.read(&mut got[at..(at + 16 * 1024).min(want.len())]).await.unwrap();
            assert!(n > 0, "ended early at {at}");
            at += n;
            saw_ahead |= inbound.is_ahead();
        }
        assert!(saw_ahead, "a 4 MiB burst was read ahead");
        assert!(got == want, "the bytes came in order");
        // After a quiet spell the reader is back inline, and the end is passed on.
        let mut far = writer.await.unwrap();
        until_inline(&mut inbound, &mut far).await;
        drop(far);
        let mut rest = Vec::new();
        assert_eq!(inbound.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_stops_the_socket_reading_too() {
        let cap = BURST + 64 * 1024;
        let (mut far, near) = tokio::io::duplex(cap);
        let mut inbound = Inbound::new(near);
        let total = 16 << 20;
        let want = data(total);
        let first = BURST + 8 * 1024;
        far.write_all(&want[..first]).await.unwrap();
        let sent = want.clone();
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(first));
        let w = written.clone();
        let writer = tokio::spawn(async move {
            for piece in sent[first..].chunks(8 * 1024) {
                far.write_all(piece).await.unwrap();
                w.fetch_add(piece.len(), std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Start a burst, then stop reading.
        let mut got = vec![0u8; BURST + 1];
        inbound.read_exact(&mut got).await.unwrap();
        assert!(inbound.is_ahead());
        // Wait until the writer stops making progress (polled, with a deadline).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut last = (usize::MAX, 0);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = written.load(std::sync::atomic::Ordering::SeqCst);
            last = if now == last.0 { (now, last.1 + 1) } else { (now, 0) };
            if last.1 >= 10 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the writer never stopped: {now} bytes");
        }
        let held = last.0 - got.len();
        // The promise, in bytes (not in the constants, which a change could
        // raise): at most half a MiB taken beyond what the socket buffers.
        let bound = cap + 512 * 1024;
        assert!(held <= bound, "{held} bytes taken ahead of the reader, more than {bound}");
        // Reading on gets every byte in order.
        let mut rest = vec![0u8; total - got.len()];
        inbound.read_exact(&mut rest).await.unwrap();
        writer.await.unwrap();
        got.extend_from_slice(&rest);
        assert!(got == want);
    }

    /// A stream that yields `good` bytes, then fails.
    struct Breaks {
        good: Vec<u8>,
    }

    impl AsyncRead for Breaks {
        fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if self.good.is_empty() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "a record failed")));
            }
            let n = self.good.len().min(out.remaining());
            out.put_slice(&self.good[..n]);
            self.good.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_in_the_task_comes_after_the_data_before_it_and_stays() {
        let want = data(BURST + 3 * READ_CHUNK + 5);
        let mut inbound = Inbound::new(Breaks { good: want.clone() });
        let mut got = Vec::new();
        let e = inbound.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(got == want, "{} of {} bytes before the failure", got.len(), want.len());
        let again = inbound.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!((again.kind(), again.to_string()), (e.kind(), e.to_string()));
    }
}
