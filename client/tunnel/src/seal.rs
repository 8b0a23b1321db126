//! The end-to-end record layer under the multiplexer: after the login, every
//! byte between thinclient and thinsvr travels in AES-256-GCM records under
//! keys that only the two ends hold, so the gateway (and anyone who controls
//! it) relays ciphertext it can neither read nor alter.
//!
//! A record is a 4-byte big-endian length (which is also the record's
//! associated data), then that many bytes of ciphertext and tag. Each
//! direction has its own key, derived from the OPAQUE session key and the
//! login transcript ([`Keys::derive`]), and counts its records: the nonce is
//! the record number, never sent, so a record that is altered, dropped,
//! repeated, reordered or taken from another session fails to open, and the
//! tunnel closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use thin_protocol::auth::SessionKey;
use tokio::io::{AsyncRead, ReadBuf};

/// Largest plaintext in one record that this end accepts (earlier
/// versions sealed up to this much).
pub const MAX_PLAIN: usize = 32 * 1024;
pub(crate) const TAG: usize = 16;
pub(crate) const HEADER: usize = 4;
/// Largest plaintext in one record that this end seals: a whole record is
/// then exactly the content of one TLS record (2^14 bytes), so the tunnel's
/// TLS leg can carry it sealed in the same bytes ([`Sealer::seal_gapped`]).
pub const SEND_PLAIN: usize = thin_protocol::records::MAX_CONTENT - HEADER - TAG;
/// Room left before each record's plaintext in a sending buffer: a TLS
/// record header, then this record's header.
pub const GAP_BEFORE: usize = thin_protocol::records::HEADER + HEADER;
/// Room left after it: this record's tag, then the TLS record's content
/// type and tag.
pub const GAP_AFTER: usize = TAG + 1 + thin_protocol::records::TAG;
/// Largest record on the wire (header, ciphertext, tag).
pub const MAX_RECORD: usize = HEADER + MAX_PLAIN + TAG;

/// Which end of the tunnel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// thinclient, on the home PC.
    Client,
    /// thinsvr, on the office PC.
    Server,
}

/// The two directions' keys of one tunnel.
pub struct Keys {
    /// Seals what this end sends.
    pub send: Sealer,
    /// Opens what this end receives.
    pub recv: Opener,
    /// A value both ends of this login share and nobody else knows, different
    /// in every login: what a home PC's device key signs
    /// ([`thin_protocol::device_check`]), so a proof cannot be replayed.
    pub binding: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(MASKED)")
    }
}

impl Keys {
    /// Derives both directions' keys from the login's session key and
    /// `transcript` (a hash of every login message in both directions).
    pub fn derive(key: &SessionKey, transcript: &[u8], role: Role) -> Self {
        let c2s = key.expand(transcript, "thintelework e2e v2 record key client to server");
        let s2c = key.expand(transcript, "thintelework e2e v2 record key server to client");
        let binding = *key.expand(transcript, "thintelework e2e v2 device binding");
        let (send, recv) = match role {
            Role::Client => (c2s, s2c),
            Role::Server => (s2c, c2s),
        };
        Self { send: Sealer { key: aead_key(&send), next: 0 }, recv: Opener { key: aead_key(&recv), next: 0 }, binding }
    }
}

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key"))
}

/// The nonce of record number `n`: never repeated under one key, since each
/// direction has its own key and counts from zero.
fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(b)
}

fn exhausted() -> io::Error {
    io::Error::other("the end-to-end record counter is exhausted; reconnect")
}

/// Seals plaintext into records.
pub struct Sealer {
    key: LessSafeKey,
    next: u64,
}

impl Sealer {
    /// Appends `plain` to `out` as records of at most [`MAX_PLAIN`] bytes each.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.reserve(plain.len() + plain.len().div_ceil(MAX_PLAIN) * (HEADER + TAG));
        for chunk in plain.chunks(MAX_PLAIN) {
            let n = self.next;
            self.next = n.checked_add(1).ok_or_else(exhausted)?;
            let header = ((chunk.len() + TAG) as u32).to_be_bytes();
            out.extend_from_slice(&header);
            let start = out.len();
            out.extend_from_slice(chunk);
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce(n), Aad::from(header), &mut out[start..])
                .map_err(|_| io::Error::other("sealing failed"))?;
            out.extend_from_slice(tag.as_ref());
        }
        Ok(())
    }
}

/// One sealed record's header and tag; its ciphertext stays where the
/// plaintext was ([`Sealer::seal_in_place`]).
pub struct Frame {
    /// Length (of ciphertext and tag), big-endian; also the associated data.
    pub header: [u8; HEADER],
    /// Authentication tag.
    pub tag: [u8; TAG],
}

