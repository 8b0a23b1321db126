//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! Reads never buffer past the end of a frame, so after the handshake the same
//! stream can be handed to a raw byte relay without losing data.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame a peer may send. Anything bigger closes the connection.
pub const MAX_FRAME: usize = 64 * 1024;

/// Errors reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed by peer")]
    Closed,
    /// I/O failure on the underlying stream.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A length prefix above [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    /// The bytes are not a message of the expected kind.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Reads one frame and decodes it as `T`.
pub async fn read_frame<T, R>(r: &mut R) -> Result<T, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Encodes `msg` and writes it as one frame, then flushes.
pub async fn write_frame<T, W>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let body = serde_json::to_vec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// Reads frames so that a read may be cancelled (in `select!`, by a timeout)
/// and resumed without losing a half-read frame: the bytes read so far stay
/// here until the frame is complete. Like [`read_frame`], it never reads past
/// the end of a frame.
///
/// Between frames it holds no buffer, and while a frame arrives its buffer
/// grows with the bytes that came (4 KiB at a time), not with the length the
/// peer announced: an idle session costs nothing here, and a peer that sends
/// a length prefix and stops does not make it allocate the whole frame.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Bytes of `buf` read so far (the rest is room for the next read).
    filled: usize,
}

/// The most one read adds to a [`FrameReader`]'s buffer.
const READ_STEP: usize = 4096;

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one frame and decodes it as `T`. Cancel-safe.
    pub async fn read<T, R>(&mut self, r: &mut R) -> Result<T, FrameError>
    where
        T: DeserializeOwned,
        R: AsyncRead + Unpin,
    {
        loop {
            let need = match self.buf.get(..4).filter(|_| self.filled >= 4) {
                Some(prefix) => {
                    let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
                    if len > MAX_FRAME {
                        *self = Self::default();
                        return Err(FrameError::TooLarge(len));
                    }
                    if self.filled == 4 + len {
                        let frame = std::mem::take(self).buf;
                        return serde_json::from_slice(&frame[4..4 + len])
                            .map_err(|e| FrameError::Malformed(e.to_string()));
                    }
                    4 + len
                }
                None => 4,
            };
            // Room for more only once the room there is has been filled.
            if self.filled == self.buf.len() {
                self.buf.resize(need.min(self.filled + READ_STEP), 0);
            }
            let end = self.buf.len();
            let n = r.read(&mut self.buf[self.filled..end]).await?;
            if n == 0 {
                return Err(if self.filled == 0 {
                    FrameError::Closed
                } else {
                    FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
                });
            }
            self.filled += n;
        }
    }
}

/// Reads frames on a task of their own and delivers them (and the first error)
/// on a channel, so that a session loop can `select!` on frames without losing
/// a half-read frame. The task ends after an error, or when the receiver is
/// dropped; abort the handle to stop it earlier.
pub fn spawn_reader<T, R>(
    mut rd: R,
) -> (tokio::sync::mpsc::Receiver<Result<T, FrameError>>, tokio::task::JoinHandle<()>)
where
    T: DeserializeOwned + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(async move {
        loop {
            let r = read_frame::<T, _>(&mut rd).await;
            let stop = r.is_err();
            if tx.send(r).await.is_err() || stop {
                return;
            }
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{GateToServer, ServerToGate};

    #[tokio::test]
    async fn frame_reader_survives_cancellation_and_does_not_over_read() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut fr = FrameReader::new();
        // Half a frame, then a read that is cancelled by a timeout.
        let body = serde_json::to_vec(&ServerToGate::Pong).unwrap();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        a.write_all(&bytes[..3]).await.unwrap();
        let t = tokio::time::timeout(std::time::Duration::from_millis(20), fr.read::<GateToServer, _>(&mut b)).await;
        assert!(t.is_err(), "no whole frame yet");
        a.write_all(&bytes[3..]).await.unwrap();
        a.write_all(b"tail").await.unwrap();
        assert!(matches!(fr.read::<GateToServer, _>(&mut b).await.unwrap(), GateToServer::Pong));
        let mut tail = [0u8; 4];
        b.read_exact(&mut tail).await.unwrap();
        assert_eq!(&tail, b"tail");
        a.write_all(&[0, 0]).await.unwrap();
        drop(a);
        assert!(matches!(fr.read::<GateToServer, _>(&mut b).await, Err(FrameError::Io(_))), "EOF inside a frame");
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(FrameReader::new().read::<GateToServer, _>(&mut b).await, Err(FrameError::TooLarge(_))));
        drop(a);
        assert!(matches!(FrameReader::new().read::<GateToServer, _>(&mut b).await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn frame_reader_holds_no_buffer_between_frames_and_grows_with_what_came() {
        let (mut a, mut b) = tokio::io::duplex(256 * 1024);
        let mut fr = FrameReader::new();
        write_frame(&mut a, &ServerToGate::Ping).await.unwrap();
        assert!(matches!(fr.read::<GateToServer, _>(&mut b).await.unwrap(), GateToServer::Ping));
        assert_eq!(fr.buf.capacity(), 0, "nothing held between frames");
        // A peer announces the largest frame and sends ten bytes of it.
        a.write_all(&(MAX_FRAME as u32).to_be_bytes()).await.unwrap();
        a.write_all(&[b' '; 10]).await.unwrap();
        let t = tokio::time::timeout(std::time::Duration::from_millis(20), fr.read::<GateToServer, _>(&mut b)).await;
        assert!(t.is_err(), "no whole frame yet");
        assert!(fr.buf.capacity() <= 4 + READ_STEP, "grew to {} for 14 bytes", fr.buf.capacity());
        // The rest, in one go: a frame of the largest size still decodes.
        let mut body = vec![b' '; MAX_FRAME - 10];
        let json = br#"{"t":"pong"}"#;
        let at = body.len() - json.len();
        body[at..].copy_from_slice(json);
        a.write_all(&body).await.unwrap();
        assert!(matches!(fr.read::<GateToServer, _>(&mut b).await.unwrap(), GateToServer::Pong));
        assert_eq!(fr.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn round_trip_and_no_over_read() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, &ServerToGate::Ping).await.unwrap();
        a.write_all(b"raw tail").await.unwrap();
        let m: GateToServer = read_frame(&mut b).await.unwrap();
        assert!(matches!(m, GateToServer::Ping));
        let mut tail = [0u8; 8];
        b.read_exact(&mut tail).await.unwrap();
        assert_eq!(&tail, b"raw tail");
    }

    #[tokio::test]
    async fn oversized_and_garbage_frames_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(read_frame::<GateToServer, _>(&mut b).await, Err(FrameError::TooLarge(_))));
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&5u32.to_be_bytes()).await.unwrap();
        a.write_all(b"\xff\x00zz{").await.unwrap();
        assert!(matches!(read_frame::<GateToServer, _>(&mut b).await, Err(FrameError::Malformed(_))));
        drop(a);
        assert!(matches!(read_frame::<GateToServer, _>(&mut b).await, Err(FrameError::Closed)));
    }
}
