//! The relay of two TLS 1.3 legs, record by record and in place.
//!
//! Each direction reads the sending leg's socket into one buffer, opens every
//! whole record where it lies ([`records::open`]), seals its content again
//! under the receiving leg's key in the same bytes ([`records::seal`]) and
//! writes that run of records to the other socket. No byte is copied in user
//! space; the buffer is dropped while a direction is idle, so a quiet tunnel
//! holds none. A peer's `close_notify` is passed on as the gateway's own,
//! followed by a half-close of the socket; a record that fails or a closed
//! socket without `close_notify` ends the tunnel. Key updates: a peer's is
//! followed, and when it asks for the gateway's, the direction that sends to
//! it seals one (after every record under the old keys has gone, before the
//! next record), as it does near its own keys' budget.
//!
//! With bare records (`GateToTunnel::Paired { bare_records }`), a peer's
//! `close_notify` is passed on as the gateway's own but ends nothing: what
//! follows it in that direction is end-to-end records, each in a bare
//! TLS-like record, which the direction passes on as they come, without
//! opening or sealing anything, until the peer's socket ends.

use std::future::poll_fn;
use std::io;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::Meter;
use crate::stream::GateStream;
use thin_protocol::records::{
    self, Keys, LegKeys, Opened, CLOSE_NOTIFY_LEN, HEADER, KEY_UPDATE_LEN, MAX_CONTENT, MAX_RECORD, TAG,
};
use thin_protocol::traffic_secrets::HandshakeSecrets;

/// Buffer of one direction while data flows: reads of up to 64 KiB and room
/// for a record that began near its end.
const CAP: usize = 64 * 1024 + MAX_RECORD;

/// One TLS leg taken out of rustls: its socket, its keys, and what rustls
/// and the read-ahead already held.
pub struct Leg {
    tcp: TcpStream,
    keys: LegKeys,
    /// Plaintext rustls had decrypted and nobody read yet.
    plain: Vec<u8>,
    /// Raw bytes read from the socket past what rustls took: whole records.
    ahead: Vec<u8>,
    /// The peer's `close_notify` came already.
    peer_closed: bool,
}

/// Whether a leg can be relayed record by record: TLS 1.3 with a suite the
/// relay knows, handshake done.
pub fn can_take(s: &GateStream) -> bool {
    records::takeable(s.get_ref().1)
}

impl Leg {
    /// Takes a leg that [`can_take`] allowed out of rustls, after sending
    /// whatever rustls still held for the peer. Both apps send nothing
    /// between their request and the gateway's `Paired`, so rustls holds
    /// no part of a record here; a peer that did would only garble its own
    /// tunnel (the next record fails and the tunnel ends).
    pub async fn take(mut s: GateStream, held: &HandshakeSecrets) -> io::Result<Leg> {
        s.flush().await?;
        let (ahead, mut conn) = s.into_inner();
        if conn.wants_write() {
            return Err(io::Error::other("TLS records still waiting to be sent"));
        }
        let mut plain = Vec::new();
        let peer_closed = match conn.reader().read_to_end(&mut plain) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => return Err(e),
        };
        let secrets = conn.dangerous_extract_secrets().map_err(io::Error::other)?;
        let keys = LegKeys::from_secrets(secrets, held)
            .ok_or_else(|| io::Error::other("a TLS suite the relay does not know"))?;
        let (tcp, ahead) = ahead.into_parts();
        Ok(Leg { tcp, keys, plain, ahead, peer_closed })
    }
}

