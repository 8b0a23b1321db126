//! Larger reads under TLS while bulk data flows, none while it does not.
//!
//! rustls asks its socket for at most 4 KiB at a time, so a 16 KiB TLS record
//! costs four or five `read` system calls; on a relay carrying gigabits that
//! is a large share of its CPU. [`ReadAhead`] sits between rustls and the
//! socket: a read that fills what rustls asked for shows that more is
//! waiting, and from then on the socket is read [`CHUNK`] bytes at a time into
//! a buffer that rustls is served from. When a read comes back short (the
//! burst is over) and the buffer is drained, the buffer is freed, so an idle
//! connection holds nothing extra: the gateway keeps thousands of them.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at once while data streams in.
pub const CHUNK: usize = 64 * 1024;

/// A stream whose reads grow to [`CHUNK`] bytes during bursts.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`; no buffer until the first burst.
    pub fn new(inner: S) -> Self {
        Self { inner, buf: Vec::new(), pos: 0, end: 0 }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream and the bytes read from it that nobody took yet.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        let rest = self.buf[self.pos..self.end].to_vec();
        (self.inner, rest)
    }

    /// Bytes held in the read-ahead buffer (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos == this.end && !this.buf.is_empty() {
            // Drained: read the next chunk, or leave burst mode.
            let mut rb = ReadBuf::new(&mut this.buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    (this.pos, this.end) = (0, n);
                    if n < CHUNK / 4 {
                        // A short read: the burst is over. Serve these bytes
                        // and free the buffer once they are taken.
                        let take = n.min(out.remaining());
                        out.put_slice(&this.buf[..take]);
                        this.pos = take;
                        if this.pos == this.end {
                            this.buf = Vec::new();
                            (this.pos, this.end) = (0, 0);
                        }
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Nothing waiting: drop the buffer while idle.
                    this.buf = Vec::new();
                    (this.pos, this.end) = (0, 0);
                    return Poll::Pending;
                }
            }
        }
        if this.pos < this.end {
            let take = (this.end - this.pos).min(out.remaining());
            out.put_slice(&this.buf[this.pos..this.pos + take]);
            this.pos += take;
            if this.pos == this.end && this.end < CHUNK / 4 {
                this.buf = Vec::new();
                (this.pos, this.end) = (0, 0);
            }
            return Poll::Ready(Ok(()));
        }
        // No buffer: read straight into the caller's; a full read starts a burst.
        let before = out.filled().len();
        let asked = out.remaining();
        let r = Pin::new(&mut this.inner).poll_read(cx, out);
        if let Poll::Ready(Ok(())) = r {
            if asked > 0 && out.filled().len() - before == asked {
                this.buf = vec![0u8; CHUNK];
                (this.pos, this.end) = (0, 0);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bursts_read_ahead_and_idle_holds_no_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut r = ReadAhead::new(rx);
        // A burst: every byte arrives in order, through the buffer.
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&data).await.unwrap();
        let mut got = vec![0u8; data.len()];
        let mut small = [0u8; 4096];
        let mut n = 0;
        let mut buffered = false;
        while n < data.len() {
            let k = r.read(&mut small).await.unwrap();
            got[n..n + k].copy_from_slice(&small[..k]);
            n += k;
            buffered |= r.buffered_capacity() > 0;
        }
        assert_eq!(got, data);
        assert!(buffered, "a burst read ahead");
        // Idle: the next read waits; the buffer is gone.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(50), r.read(&mut small)).await;
        assert!(pending.is_err());
        assert_eq!(r.buffered_capacity(), 0, "an idle stream holds no read-ahead buffer");
        // A trickle afterwards comes through unbuffered.
        tx.write_all(b"ping").await.unwrap();
        let k = r.read(&mut small).await.unwrap();
        assert_eq!(&small[..k], b"ping");
        assert_eq!(r.buffered_capacity(), 0);
        drop(tx);
        assert_eq!(r.read(&mut small).await.unwrap(), 0);
    }
}
