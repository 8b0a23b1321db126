//! The tunnel's TLS leg handled in place after the login.
//!
//! Through rustls, a received byte is copied three times before the
//! multiplexer sees it (into rustls's plaintext queue, out of it into the
//! end-to-end reader's buffer, and by the read into yamux's), and a sent
//! byte once more than needed (rustls copies each end-to-end record into its
//! TLS record). After the login a TLS 1.3 tunnel is taken out of rustls
//! ([`take`]), as the gateway's relay takes its legs
//! ([`thin_protocol::records`]): each end-to-end record is sealed as exactly
//! one TLS record in the bytes it already lies in ([`crate::decouple`]), and
//! [`RecordReader`] opens a TLS record where the socket read put it, then the
//! end-to-end record inside it, in the same bytes. A record split over TLS
//! records (a gateway that relays through rustls re-frames them) is joined
//! first, with one move. Key updates and `close_notify` are followed as
//! rustls would; a connection rustls cannot hand over (TLS 1.2) stays with
//! rustls.
//!
//! **Bare records.** When the gateway agreed (`GateToTunnel::Paired {
//! bare_records }`), each direction of the leg switches, after the login,
//! from TLS records to bare ones: the sender seals its `close_notify` and
//! from then on frames each end-to-end record as a bare record
//! ([`seal_batch_bare`]); the gateway passes that `close_notify` on as its
//! own and the bare records as they come. The end-to-end keys protect every
//! byte that matters (confidentiality, integrity, order, replay), so sealing
//! them again on each leg, and opening and sealing them once more at the
//! gateway, protected nothing more: it cost four AES-GCM passes of the six
//! per byte. A bare record looks like the TLS record it replaces (same
//! header, same length) to anything between the app and the gateway.
//!
//! Who switches when: thinclient switches first, right after the login
//! (its last read of the login is the office PC's `Ready`, so nothing bare
//! can have reached its rustls); thinsvr switches once it has read that
//! switch, so its own `close_notify` cannot reach thinclient before
//! thinclient has taken its leg out of rustls (rustls would keep whatever
//! followed a `close_notify` to itself).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use thin_protocol::records::{self, Keys, LegKeys, Opened};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::link::LinkStream;
use crate::seal::{self, Opener};

/// A tunnel's TLS connection taken out of rustls.
pub struct Taken {
    /// The socket's two halves.
    pub rd: OwnedReadHalf,
    /// See `rd`.
    pub wr: OwnedWriteHalf,
    /// The traffic keys of both directions.
    pub keys: LegKeys,
    /// Plaintext rustls had opened and nobody read yet.
    pub plain: Vec<u8>,
    /// Bytes read from the socket that rustls had not opened: records.
    pub ahead: Vec<u8>,
    /// The gateway's `close_notify` came already.
    pub peer_closed: bool,
}

/// Takes `s` out of rustls after sending what rustls still held; gives it
/// back (`Err`) when its records cannot be handled here (not TLS 1.3).
pub async fn take(mut s: LinkStream) -> io::Result<Result<Taken, LinkStream>> {
    if !records::takeable(s.get_ref().1) {
        s.get_mut().0.stop_tracking();
        return Ok(Err(s));
    }
    s.flush().await?;
    let (ahead, mut conn) = s.into_inner();
    if conn.wants_write() {
        return Err(io::Error::other("TLS records still waiting to be sent"));
    }
    let mut plain = Vec::new();
    let peer_closed = match io::Read::read_to_end(&mut conn.reader(), &mut plain) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => return Err(e),
    };
    let secrets = conn.dangerous_extract_secrets().map_err(io::Error::other)?;
    let keys = LegKeys::from_secrets(secrets, thin_protocol::tls::app_secrets())
        .ok_or_else(|| io::Error::other("a TLS suite the app does not know"))?;
    let (tcp, ahead) = ahead.into_parts();
    let (rd, wr) = tcp.into_split();
    Ok(Ok(Taken { rd, wr, keys, plain, ahead, peer_closed }))
}