/// Relays until both directions have closed or one fails; bytes carried
/// client to server and back. With `bare`, each direction passes on what
/// follows its sender's `close_notify` as it comes.
pub async fn both_ways(client: Leg, server: Leg, meter: Meter, bare: bool) -> io::Result<(u64, u64)> {
    let (c_rx, c_tx) = (client.keys.rx, client.keys.tx);
    let (s_rx, s_tx) = (server.keys.rx, server.keys.tx);
    let mut up = Pump::new(c_rx, s_tx, client.plain, client.ahead, client.peer_closed)?;
    let mut down = Pump::new(s_rx, c_tx, server.plain, server.ahead, server.peer_closed)?;
    (up.bare, down.bare) = (bare, bare);
    meter.carried(up.carried, true);
    meter.carried(down.carried, false);
    let (c, s) = (client.tcp, server.tcp);
    poll_fn(|cx| {
        let up_done = up.state == State::Done || up.poll(cx, &c, &s, &meter, true)?.is_ready();
        // A key update the client asked for is the downward direction's to send.
        down.owe_update |= std::mem::take(&mut up.peer_asked);
        let down_done = down.state == State::Done || down.poll(cx, &s, &c, &meter, false)?.is_ready();
        up.owe_update |= std::mem::take(&mut down.peer_asked);
        if up_done && down_done {
            Poll::Ready(Ok((up.carried, down.carried)))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    /// Records come and go.
    Open,
    /// The peer's `close_notify` came: pass it on once all before it is sent.
    Closing,
    /// The `close_notify` is on its way: half-close the socket once it is sent.
    Shutdown,
    /// Bare records: bytes are passed on as they come.
    Bare,
    /// This direction is over.
    Done,
}

/// One direction. Its buffer holds, in order: sealed records being written
/// (`start..out_end`), spent bytes, records not yet opened
/// (`parse..filled`, and `filled` is the vector's length), free capacity
/// (read into without being zeroed first). A key update goes out of its own small
/// buffer, before the records sealed after it.
struct Pump {
    buf: Vec<u8>,
    start: usize,
    out_end: usize,
    parse: usize,
    filled: usize,
    rx: Keys,
    tx: Keys,
    state: State,
    carried: u64,
    /// A sealed key update, and how much of it has gone.
    update: Vec<u8>,
    update_at: usize,
    /// The receiving peer asked for a key update: seal one before the next record.
    owe_update: bool,
    /// The sending peer asked for one (for the other direction to send).
    peer_asked: bool,
    /// Bare records were agreed: the peer's `close_notify` leads to [`State::Bare`].
    bare: bool,
}

fn bad(e: records::RecordError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Pump {
    /// A direction that first seals `plain` and then opens `ahead`.
    fn new(rx: Keys, tx: Keys, plain: Vec<u8>, ahead: Vec<u8>, peer_closed: bool) -> io::Result<Self> {
        let mut p = Pump {
            buf: Vec::new(),
            start: 0,
            out_end: 0,
            parse: 0,
            filled: 0,
            rx,
            tx,
            state: State::Open,
            carried: 0,
            update: Vec::new(),
            update_at: 0,
            owe_update: false,
            peer_asked: false,
            bare: false,
        };
        if plain.is_empty() && ahead.is_empty() && !peer_closed {
            return Ok(p);
        }
        let sealed = plain.len().div_ceil(MAX_CONTENT) * (HEADER + 1 + TAG) + plain.len();
        p.buf = vec![0u8; (sealed + ahead.len() + MAX_RECORD).max(CAP)];
        for chunk in plain.chunks(MAX_CONTENT) {
            let at = p.out_end;
            p.buf[at + HEADER..at + HEADER + chunk.len()].copy_from_slice(chunk);
            p.out_end += records::seal(&mut p.tx, &mut p.buf[at..], chunk.len()).map_err(bad)?;
        }
        p.carried = plain.len() as u64;
        (p.parse, p.filled) = (p.out_end, p.out_end);
        if peer_closed {
            p.state = State::Closing;
        } else {
            p.buf[p.filled..p.filled + ahead.len()].copy_from_slice(&ahead);
            p.filled += ahead.len();
        }
        p.buf.truncate(p.filled);
        Ok(p)
    }

    /// Moves what it can; `Ready` once this direction is over.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &TcpStream,
        meter: &Meter,
        client_side: bool,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut moved = false;
            // Send what is sealed: a key update first, then the records.
            loop {
                let first = self.update_at < self.update.len();
                let out = if first {
                    &self.update[self.update_at..]
                } else if self.start < self.out_end {
                    &self.buf[self.start..self.out_end]
                } else {
                    break;
                };
                match to.poll_write_ready(cx) {
                    Poll::Pending => break,
                    Poll::Ready(r) => r?,
                }
                match to.try_write(out) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) if first => self.update_at += n,
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
                moved = true;
            }
            let all_sent = self.start == self.out_end && self.update_at == self.update.len();
            if all_sent {
                if self.parse == self.filled {
                    (self.start, self.out_end, self.parse, self.filled) = (0, 0, 0, 0);
                    self.buf.clear();
                } else if self.buf.capacity() - self.parse < MAX_RECORD {
                    // A record began near the end: move it to the front.
                    self.buf.copy_within(self.parse..self.filled, 0);
                    (self.start, self.out_end, self.parse, self.filled) = (0, 0, 0, self.filled - self.parse);
                    self.buf.truncate(self.filled);
                }
                match self.state {
                    State::Closing => {
                        self.buf.clear();
                        self.buf.resize(CLOSE_NOTIFY_LEN, 0);
                        let n = records::seal_close_notify(&mut self.tx, &mut self.buf).map_err(bad)?;
                        (self.start, self.out_end, self.parse, self.filled) = (0, n, n, n);
                        self.state = State::Shutdown;
                        continue;
                    }
                    State::Shutdown => {
                        nix::sys::socket::shutdown(to.as_raw_fd(), nix::sys::socket::Shutdown::Write)
                            .map_err(io::Error::from)?;
                        self.buf = Vec::new();
                        self.state = State::Done;
                        return Poll::Ready(Ok(()));
                    }
                    State::Open | State::Bare | State::Done => {}
                }
            }
            // Read while there is room; an idle direction holds no buffer.
            let reading = matches!(self.state, State::Open | State::Bare);
            if reading && (self.buf.capacity() == 0 || self.filled < self.buf.capacity()) {
                match from.poll_read_ready(cx) {
                    Poll::Pending => {
                        if self.filled == 0 {
                            self.buf = Vec::new();
                        }
                    }
                    Poll::Ready(r) => {
                        r?;
                        if self.buf.capacity() == 0 {
                            self.buf = Vec::with_capacity(CAP);
                        }
                        match from.try_read_buf(&mut self.buf) {
                            Ok(0) if self.state == State::Bare => {
                                // The peer's end: the end-to-end records say
                                // whether it came where it should.
                                self.state = State::Shutdown;
                            }
                            Ok(n) if self.state == State::Bare => {
                                self.filled += n;
                                (self.out_end, self.parse) = (self.filled, self.filled);
                                self.carried += n as u64;
                                meter.carried(n as u64, client_side);
                            }
                            Ok(0) => {
                                return Poll::Ready(Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "the peer closed its connection without a TLS close_notify",
                                )))
                            }
                            Ok(n) => self.filled += n,
                            // Readiness was stale: the next poll waits for it.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Poll::Ready(Err(e)),
                        }
                        moved = true;
                    }
                }
            }
            // Open every whole record that came and seal it again in place.
            let mut batch = 0;
            while self.state == State::Open {
                let Some(n) = records::record_len(&self.buf[self.parse..self.filled]).map_err(bad)? else { break };
                if self.parse + n > self.filled {
                    break;
                }
                let at = self.parse;
                if self.owe_update || self.tx.update_due() {
                    // Everything sealed under the old keys goes first.
                    if !(self.start == self.out_end && self.update_at == self.update.len()) {
                        break;
                    }
                    self.update = vec![0u8; KEY_UPDATE_LEN];
                    records::seal_key_update(&mut self.tx, &mut self.update).map_err(bad)?;
                    (self.update_at, self.owe_update, moved) = (0, false, true);
                    continue;
                }
                match records::open(&mut self.rx, &mut self.buf[at..at + n]).map_err(bad)? {
                    Opened::Data(0) => {}
                    Opened::KeyUpdate { requested } => self.peer_asked |= requested,
                    Opened::Data(len) => {
                        let sealed = records::seal(&mut self.tx, &mut self.buf[at..at + n], len).map_err(bad)?;
                        if self.out_end != at {
                            // A record came padded (rustls never pads): close the gap.
                            self.buf.copy_within(at..at + sealed, self.out_end);
                        }
                        self.out_end += sealed;
                        self.carried += len as u64;
                        batch += len as u64;
                    }
                    Opened::CloseNotify if self.bare => {
                        // Passed on as the gateway's own; what follows is
                        // bare, passed on as it came.
                        let sealed =
                            records::seal_close_notify(&mut self.tx, &mut self.buf[at..at + n]).map_err(bad)?;
                        self.buf.copy_within(at..at + sealed, self.out_end);
                        self.out_end += sealed;
                        let rest = self.filled - (at + n);
                        self.buf.copy_within(at + n..self.filled, self.out_end);
                        self.out_end += rest;
                        self.carried += rest as u64;
                        batch += rest as u64;
                        (self.parse, self.filled) = (self.out_end, self.out_end);
                        self.buf.truncate(self.filled);
                        self.state = State::Bare;
                        moved = true;
                        break;
                    }
                    Opened::CloseNotify => {
                        // Whatever follows a close_notify is ignored.
                        self.filled = at + n;
                        self.buf.truncate(self.filled);
                        self.state = State::Closing;
                    }
                }
                self.parse = at + n;
                moved = true;
            }
            meter.carried(batch, client_side);
            if !moved {
                return Poll::Pending;
            }
        }
    }
}