impl Sealer {
    /// Encrypts `buf` in place as records of at most [`MAX_PLAIN`] bytes
    /// (one per chunk of `buf.chunks_mut(MAX_PLAIN)`), returning each
    /// record's header and tag: record `i` on the wire is `frames[i].header`,
    /// chunk `i`, `frames[i].tag`. No plaintext is copied.
    pub fn seal_in_place(&mut self, buf: &mut [u8], frames: &mut Vec<Frame>) -> io::Result<()> {
        frames.clear();
        for chunk in buf.chunks_mut(MAX_PLAIN) {
            let n = self.next;
            self.next = n.checked_add(1).ok_or_else(exhausted)?;
            let header = ((chunk.len() + TAG) as u32).to_be_bytes();
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce(n), Aad::from(header), chunk)
                .map_err(|_| io::Error::other("sealing failed"))?;
            let mut t = [0u8; TAG];
            t.copy_from_slice(tag.as_ref());
            frames.push(Frame { header, tag: t });
        }
        Ok(())
    }
}

impl Sealer {
    /// Seals, in place, the record laid out at the start of `rec`:
    /// [`GAP_BEFORE`] bytes of room, `plain` bytes of plaintext (at most
    /// [`SEND_PLAIN`]), [`GAP_AFTER`] bytes of room. Writes the record's
    /// header and tag around its ciphertext and returns where the record
    /// (header to tag) lies in `rec`; the room left around it is the TLS
    /// record's.
    pub fn seal_gapped(&mut self, rec: &mut [u8], plain: usize) -> io::Result<std::ops::Range<usize>> {
        debug_assert!(plain <= SEND_PLAIN);
        let n = self.next;
        self.next = n.checked_add(1).ok_or_else(exhausted)?;
        let header = ((plain + TAG) as u32).to_be_bytes();
        let start = GAP_BEFORE - HEADER;
        rec[start..GAP_BEFORE].copy_from_slice(&header);
        let body = &mut rec[GAP_BEFORE..GAP_BEFORE + plain];
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(n), Aad::from(header), body)
            .map_err(|_| io::Error::other("sealing failed"))?;
        rec[GAP_BEFORE + plain..GAP_BEFORE + plain + TAG].copy_from_slice(tag.as_ref());
        Ok(start..GAP_BEFORE + plain + TAG)
    }
}

/// Opens records.
pub struct Opener {
    key: LessSafeKey,
    next: u64,
}

impl Opener {
    /// Opens one record's ciphertext and tag in place; returns the plaintext's length.
    pub(crate) fn open(&mut self, header: [u8; HEADER], body: &mut [u8]) -> io::Result<usize> {
        let n = self.next;
        self.next = n.checked_add(1).ok_or_else(exhausted)?;
        let plain = self.key.open_in_place(nonce(n), Aad::from(header), body).map_err(|_| tampered())?;
        Ok(plain.len())
    }
}

/// The length (ciphertext and tag) that a record's header announces, or why
/// it is refused.
pub(crate) fn body_len(header: [u8; HEADER]) -> io::Result<usize> {
    let len = u32::from_be_bytes(header) as usize;
    if !(TAG..=MAX_PLAIN + TAG).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an end-to-end record of {len} bytes is outside the allowed 16..={} bytes", MAX_PLAIN + TAG),
        ));
    }
    Ok(len)
}

pub(crate) fn tampered() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "an end-to-end record failed authentication: the data was altered, replayed or injected between the two computers",
    )
}

/// Reads records from `inner` and yields their plaintext. Holds at most two
/// records' worth of bytes, whatever the peer sends.
pub struct OpenReader<R> {
    inner: R,
    opener: Opener,
    buf: Box<[u8]>,
    /// Unparsed bytes are `buf[head..tail]`.
    head: usize,
    tail: usize,
    /// Opened plaintext not yet handed out.
    plain: (usize, usize),
    failed: bool,
}

impl<R> OpenReader<R> {
    /// Reads records from `inner`, opened with `opener`.
    pub fn new(inner: R, opener: Opener) -> Self {
        Self {
            inner,
            opener,
            buf: vec![0u8; 2 * MAX_RECORD].into_boxed_slice(),
            head: 0,
            tail: 0,
            plain: (0, 0),
            failed: false,
        }
    }