fn bad(e: records::RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Seals records of `batch` (laid out as [`crate::decouple`] queues them:
/// room, plaintext, room) end to end, then each as one TLS record around
/// it, all in place, from the start until the end or until the TLS send keys
/// are due for an update; returns how many bytes are sealed, ready for the
/// socket.
pub fn seal_batch(e2e: &mut seal::Sealer, tls: &mut Keys, batch: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < batch.len() && !tls.update_due() {
        let plain = (batch.len() - at - seal::GAP_BEFORE - seal::GAP_AFTER).min(seal::SEND_PLAIN);
        let inner = e2e.seal_gapped(&mut batch[at..], plain)?;
        at += records::seal(tls, &mut batch[at..], inner.len()).map_err(bad)?;
    }
    Ok(at)
}

/// Writes a sealed `key_update` (the send keys move on).
pub async fn send_key_update(wr: &mut OwnedWriteHalf, tls: &mut Keys) -> io::Result<()> {
    let mut rec = [0u8; records::KEY_UPDATE_LEN];
    let n = records::seal_key_update(tls, &mut rec).map_err(bad)?;
    wr.write_all(&rec[..n]).await
}

/// Bytes after each end-to-end record in a bare record, all zero: where
/// the TLS record's content type and tag were (so that a bare record has the
/// length of the TLS record it replaces).
pub const BARE_PAD: usize = 1 + records::TAG;

/// Seals records of `batch` (laid out as for [`seal_batch`]) end to end and
/// frames each as a bare record in place: a TLS application-data header, the
/// end-to-end record, [`BARE_PAD`] zero bytes. Returns the bytes framed (all).
pub fn seal_batch_bare(e2e: &mut seal::Sealer, batch: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < batch.len() {
        let plain = (batch.len() - at - seal::GAP_BEFORE - seal::GAP_AFTER).min(seal::SEND_PLAIN);
        let inner = e2e.seal_gapped(&mut batch[at..], plain)?;
        debug_assert_eq!(inner.start, records::HEADER);
        let content = inner.len() + BARE_PAD;
        let rec = &mut batch[at..at + records::HEADER + content];
        rec[..records::HEADER].copy_from_slice(&[23, 3, 3, (content >> 8) as u8, content as u8]);
        rec[inner.end..].fill(0);
        at += rec.len();
    }
    Ok(at)
}

/// Writes a sealed `close_notify` and leaves the socket open: what this app
/// sends after it is bare records.
pub async fn switch_to_bare(wr: &mut OwnedWriteHalf, tls: &mut Keys) -> io::Result<()> {
    send_close_notify(wr, tls).await
}

async fn send_close_notify(wr: &mut OwnedWriteHalf, tls: &mut Keys) -> io::Result<()> {
    let mut rec = [0u8; records::CLOSE_NOTIFY_LEN];
    let n = records::seal_close_notify(tls, &mut rec).map_err(bad)?;
    wr.write_all(&rec[..n]).await
}

/// Writes a sealed `close_notify`, then half-closes the socket.
pub async fn close(wr: &mut OwnedWriteHalf, tls: &mut Keys) -> io::Result<()> {
    send_close_notify(wr, tls).await?;
    wr.shutdown().await
}

/// Room for reads while data streams in.
const READ_ROOM: usize = 64 * 1024;
/// The buffer: reads, a TLS record that began near the end of one, and an
/// end-to-end record being joined from several TLS records.
const CAP: usize = READ_ROOM + records::MAX_RECORD + seal::HEADER + seal::MAX_PLAIN + seal::TAG;

/// Reads the tunnel's TLS records from the socket and yields the plaintext
/// of the end-to-end records inside them, opening both in place.
///
/// The buffer holds, in order: plaintext being handed out
/// (`plain`), end-to-end bytes not yet opened (`joined`), spent bytes,
/// TLS records not yet opened (`raw`), free room. An opened TLS record's
/// content becomes `joined` where it lies when `joined` was empty, which is
/// always so when each end-to-end record is one TLS record; otherwise it is
/// moved to the end of `joined`.
pub struct RecordReader {
    rd: OwnedReadHalf,
    rx: Keys,
    opener: Opener,
    buf: Box<[u8]>,
    plain: (usize, usize),
    joined: (usize, usize),
    raw: (usize, usize),
    /// The gateway's `close_notify` came.
    closed: bool,
    failed: Option<io::ErrorKind>,
    /// Called when the gateway asks for a key update of the send keys.
    asked: Box<dyn Fn() + Send + Sync>,
    /// Bare records were agreed: the gateway's `close_notify` is the switch.
    bare: bool,
    /// The switch came: what follows is bare records.
    bare_in: bool,
    /// Called when the switch came.
    switched: Box<dyn Fn() + Send + Sync>,
}

/// What a [`RecordReader`] tells its writer.
pub struct Signals {
    /// The gateway asked for a key update of the send keys.
    pub asked: Box<dyn Fn() + Send + Sync>,
    /// Bare records were agreed.
    pub bare: bool,
    /// The gateway's records switched to bare ones.
    pub switched: Box<dyn Fn() + Send + Sync>,
}

impl RecordReader {
    /// Reads from `rd` with `rx` (TLS) and `opener` (end to end), starting
    /// with `plain` (already opened TLS content) and `ahead` (TLS records
    /// already read); `signals` tell the writer what the gateway asked.
    pub fn new(
        rd: OwnedReadHalf,
        rx: Keys,
        opener: Opener,
        (plain, ahead, peer_closed): (Vec<u8>, Vec<u8>, bool),
        signals: Signals,
    ) -> Self {
        let Signals { asked, bare, switched } = signals;
        let mut buf = vec![0u8; CAP.max(plain.len() + ahead.len() + CAP)].into_boxed_slice();
        let (p, a) = (plain.len(), ahead.len());
        buf[..p].copy_from_slice(&plain);
        buf[p..p + a].copy_from_slice(&ahead);
        Self {
            rd,
            rx,
            opener,
            buf,
            plain: (0, 0),
            joined: (0, p),
            raw: (p, p + a),
            closed: peer_closed,
            failed: None,
            asked,
            bare,
            bare_in: false,
            switched,
        }
    }

    /// Adds the content at `from..from + len` to `joined`.
    fn join(&mut self, from: usize, len: usize) {
        let (j0, j1) = self.joined;
        if j0 == j1 {
            self.joined = (from, from + len);
        } else {
            self.buf.copy_within(from..from + len, j1);
            self.joined.1 = j1 + len;
        }
    }

    /// The end-to-end record inside the bare record at `r0..r0 + n`.
    fn open_bare(&mut self, r0: usize, n: usize) -> io::Result<()> {
        let content = n - records::HEADER;
        let len = content.checked_sub(BARE_PAD).filter(|&l| l >= seal::HEADER + seal::TAG);
        let pad_ok = len.is_some_and(|l| self.buf[r0 + records::HEADER + l..r0 + n].iter().all(|&b| b == 0));
        let Some(len) = len.filter(|_| pad_ok) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a bare record of {content} bytes does not end in {BARE_PAD} zero bytes after an end-to-end record"
                ),
            ));
        };
        self.join(r0 + records::HEADER, len);
        Ok(())
    }

    /// Opens the next whole end-to-end record in `joined`, if there is one.
    fn next_e2e(&mut self) -> io::Result<bool> {
        let (j0, j1) = self.joined;
        if j1 - j0 < seal::HEADER {
            return Ok(false);
        }
        let header: [u8; seal::HEADER] = self.buf[j0..j0 + seal::HEADER].try_into().expect("4 bytes");
        let len = seal::body_len(header)?;
        if j1 - j0 < seal::HEADER + len {
            return Ok(false);
        }
        let start = j0 + seal::HEADER;
        let n = self.opener.open(header, &mut self.buf[start..start + len])?;
        self.joined.0 = start + len;
        self.plain = (start, start + n);
        Ok(true)
    }

    /// Opens the next whole TLS record in `raw`, if there is one, and adds
    /// its content to `joined`.
    fn next_tls(&mut self) -> io::Result<bool> {
        let (r0, r1) = self.raw;
        let Some(n) = records::record_len(&self.buf[r0..r1]).map_err(bad)? else { return Ok(false) };
        if r1 - r0 < n {
            return Ok(false);
        }
        self.raw.0 = r0 + n;
        if self.bare_in {
            self.open_bare(r0, n)?;
            return Ok(true);
        }
        match records::open(&mut self.rx, &mut self.buf[r0..r0 + n]).map_err(bad)? {
            Opened::Data(0) => {}
            Opened::Data(len) => self.join(r0 + records::HEADER, len),
            Opened::KeyUpdate { requested } => {
                if requested {
                    (self.asked)();
                }
            }
            Opened::CloseNotify if self.bare => {
                self.bare_in = true;
                (self.switched)();
            }
            Opened::CloseNotify => {
                // Whatever follows a close_notify is ignored.
                self.closed = true;
                self.raw = (r1, r1);
            }
        }
        Ok(true)
    }

    /// Makes room for a read: `joined` and `raw` move to the front when
    /// little room is left after `raw`.
    fn make_room(&mut self) {
        let (j0, j1) = self.joined;
        let (r0, r1) = self.raw;
        if j0 == j1 && r0 == r1 {
            (self.joined, self.raw) = ((0, 0), (0, 0));
        } else if self.buf.len() - r1 < READ_ROOM / 2 {
            self.buf.copy_within(j0..j1, 0);
            let j = j1 - j0;
            self.buf.copy_within(r0..r1, j);
            (self.joined, self.raw) = ((0, j), (j, j + r1 - r0));
        }
    }

    fn step(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let (a, b) = self.plain;
            if a < b {
                let n = (b - a).min(out.remaining());
                out.put_slice(&self.buf[a..a + n]);
                self.plain.0 += n;
                return Poll::Ready(Ok(()));
            }
            if self.next_e2e()? || self.next_tls()? {
                continue;
            }
            if self.closed {
                return Poll::Ready(if self.joined.0 == self.joined.1 && self.raw.0 == self.raw.1 {
                    Ok(())
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the tunnel was cut in the middle of a record"))
                });
            }
            self.make_room();
            let r1 = self.raw.1;
            let mut rb = ReadBuf::new(&mut self.buf[r1..]);
            match Pin::new(&mut self.rd).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() && self.bare_in => {
                    // The end of bare records: clean where a record ended
                    // (as through rustls, where the gateway's close_notify
                    // is the gateway's word, not the office PC's).
                    self.closed = true;
                }
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the gateway closed the connection without a TLS close_notify",
                    )));
                }
                Poll::Ready(Ok(())) => self.raw.1 += rb.filled().len(),
            }
        }
    }
}

