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
//!
//! An app that takes its TLS connection out of rustls after the login
//! ([`ReadAhead::tracking`]) needs the bytes rustls had read but not yet
//! turned into a record (rustls reads 4 KiB at a time, so a record often
//! lies half in its buffer, which it does not give back): the tracker keeps
//! a copy of the record being handed over, up to its end, and
//! [`ReadAhead::into_parts`] returns them before the bytes not yet read.

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
    track: Option<Tracker>,
}

/// TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;

/// The TLS record being handed to the reader: the bytes handed so far
/// (kept only while the record is incomplete) and how long it is.
#[derive(Debug, Default)]
struct Tracker {
    partial: Vec<u8>,
    /// Header, then body: bytes still to come of the current record, once
    /// its header is known.
    left: usize,
}

impl Tracker {
    /// Follows `bytes`, handed over in order.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.left == 0 {
                // A header, whole or in part.
                let n = (RECORD_HEADER - self.partial.len()).min(bytes.len());
                self.partial.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if self.partial.len() == RECORD_HEADER {
                    self.left = u16::from_be_bytes([self.partial[3], self.partial[4]]) as usize;
                    if self.left == 0 {
                        self.partial.clear();
                    }
                }
                continue;
            }
            let n = self.left.min(bytes.len());
            self.left -= n;
            if self.left == 0 {
                self.partial.clear();
            } else {
                self.partial.extend_from_slice(&bytes[..n]);
            }
            bytes = &bytes[n..];
        }
    }
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`; no buffer until the first burst.
    pub fn new(inner: S) -> Self {
        Self { inner, buf: Vec::new(), pos: 0, end: 0, track: None }
    }

    /// Wraps `inner` and keeps the TLS record being handed over until its
    /// end, for [`ReadAhead::into_parts`] (the stream carries TLS records
    /// from its first byte).
    pub fn tracking(inner: S) -> Self {
        Self { track: Some(Tracker::default()), ..Self::new(inner) }
    }

    /// Stops keeping records (the connection stays with rustls).
    pub fn stop_tracking(&mut self) {
        self.track = None;
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream and the bytes read from it that nobody took yet;
    /// when [tracking](ReadAhead::tracking), preceded by the part of a
    /// record already handed over (what the reader holds of an unfinished
    /// record).
    pub fn into_parts(self) -> (S, Vec<u8>) {
        let mut rest = self.track.map(|t| t.partial).unwrap_or_default();
        rest.extend_from_slice(&self.buf[self.pos..self.end]);
        (self.inner, rest)
    }

    /// Bytes held in the read-ahead buffer (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = out.filled().len();
        let r = self.poll_fill(cx, out);
        if let Some(t) = &mut self.track {
            t.feed(&out.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncRead + Unpin> ReadAhead<S> {
    fn poll_fill(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self;
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

    #[tokio::test]
    async fn tracking_gives_back_the_unfinished_record_and_the_unread_bytes() {
        // Records of many lengths (an empty one too), as TLS frames them.
        let mut wire = Vec::new();
        let mut ends = vec![0];
        for (i, len) in [300usize, 0, 16_401, 5, 9000, 70, 16_401, 1].into_iter().cycle().take(40).enumerate() {
            wire.extend_from_slice(&[23, 3, 3, (len >> 8) as u8, len as u8]);
            wire.extend((0..len).map(|j| (i * 31 + j) as u8));
            ends.push(wire.len());
        }
        for stop in [1usize, 4, 5, 6, 4096, 20_000, 100_000, wire.len() - 1] {
            for piece in [1usize, 3, 4096, 70_000] {
                let (mut tx, rx) = tokio::io::duplex(1 << 20);
                tx.write_all(&wire).await.unwrap();
                let mut r = ReadAhead::tracking(rx);
                // The reader takes `stop` bytes, `piece` at a time, and is
                // left holding those past the last whole record.
                let mut taken = Vec::new();
                let mut buf = vec![0u8; piece];
                while taken.len() < stop {
                    let want = piece.min(stop - taken.len());
                    let k = r.read(&mut buf[..want]).await.unwrap();
                    taken.extend_from_slice(&buf[..k]);
                }
                let whole = *ends.iter().rev().find(|&&e| e <= taken.len()).unwrap();
                let (mut inner, rest) = r.into_parts();
                // Whole records taken, then what is given back, then what
                // the socket still holds: the stream, no byte lost or twice.
                let mut again = taken[..whole].to_vec();
                again.extend_from_slice(&rest);
                drop(tx);
                inner.read_to_end(&mut again).await.unwrap();
                assert!(again == wire, "stop {stop}, piece {piece}: bytes lost or repeated");
            }
        }
    }
}