    /// Opens the next complete record in the buffer, if there is one.
    fn next_record(&mut self) -> io::Result<bool> {
        let avail = self.tail - self.head;
        if avail < HEADER {
            return Ok(false);
        }
        let header: [u8; HEADER] = self.buf[self.head..self.head + HEADER].try_into().expect("4 bytes");
        let len = body_len(header)?;
        if avail < HEADER + len {
            return Ok(false);
        }
        let start = self.head + HEADER;
        let n = self.opener.open(header, &mut self.buf[start..start + len])?;
        self.head = start + len;
        self.plain = (start, start + n);
        Ok(true)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for OpenReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.failed {
            return Poll::Ready(Err(tampered()));
        }
        loop {
            let (a, b) = me.plain;
            if a < b {
                let n = (b - a).min(out.remaining());
                out.put_slice(&me.buf[a..a + n]);
                me.plain.0 += n;
                return Poll::Ready(Ok(()));
            }
            match me.next_record() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    me.failed = true;
                    return Poll::Ready(Err(e));
                }
            }
            // Make room for a whole record after `head`.
            if me.head == me.tail {
                (me.head, me.tail) = (0, 0);
            } else if me.buf.len() - me.head < MAX_RECORD {
                me.buf.copy_within(me.head..me.tail, 0);
                (me.head, me.tail) = (0, me.tail - me.head);
            }
            let mut rb = ReadBuf::new(&mut me.buf[me.tail..]);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Poll::Ready(if me.head == me.tail {
                        Ok(())
                    } else {
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the tunnel was cut in the middle of a record",
                        ))
                    });
                }
                Poll::Ready(Ok(())) => me.tail += rb.filled().len(),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use thin_protocol::auth::{ClientAuth, PasswordFile, ServerAuth};
    use tokio::io::AsyncReadExt;

    pub(crate) fn session() -> (SessionKey, SessionKey) {
        let file = PasswordFile::create("correct horse battery").unwrap();
        let (c, ke1) = ClientAuth::start("correct horse battery").unwrap();
        let (s, ke2) = ServerAuth::start(&file, "desk", &ke1).unwrap();
        let (ke3, ck) = c.finish("correct horse battery", "desk", &ke2).unwrap();
        (ck, s.finish(&ke3).unwrap())
    }

    /// The two ends' keys of one login: (client, server).
    pub(crate) fn pair() -> (Keys, Keys) {
        let (ck, sk) = session();
        (Keys::derive(&ck, b"transcript", Role::Client), Keys::derive(&sk, b"transcript", Role::Server))
    }

    async fn read_all(wire: Vec<u8>, opener: Opener) -> io::Result<Vec<u8>> {
        let mut r = OpenReader::new(&wire[..], opener);
        let mut got = Vec::new();
        r.read_to_end(&mut got).await?;
        Ok(got)
    }

    #[tokio::test]
    async fn records_sealed_in_place_open_like_copied_ones() {
        let (mut c, s) = pair();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        let mut buf = data.clone();
        let mut frames = Vec::new();
        c.send.seal_in_place(&mut buf, &mut frames).unwrap();
        assert_eq!(frames.len(), data.len().div_ceil(MAX_PLAIN));
        assert_ne!(buf, data, "encrypted in place");
        let mut wire = Vec::new();
        for (f, chunk) in frames.iter().zip(buf.chunks(MAX_PLAIN)) {
            wire.extend_from_slice(&f.header);
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(&f.tag);
        }
        // The record count goes on across both ways of sealing.
        c.send.seal(b"tail", &mut wire).unwrap();
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(read_all(wire, s.recv).await.unwrap(), want);
    }

    #[tokio::test]
    async fn records_round_trip_in_both_directions_and_stay_bounded() {
        let (mut c, mut s) = pair();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        let mut wire = Vec::new();
        c.send.seal(&data[..1000], &mut wire).unwrap();
        c.send.seal(&data[1000..], &mut wire).unwrap();
        for probe in [&data[..64], &data[5000..5064], &data[150_000..150_064]] {
            assert!(!wire.windows(64).any(|w| w == probe), "plaintext leaked onto the wire");
        }
        assert_eq!(read_all(wire, s.recv).await.unwrap(), data);
        let mut back = Vec::new();
        s.send.seal(b"pong", &mut back).unwrap();
        assert_eq!(read_all(back, c.recv).await.unwrap(), b"pong");
    }

    #[tokio::test]
    async fn altered_reordered_replayed_reflected_and_oversized_records_fail() {
        let (ck, sk) = session();
        let server = || Keys::derive(&sk, b"transcript", Role::Server).recv;
        let mut c = Keys::derive(&ck, b"transcript", Role::Client);
        let mut wire = Vec::new();
        c.send.seal(b"first", &mut wire).unwrap();
        let one = wire.len();
        c.send.seal(b"second", &mut wire).unwrap();
        assert_eq!(read_all(wire.clone(), server()).await.unwrap(), b"firstsecond");

        let mut flipped = wire.clone();
        flipped[HEADER + 2] ^= 1;
        assert_eq!(read_all(flipped, server()).await.unwrap_err().kind(), io::ErrorKind::InvalidData);

        let mut swapped = wire[one..].to_vec();
        swapped.extend_from_slice(&wire[..one]);
        assert_eq!(read_all(swapped, server()).await.unwrap_err().kind(), io::ErrorKind::InvalidData);

        let mut repeated = wire[..one].to_vec();
        repeated.extend_from_slice(&wire[..one]);
        assert!(read_all(repeated, server()).await.is_err());

        // Another login's keys (a recorded session replayed) do not open it,
        // nor does a transcript that differs, nor the sender's own direction.
        let (_, other) = session();
        assert!(read_all(wire.clone(), Keys::derive(&other, b"transcript", Role::Server).recv).await.is_err());
        assert!(read_all(wire.clone(), Keys::derive(&sk, b"transcripT", Role::Server).recv).await.is_err());
        assert!(read_all(wire.clone(), c.recv).await.is_err());

        let mut huge = ((MAX_PLAIN + TAG + 1) as u32).to_be_bytes().to_vec();
        huge.extend(std::iter::repeat_n(0u8, 100));
        let e = read_all(huge, server()).await.unwrap_err();
        assert!(e.to_string().contains("outside the allowed"), "{e}");

        let mut cut = wire[..one].to_vec();
        cut.pop();
        assert_eq!(read_all(cut, server()).await.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