impl AsyncRead for RecordReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(io::Error::new(kind, "the tunnel failed before")));
        }
        let r = self.step(cx, out);
        if let Poll::Ready(Err(e)) = &r {
            self.failed = Some(e.kind());
        }
        r
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use thin_protocol::read_ahead::ReadAhead;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use crate::decouple::Decoupled;
    use crate::seal::OpenReader;

    pub(crate) type GateSide = tokio_rustls::server::TlsStream<TcpStream>;

    /// What the app sent, as a relay between it and the gateway saw it.
    pub(crate) type Seen = Arc<std::sync::Mutex<Vec<u8>>>;

    /// The lengths of the encrypted records (type 23) in `wire`.
    pub(crate) fn record_lengths(wire: &[u8]) -> Vec<usize> {
        let (mut at, mut out) = (0, Vec::new());
        while at + 5 <= wire.len() {
            let len = u16::from_be_bytes([wire[at + 3], wire[at + 4]]) as usize;
            if wire[at] == 23 {
                out.push(len);
            }
            at += 5 + len;
        }
        out
    }

    /// A TLS connection from an app (configured as `thin_protocol::tls`
    /// configures the apps) to a rustls server standing in for the gateway,
    /// through a relay that keeps what the app sends.
    pub(crate) async fn link(version: &'static SupportedProtocolVersion) -> (super::LinkStream, GateSide, Seen) {
        let cert = rcgen::generate_simple_self_signed(vec!["gateway.test".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(der).unwrap();
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.enable_secret_extraction = true;
        client.key_log = thin_protocol::tls::app_secrets().clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let gate = tokio::spawn(async move { acceptor.accept(listener.accept().await.unwrap().0).await.unwrap() });
        let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = relay.local_addr().unwrap();
        let seen = Seen::default();
        tokio::spawn({
            let seen = seen.clone();
            async move {
                let (from_app, _) = relay.accept().await.unwrap();
                let to_gate = TcpStream::connect(addr).await.unwrap();
                let ((mut ar, mut aw), (mut gr, mut gw)) = (from_app.into_split(), to_gate.into_split());
                tokio::spawn(async move { tokio::io::copy(&mut gr, &mut aw).await });
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = ar.read(&mut buf).await.unwrap_or(0);
                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    if n == 0 || gw.write_all(&buf[..n]).await.is_err() {
                        let _ = gw.shutdown().await;
                        return;
                    }
                }
            }
        });
        let tcp = TcpStream::connect(relay_addr).await.unwrap();
        let app = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect("gateway.test".try_into().unwrap(), ReadAhead::tracking(tcp))
            .await
            .unwrap();
        (app, gate.await.unwrap(), seen)
    }

    fn pattern(n: usize, k: u32) -> Vec<u8> {
        (0..n as u32).map(|i| (i.wrapping_mul(k) ^ (i >> 9)) as u8).collect()
    }

    async fn read_exactly(r: &mut (impl tokio::io::AsyncRead + Unpin), n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        tokio::time::timeout(std::time::Duration::from_secs(20), r.read_exact(&mut got)).await.unwrap().unwrap();
        got
    }

    #[tokio::test]
    async fn in_place_records_pass_rustls_both_ways_across_split_records_key_updates_and_close_notify() {
        let (app, mut gate, seen) = link(&rustls::version::TLS13).await;
        let (app_keys, mut gate_keys) = crate::seal::tests::pair();
        // Before the takeover the gateway's side already sends, in
        // end-to-end records of 32 KiB that rustls splits over two TLS
        // records each: rustls has read some of it (maybe half a record),
        // the rest waits in the socket.
        let early = pattern(300_000, 7);
        let mut wire = Vec::new();
        gate_keys.send.seal(&early, &mut wire).unwrap();
        gate.write_all(&wire).await.unwrap();
        gate.flush().await.unwrap();
        let mut app = Decoupled::over_link(app, app_keys, crate::decouple::Bare::No).await.unwrap();
        assert!(app.in_place(), "a TLS 1.3 leg is taken out of rustls");
        assert!(read_exactly(&mut app, early.len()).await == early);

        // The gateway updates its keys and asks for the app's, then sends
        // records in pieces that do not line up with TLS records.
        gate.get_mut().1.refresh_traffic_keys().unwrap();
        let later = pattern(70_000, 13);
        for piece in [&later[..1], &later[1..5000], &later[5000..40_000], &later[40_000..]] {
            let mut wire = Vec::new();
            gate_keys.send.seal(piece, &mut wire).unwrap();
            for chunk in wire.chunks(7000) {
                gate.write_all(chunk).await.unwrap();
                gate.flush().await.unwrap();
            }
        }
        assert!(read_exactly(&mut app, later.len()).await == later);

        // The app's records, sealed in place after its own key update,
        // open in rustls (which fails on any record it cannot open).
        let up = pattern(500_000, 31);
        app.write_all(&up).await.unwrap();
        let (gate_rd, mut gate_wr) = tokio::io::split(gate);
        let mut from_app = OpenReader::new(gate_rd, gate_keys.recv);
        assert!(read_exactly(&mut from_app, up.len()).await == up);

        // The gateway's close_notify is the end of the app's reads; the
        // app's shutdown sends its own, which rustls takes as a clean end.
        gate_wr.shutdown().await.unwrap();
        let mut rest = Vec::new();
        app.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        app.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), from_app.read_to_end(&mut rest))
            .await
            .unwrap()
            .expect("a clean end: the app sent close_notify");
        assert!(rest.is_empty());
        // On the wire: one key update (22 bytes sealed), before the data
        // records, and the close_notify (19) last.
        let lengths = record_lengths(&seen.lock().unwrap());
        let updates: Vec<usize> = (0..lengths.len()).filter(|&i| lengths[i] == 22).collect();
        assert_eq!(updates.len(), 1, "{lengths:?}");
        assert_eq!(lengths.last(), Some(&19), "{lengths:?}");
        // Each of the app's records after the takeover is one end-to-end
        // record of at most a TLS record's content.
        let data = &lengths[updates[0] + 1..lengths.len() - 1];
        let sealed = thin_protocol::records::MAX_CONTENT + 1 + thin_protocol::records::TAG;
        assert_eq!(data.len(), up.len().div_ceil(crate::seal::SEND_PLAIN), "{data:?}");
        assert!(data.iter().all(|&l| l <= sealed), "{data:?}");
    }

    /// The gateway's side of a switch to bare records: its `close_notify`
    /// under its TLS keys, then `plain` sealed end to end by `keys`, each
    /// end-to-end record in a bare record.
    fn gateway_switch(gate: &mut rustls::ServerConnection, keys: &mut crate::seal::Sealer, plain: &[u8]) -> Vec<u8> {
        gate.send_close_notify();
        let mut wire = Vec::new();
        while gate.wants_write() {
            gate.write_tls(&mut wire).unwrap();
        }
        for chunk in plain.chunks(crate::seal::SEND_PLAIN) {
            let mut e2e = Vec::new();
            keys.seal(chunk, &mut e2e).unwrap();
            let len = e2e.len() + super::BARE_PAD;
            wire.extend([23, 3, 3, (len >> 8) as u8, len as u8]);
            wire.extend(e2e);
            wire.extend([0u8; super::BARE_PAD]);
        }
        wire
    }

    /// The end-to-end records inside the bare records of `wire`, after the
    /// app's `close_notify` (opened with `gate`'s keys); `None` when the
    /// first record is no `close_notify` or a later one no bare record.
    fn app_bare(gate: &mut rustls::ServerConnection, wire: &[u8]) -> Option<Vec<u8>> {
        let len = 5 + u16::from_be_bytes([wire[3], wire[4]]) as usize;
        gate.read_tls(&mut &wire[..len]).unwrap();
        gate.process_new_packets().ok()?;
        let mut plain = Vec::new();
        if !matches!(std::io::Read::read_to_end(&mut gate.reader(), &mut plain), Ok(0)) {
            return None;
        }
        let (mut at, mut e2e) = (len, Vec::new());
        while at < wire.len() {
            let n = u16::from_be_bytes([wire[at + 3], wire[at + 4]]) as usize;
            let content = &wire[at + 5..at + 5 + n];
            let (inner, pad) = content.split_at(n - super::BARE_PAD);
            if wire[at] != 23 || pad.iter().any(|&b| b != 0) {
                return None;
            }
            e2e.extend_from_slice(inner);
            at += 5 + n;
        }
        Some(e2e)
    }

    async fn open_all(wire: Vec<u8>, opener: crate::seal::Opener) -> Vec<u8> {
        let mut got = Vec::new();
        OpenReader::new(&wire[..], opener).read_to_end(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn thinclient_switches_to_bare_records_first_and_reads_the_gateways() {
        let (app, mut gate, _) = link(&rustls::version::TLS13).await;
        let (app_keys, mut gate_keys) = crate::seal::tests::pair();
        // Sealed records from the office PC that came before the takeover.
        let early = pattern(40_000, 3);
        let mut wire = Vec::new();
        gate_keys.send.seal(&early, &mut wire).unwrap();
        gate.write_all(&wire).await.unwrap();
        gate.flush().await.unwrap();
        let mut app = Decoupled::over_link(app, app_keys, crate::decouple::Bare::First).await.unwrap();
        assert!(read_exactly(&mut app, early.len()).await == early);
        // What the app sends: its close_notify, then bare records only, each
        // as long as the TLS record it replaces; its end is the socket's.
        let up = pattern(100_000, 5);
        app.write_all(&up).await.unwrap();
        app.shutdown().await.unwrap();
        let (mut tcp, mut conn) = gate.into_inner();
        let mut wire = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), tcp.read_to_end(&mut wire)).await.unwrap().unwrap();
        let lengths = record_lengths(&wire);
        assert_eq!(lengths[0], 19, "the close_notify first: {lengths:?}");
        let sealed = thin_protocol::records::MAX_CONTENT + 1 + thin_protocol::records::TAG;
        assert_eq!(lengths[1..lengths.len() - 1], vec![sealed; lengths.len() - 2], "{lengths:?}");
        assert_eq!(lengths.len() - 1, up.len().div_ceil(crate::seal::SEND_PLAIN), "{lengths:?}");
        let e2e = app_bare(&mut conn, &wire).expect("a close_notify, then bare records");
        assert!(open_all(e2e, gate_keys.recv).await == up);
        // The gateway's switch, then bare records, then the socket's end:
        // the app reads them all and a clean end.
        let down = pattern(50_000, 11);
        tcp.write_all(&gateway_switch(&mut conn, &mut gate_keys.send, &down)).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), app.read_to_end(&mut got)).await.unwrap().unwrap();
        assert!(got == down);
    }

    #[tokio::test]
    async fn thinsvr_switches_to_bare_records_only_after_the_gateways_switch() {
        let (app, mut gate, _) = link(&rustls::version::TLS13).await;
        let (app_keys, mut gate_keys) = crate::seal::tests::pair();
        let mut app = Decoupled::over_link(app, app_keys, crate::decouple::Bare::AfterPeer).await.unwrap();
        // Before the gateway's switch the app seals its records for TLS.
        let first = pattern(3000, 7);
        app.write_all(&first).await.unwrap();
        let mut e2e = vec![0u8; crate::seal::HEADER + first.len() + crate::seal::TAG];
        tokio::time::timeout(std::time::Duration::from_secs(20), gate.read_exact(&mut e2e)).await.unwrap().unwrap();
        // The gateway switches; the app reads its bare records, then
        // switches too.
        let (mut tcp, mut conn) = gate.into_inner();
        let down = pattern(30_000, 13);
        tcp.write_all(&gateway_switch(&mut conn, &mut gate_keys.send, &down)).await.unwrap();
        assert!(read_exactly(&mut app, down.len()).await == down);
        let second = pattern(20_000, 17);
        app.write_all(&second).await.unwrap();
        app.shutdown().await.unwrap();
        let mut wire = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), tcp.read_to_end(&mut wire)).await.unwrap().unwrap();
        e2e.extend(app_bare(&mut conn, &wire).expect("a close_notify, then bare records"));
        let mut want = first.clone();
        want.extend(&second);
        assert!(open_all(e2e, gate_keys.recv).await == want);
    }

    #[tokio::test]
    async fn a_bare_record_altered_or_with_a_non_zero_pad_ends_the_tunnel_and_a_cut_one_is_no_clean_end() {
        for (what, spoil) in [
            ("altered", (|w: &mut Vec<u8>| w[40] ^= 1) as fn(&mut Vec<u8>)),
            ("padded", |w: &mut Vec<u8>| *w.last_mut().unwrap() = 1),
            ("cut", |w: &mut Vec<u8>| w.truncate(w.len() - 1)),
        ] {
            let (app, gate, _) = link(&rustls::version::TLS13).await;
            let (app_keys, mut gate_keys) = crate::seal::tests::pair();
            let mut app = Decoupled::over_link(app, app_keys, crate::decouple::Bare::First).await.unwrap();
            let (mut tcp, mut conn) = gate.into_inner();
            let mut wire = gateway_switch(&mut conn, &mut gate_keys.send, b"not for the app");
            spoil(&mut wire);
            tcp.write_all(&wire).await.unwrap();
            tcp.shutdown().await.unwrap();
            let mut got = Vec::new();
            let r = tokio::time::timeout(std::time::Duration::from_secs(20), app.read_to_end(&mut got)).await.unwrap();
            let e = r.expect_err(what);
            let kind = if what == "cut" { std::io::ErrorKind::UnexpectedEof } else { std::io::ErrorKind::InvalidData };
            assert_eq!(e.kind(), kind, "{what}: {e}");
            assert!(got.is_empty(), "{what}: {got:?}");
        }
    }

    #[tokio::test]
    async fn a_tls_1_2_leg_stays_with_rustls_and_carries_the_same() {
        let (app, gate, _) = link(&rustls::version::TLS12).await;
        let (app_keys, mut gate_keys) = crate::seal::tests::pair();
        let mut app = Decoupled::over_link(app, app_keys, crate::decouple::Bare::No).await.unwrap();
        assert!(!app.in_place());
        let (gate_rd, mut gate_wr) = tokio::io::split(gate);
        let down = pattern(100_000, 3);
        let mut wire = Vec::new();
        gate_keys.send.seal(&down, &mut wire).unwrap();
        gate_wr.write_all(&wire).await.unwrap();
        gate_wr.flush().await.unwrap();
        assert!(read_exactly(&mut app, down.len()).await == down);
        let up = pattern(100_000, 5);
        app.write_all(&up).await.unwrap();
        let mut from_app = OpenReader::new(gate_rd, gate_keys.recv);
        assert!(read_exactly(&mut from_app, up.len()).await == up);
    }

    #[tokio::test]
    async fn an_altered_tls_record_ends_the_tunnel_with_an_error() {
        let (app, gate, _) = link(&rustls::version::TLS13).await;
        let (app_keys, _gate_keys) = crate::seal::tests::pair();
        let mut app = Decoupled::over_link(app, app_keys, crate::decouple::Bare::No).await.unwrap();
        assert!(app.in_place());
        // Bytes that are no TLS record of this connection, on the socket.
        let (mut tcp, _) = gate.into_inner();
        tcp.write_all(&[23, 3, 3, 0, 40]).await.unwrap();
        tcp.write_all(&[0x55; 40]).await.unwrap();
        let mut buf = [0u8; 16];
        let e = app.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        assert_eq!(app.read(&mut buf).await.unwrap_err().kind(), std::io::ErrorKind::InvalidData, "and stays failed");
    }
}
