//! TLS 1.3 application-data records, opened and sealed in place.
//!
//! A paired tunnel has two TLS legs that both end at the gateway. rustls's
//! stream API decrypts a record from one leg into its own buffer, copies the
//! plaintext out, copies it into a new record for the other leg and encrypts
//! that. After the handshake the relay takes the legs' traffic keys from
//! rustls (`dangerous_extract_secrets`) and does the record layer itself: a
//! record is decrypted where it was read and encrypted again, under the
//! other leg's key, where it lies, so a relayed byte is never copied in user
//! space (RFC 8446 section 5: header, nonce = IV xor sequence number,
//! additional data = the record header, inner content type after the
//! content, optional zero padding).
//!
//! Key updates (RFC 8446 section 4.6.3) are followed with the traffic
//! secrets [`crate::traffic_secrets`] kept from the handshake: a peer's update
//! moves its receive keys on, an update it requests is answered with the
//! gateway's own before the next record, and the gateway updates its send
//! keys itself before they reach their cipher's record budget (2^24 records
//! for AES-GCM), as rustls would. A leg whose secrets were not kept ends its
//! tunnel at either point instead.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets};

use crate::traffic_secrets::{expand_label, HandshakeSecrets, Secret};

/// Record header: content type, legacy version, length.
pub const HEADER: usize = 5;
/// AEAD tag of every suite TLS 1.3 has.
pub const TAG: usize = 16;
/// Most content one record carries (2^14).
pub const MAX_CONTENT: usize = 16 * 1024;
/// Most ciphertext one record may carry (2^14 + 256, RFC 8446 section 5.2).
pub const MAX_CIPHERTEXT: usize = MAX_CONTENT + 256;
/// Longest record on the wire.
pub const MAX_RECORD: usize = HEADER + MAX_CIPHERTEXT;

const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const KEY_UPDATE: u8 = 24;
const NEW_SESSION_TICKET: u8 = 4;
const CLOSE_NOTIFY: u8 = 0;

/// Why a relayed record was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The header is not that of a TLS 1.3 encrypted record.
    #[error("not a TLS 1.3 encrypted record (type {0}, version {1:#06x})")]
    Header(u8, u16),
    /// The length is outside what TLS 1.3 allows.
    #[error("TLS record of {0} bytes (at most {MAX_CIPHERTEXT}, at least {min})", min = TAG + 1)]
    Length(usize),
    /// The record did not decrypt: tampered with, or not from the peer.
    #[error("TLS record failed authentication")]
    Decrypt,
    /// The peer sent a fatal alert.
    #[error("the peer sent TLS alert {0}")]
    Alert(u8),
    /// The peer updated its traffic keys and the relay has not the secret
    /// to follow.
    #[error("the peer updated its TLS keys and the relay did not keep the secret to follow; the tunnel ends")]
    KeyUpdate,
    /// A content type or handshake message that has no place after the handshake.
    #[error("unexpected TLS content type {0} after the handshake")]
    Unexpected(u8),
    /// This leg sent as many records as its cipher allows and the relay has
    /// not the secret to update its keys.
    #[error(
        "the TLS leg used its record budget and the relay did not keep the secret to update its keys; the tunnel ends"
    )]
    Budget,
}

/// The keys of one direction of one leg, its sequence number, and the
/// secret they came from when it was kept.
pub struct Keys {
    alg: &'static aead::Algorithm,
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    limit: u64,
    secret: Option<Secret>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys for `secrets` at sequence number `seq`; `None` for a suite the
    /// relay does not know (rustls may add some).
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Option<Self> {
        let (alg, key, iv, limit) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv, 1 << 24),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv, 1 << 24),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv, u64::MAX - 1),
            _ => return None,
        };
        let key = LessSafeKey::new(UnboundKey::new(alg, key.as_ref()).ok()?);
        let iv: [u8; 12] = iv.as_ref().try_into().ok()?;
        Some(Self { alg, key, iv, seq, limit, secret: None })
    }

    /// Keys of one direction derived from its traffic secret (RFC 8446
    /// section 7.3), at sequence number 0, with the secret kept so that key
    /// updates can follow; `None` for a suite this module does not know or a
    /// secret of the wrong length. Both ends of a leg built from the same
    /// secret seal and open each other's records (the `records` fuzz target
    /// drives the record layer this way).
    pub fn from_traffic_secret(suite: rustls::CipherSuite, secret: &[u8]) -> Option<Self> {
        let (alg, hash, limit) = suite_params(suite)?;
        let secret = Secret { hash, bytes: zeroize::Zeroizing::new(secret.to_vec()) };
        if secret.bytes.len() != hash_len(hash) {
            return None;
        }
        let (key, iv) = keys_of(alg, &secret).ok()?;
        Some(Self { alg, key, iv, seq: 0, limit, secret: Some(secret) })
    }

    /// Moves to the next traffic secret and its keys (RFC 8446 section 7.2).
    fn update(&mut self) -> Result<(), RecordError> {
        let Some(old) = &self.secret else { return Err(RecordError::KeyUpdate) };
        let next =
            Secret { hash: old.hash, bytes: expand_label(old.hash, &old.bytes, b"traffic upd", hash_len(old.hash)) };
        (self.key, self.iv) = keys_of(self.alg, &next)?;
        self.seq = 0;
        self.secret = Some(next);
        Ok(())
    }

    /// Lowers the budget so that `records` more can be sealed before an
    /// update is due (tests drive the update path this way).
    pub fn set_budget(&mut self, records: u64) {
        self.limit = self.seq + records + UPDATE_MARGIN;
    }

    /// Whether these send keys should be updated before the next record:
    /// near their budget, with the secret to do it.
    pub fn update_due(&self) -> bool {
        self.secret.is_some() && self.seq >= self.limit - UPDATE_MARGIN
    }

    /// The nonce of the next record; the sequence number moves on.
    fn next_nonce(&mut self) -> Result<Nonce, RecordError> {
        if self.seq >= self.limit {
            return Err(RecordError::Budget);
        }
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        Ok(Nonce::assume_unique_for_key(n))
    }
}

/// The two directions of one leg: what the peer sends, what the gateway sends.
#[derive(Debug)]
pub struct LegKeys {
    /// Opens the peer's records.
    pub rx: Keys,
    /// Seals records to the peer.
    pub tx: Keys,
}

impl LegKeys {
    /// The keys rustls handed over, with their secrets when `held` kept
    /// them; `None` for a suite the relay does not know.
    pub fn from_secrets(s: ExtractedSecrets, held: &HandshakeSecrets) -> Option<Self> {
        let (tx_seq, tx) = s.tx;
        let (rx_seq, rx) = s.rx;
        let (mut rx, mut tx) = (Keys::new(rx_seq, rx)?, Keys::new(tx_seq, tx)?);
        // What the peer sends is the peer's to budget (rustls refuses only
        // near the end of the sequence numbers).
        rx.limit = u64::MAX - 1;
        rx.secret = held.take(&rx.iv);
        tx.secret = held.take(&tx.iv);
        Some(Self { rx, tx })
    }
}

/// Whether a connection's records can be taken out of rustls and handled
/// here: TLS 1.3 with a suite this module knows, handshake done.
pub fn takeable(conn: &rustls::CommonState) -> bool {
    conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
        && !conn.is_handshaking()
        && conn.negotiated_cipher_suite().and_then(|c| suite_params(c.suite())).is_some()
}

/// The AEAD, the HKDF hash and the record budget of a TLS 1.3 suite this
/// module knows.
fn suite_params(suite: rustls::CipherSuite) -> Option<(&'static aead::Algorithm, hkdf::Algorithm, u64)> {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => Some((&aead::AES_128_GCM, hkdf::HKDF_SHA256, 1 << 24)),
        S::TLS13_AES_256_GCM_SHA384 => Some((&aead::AES_256_GCM, hkdf::HKDF_SHA384, 1 << 24)),
        S::TLS13_CHACHA20_POLY1305_SHA256 => Some((&aead::CHACHA20_POLY1305, hkdf::HKDF_SHA256, u64::MAX - 1)),
        _ => None,
    }
}

/// Length of a traffic secret under `hash`.
fn hash_len(hash: hkdf::Algorithm) -> usize {
    if hash == hkdf::HKDF_SHA384 {
        48
    } else {
        32
    }
}

/// The key and IV a traffic secret yields (RFC 8446 section 7.3).
fn keys_of(alg: &'static aead::Algorithm, secret: &Secret) -> Result<(LessSafeKey, [u8; 12]), RecordError> {
    let key = expand_label(secret.hash, &secret.bytes, b"key", alg.key_len());
    let iv = expand_label(secret.hash, &secret.bytes, b"iv", 12);
    let key = LessSafeKey::new(UnboundKey::new(alg, &key).map_err(|_| RecordError::KeyUpdate)?);
    let iv = iv[..].try_into().map_err(|_| RecordError::KeyUpdate)?;
    Ok((key, iv))
}

/// Records before the end of the send budget at which the keys are updated.
const UPDATE_MARGIN: u64 = 1024;

/// Length of the whole record at the start of `buf` once its header has
/// arrived (`None` before), or why the header is refused.
pub fn record_len(buf: &[u8]) -> Result<Option<usize>, RecordError> {
    let Some(h) = buf.get(..HEADER) else { return Ok(None) };
    let version = u16::from_be_bytes([h[1], h[2]]);
    if h[0] != APPLICATION_DATA || version != 0x0303 {
        return Err(RecordError::Header(h[0], version));
    }
    let len = u16::from_be_bytes([h[3], h[4]]) as usize;
    if !(TAG + 1..=MAX_CIPHERTEXT).contains(&len) {
        return Err(RecordError::Length(len));
    }
    Ok(Some(HEADER + len))
}

/// What one record carried.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Application data: this many bytes, at `HEADER..` of the record.
    Data(usize),
    /// The peer will send no more (its `close_notify`).
    CloseNotify,
    /// The peer updated its keys (the receive keys have followed) and maybe
    /// asked for the gateway's to be updated too.
    KeyUpdate {
        /// The peer asked for an update of the gateway's send keys.
        requested: bool,
    },
}

/// Decrypts the whole record `rec` (as [`record_len`] measured it) in place.
pub fn open(rx: &mut Keys, rec: &mut [u8]) -> Result<Opened, RecordError> {
    let (header, body) = rec.split_at_mut(HEADER);
    let nonce = rx.next_nonce()?;
    let plain = rx.key.open_in_place(nonce, Aad::from(&*header), body).map_err(|_| RecordError::Decrypt)?;
    // The content type is the last byte that is not padding.
    let Some(end) = plain.iter().rposition(|&b| b != 0) else { return Err(RecordError::Unexpected(0)) };
    match (plain[end], &plain[..end]) {
        (APPLICATION_DATA, _) => Ok(Opened::Data(end)),
        (ALERT, [_, CLOSE_NOTIFY]) => Ok(Opened::CloseNotify),
        (ALERT, [_, what]) => Err(RecordError::Alert(*what)),
        // A server may send session tickets at any time; nothing here
        // resumes sessions, so they are dropped.
        (HANDSHAKE, [NEW_SESSION_TICKET, ..]) => Ok(Opened::Data(0)),
        (HANDSHAKE, [KEY_UPDATE, 0, 0, 1, r @ (0 | 1)]) => {
            let requested = *r == 1;
            rx.update()?;
            Ok(Opened::KeyUpdate { requested })
        }
        (other, _) => Err(RecordError::Unexpected(other)),
    }
}

/// Seals `len` bytes of application data lying at `HEADER..` of `rec` as one
/// record in place and returns the record's length. `rec` has room for the
/// content type and the tag after the data.
pub fn seal(tx: &mut Keys, rec: &mut [u8], len: usize) -> Result<usize, RecordError> {
    seal_typed(tx, rec, len, APPLICATION_DATA)
}

/// Seals a `close_notify` alert at the start of `rec` (at least
/// [`CLOSE_NOTIFY_LEN`] bytes) and returns its length.
pub fn seal_close_notify(tx: &mut Keys, rec: &mut [u8]) -> Result<usize, RecordError> {
    rec[HEADER..HEADER + 2].copy_from_slice(&[1, CLOSE_NOTIFY]);
    seal_typed(tx, rec, 2, ALERT)
}

/// Length of a sealed `close_notify`.
pub const CLOSE_NOTIFY_LEN: usize = HEADER + 2 + 1 + TAG;

/// Seals a `key_update` (not asking the peer for one) at the start of `rec`
/// (at least [`KEY_UPDATE_LEN`] bytes) under the current send keys, then
/// moves the send keys on; returns the record's length.
pub fn seal_key_update(tx: &mut Keys, rec: &mut [u8]) -> Result<usize, RecordError> {
    rec[HEADER..HEADER + 5].copy_from_slice(&[KEY_UPDATE, 0, 0, 1, 0]);
    let n = seal_typed(tx, rec, 5, HANDSHAKE)?;
    tx.update().map_err(|_| RecordError::Budget)?;
    Ok(n)
}

/// Length of a sealed `key_update`.
pub const KEY_UPDATE_LEN: usize = HEADER + 5 + 1 + TAG;

/// Seals `len` bytes lying at `HEADER..` of `rec` as one record whose inner
/// content type is `content_type`, as [`seal`], [`seal_close_notify`] and
/// [`seal_key_update`] do for theirs; `rec` has room for the type and the
/// tag after the content. The `records` fuzz target seals any inner
/// plaintext (types, padding) this way, as a peer holding the keys could.
pub fn seal_content(tx: &mut Keys, rec: &mut [u8], len: usize, content_type: u8) -> Result<usize, RecordError> {
    if len > MAX_CONTENT || rec.len() < HEADER + len + 1 + TAG {
        return Err(RecordError::Length(len + 1 + TAG));
    }
    seal_typed(tx, rec, len, content_type)
}

fn seal_typed(tx: &mut Keys, rec: &mut [u8], len: usize, typ: u8) -> Result<usize, RecordError> {
    debug_assert!(len <= MAX_CONTENT);
    let body_len = len + 1 + TAG;
    rec[HEADER + len] = typ;
    rec[..HEADER].copy_from_slice(&[APPLICATION_DATA, 3, 3, (body_len >> 8) as u8, body_len as u8]);
    let nonce = tx.next_nonce()?;
    let (header, body) = rec.split_at_mut(HEADER);
    let tag = tx
        .key
        .seal_in_place_separate_tag(nonce, Aad::from(&*header), &mut body[..len + 1])
        .map_err(|_| RecordError::Decrypt)?;
    body[len + 1..len + 1 + TAG].copy_from_slice(tag.as_ref());
    Ok(HEADER + body_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    use rustls::{ClientConnection, ServerConnection};

    use crate::traffic_secrets::HandshakeSecrets;

    /// A client and a server configuration for TLS 1.3 that trust each
    /// other; the server lets its keys be taken and keeps its traffic
    /// secrets in `secrets` when given.
    fn test_configs(
        secrets: Option<std::sync::Arc<HandshakeSecrets>>,
    ) -> (std::sync::Arc<rustls::ClientConfig>, std::sync::Arc<rustls::ServerConfig>) {
        use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let cert = rcgen::generate_simple_self_signed(vec!["gateway.test".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        server.enable_secret_extraction = true;
        if let Some(s) = secrets {
            server.key_log = s;
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (std::sync::Arc::new(client), std::sync::Arc::new(server))
    }

    /// A finished TLS 1.3 handshake in memory, the server's keys taken out
    /// (with their secrets when `keep`).
    fn pair_keeping(keep: bool) -> (ClientConnection, LegKeys) {
        let held = std::sync::Arc::new(HandshakeSecrets::default());
        let (client_cfg, server_cfg) = test_configs(keep.then(|| held.clone()));
        let mut c = ClientConnection::new(client_cfg, "gateway.test".try_into().unwrap()).unwrap();
        let mut s = ServerConnection::new(server_cfg).unwrap();
        while c.is_handshaking() || s.is_handshaking() || s.wants_write() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets().unwrap();
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets().unwrap();
        }
        (c, LegKeys::from_secrets(s.dangerous_extract_secrets().unwrap(), &held).unwrap())
    }

    fn pair() -> (ClientConnection, LegKeys) {
        pair_keeping(false)
    }

    fn from_client(c: &mut ClientConnection) -> Vec<u8> {
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        wire
    }

    fn to_client(c: &mut ClientConnection, mut wire: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut got = Vec::new();
        while !wire.is_empty() {
            c.read_tls(&mut wire).unwrap();
            c.process_new_packets()?;
            match c.reader().read_to_end(&mut got) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        Ok(got)
    }

    #[test]
    fn keys_from_the_traffic_secret_are_the_keys_rustls_uses() {
        let (mut c, k) = pair_keeping(true);
        let suite = c.negotiated_cipher_suite().unwrap().suite();
        let held = k.rx.secret.as_ref().expect("the secret was kept");
        let mut rx = Keys::from_traffic_secret(suite, &held.bytes).unwrap();
        assert_eq!(rx.iv, k.rx.iv);
        assert_eq!(rx.seq, k.rx.seq, "no record was sent before the keys were taken");
        c.writer().write_all(b"from rustls").unwrap();
        let mut wire = from_client(&mut c);
        assert_eq!(open(&mut rx, &mut wire).unwrap(), Opened::Data(11));
        assert_eq!(&wire[HEADER..HEADER + 11], b"from rustls");
        // The other suites, and secrets of the wrong length, or suites of TLS 1.2.
        use rustls::CipherSuite as S;
        assert!(Keys::from_traffic_secret(S::TLS13_AES_256_GCM_SHA384, &[7; 48]).is_some());
        assert!(Keys::from_traffic_secret(S::TLS13_CHACHA20_POLY1305_SHA256, &[7; 32]).is_some());
        assert!(Keys::from_traffic_secret(S::TLS13_AES_256_GCM_SHA384, &[7; 32]).is_none());
        assert!(Keys::from_traffic_secret(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, &[7; 32]).is_none());
    }

    #[test]
    fn records_from_rustls_open_and_records_sealed_here_reach_rustls() {
        let (mut c, mut k) = pair();
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7) as u8).collect();
        c.writer().write_all(&data).unwrap();
        let mut wire = from_client(&mut c);
        // Open every record in place; seal it again for the way back.
        let (mut at, mut got, mut back) = (0, Vec::new(), Vec::new());
        while at < wire.len() {
            let n = record_len(&wire[at..]).unwrap().unwrap();
            let rec = &mut wire[at..at + n];
            let Opened::Data(len) = open(&mut k.rx, rec).unwrap() else { panic!("not data") };
            got.extend_from_slice(&rec[HEADER..HEADER + len]);
            let sealed = seal(&mut k.tx, rec, len).unwrap();
            assert!(sealed <= n, "a sealed record never outgrows what came");
            back.extend_from_slice(&rec[..sealed]);
            at += n;
        }
        assert_eq!(got, data);
        assert!(to_client(&mut c, &back).unwrap() == data, "rustls reads what the relay sealed");
        // A close_notify both ways.
        c.send_close_notify();
        let mut wire = from_client(&mut c);
        assert_eq!(open(&mut k.rx, &mut wire).unwrap(), Opened::CloseNotify);
        let mut rec = [0u8; CLOSE_NOTIFY_LEN];
        assert_eq!(seal_close_notify(&mut k.tx, &mut rec).unwrap(), CLOSE_NOTIFY_LEN);
        c.read_tls(&mut &rec[..]).unwrap();
        assert!(c.process_new_packets().unwrap().peer_has_closed());
    }

    #[test]
    fn a_changed_byte_a_replay_a_key_update_and_a_bad_header_are_refused() {
        let (mut c, mut k) = pair();
        c.writer().write_all(b"first").unwrap();
        let first = from_client(&mut c);
        c.writer().write_all(b"second").unwrap();
        let second = from_client(&mut c);
        // Tampered: one bit of the ciphertext.
        let mut bad = second.clone();
        bad[HEADER + 1] ^= 1;
        let mut k2 = pair().1;
        assert_eq!(open(&mut k2.rx, &mut bad), Err(RecordError::Decrypt));
        // Out of order (a replay of a later record first) fails too.
        assert_eq!(open(&mut k.rx, &mut second.clone()), Err(RecordError::Decrypt));
        // A fresh pair: in order works; a key update is refused by name.
        let (mut c, mut k) = pair();
        c.writer().write_all(b"x").unwrap();
        let mut one = from_client(&mut c);
        assert_eq!(open(&mut k.rx, &mut one), Ok(Opened::Data(1)));
        c.refresh_traffic_keys().unwrap();
        let mut upd = from_client(&mut c);
        assert_eq!(open(&mut k.rx, &mut upd), Err(RecordError::KeyUpdate));
        // Headers: a plaintext alert, a TLS 1.0 version, lengths out of range.
        assert_eq!(record_len(&[21, 3, 3, 0, 2]), Err(RecordError::Header(21, 0x0303)));
        assert_eq!(record_len(&[23, 3, 1, 0, 20]), Err(RecordError::Header(23, 0x0301)));
        assert_eq!(record_len(&[23, 3, 3, 0x41, 1]), Err(RecordError::Length(0x4101)));
        assert_eq!(record_len(&[23, 3, 3, 0, 16]), Err(RecordError::Length(16)));
        assert_eq!(record_len(&[23, 3, 3]), Ok(None));
        drop(first);
    }

    #[test]
    fn the_record_budget_ends_a_leg_without_its_secret() {
        let (_c, mut k) = pair();
        k.tx.limit = k.tx.seq + 1;
        assert!(!k.tx.update_due(), "no secret, no update");
        let mut rec = vec![0u8; 64];
        assert!(seal(&mut k.tx, &mut rec, 3).is_ok());
        assert_eq!(seal(&mut k.tx, &mut rec, 3), Err(RecordError::Budget));
    }

    #[test]
    fn with_the_kept_secrets_key_updates_follow_rustls_both_ways() {
        let (mut c, mut k) = pair_keeping(true);
        assert!(!k.tx.update_due());
        // The client updates and asks for ours.
        c.refresh_traffic_keys().unwrap();
        c.writer().write_all(b"after").unwrap();
        let mut wire = from_client(&mut c);
        let n = record_len(&wire).unwrap().unwrap();
        assert_eq!(open(&mut k.rx, &mut wire[..n]), Ok(Opened::KeyUpdate { requested: true }));
        assert_eq!(open(&mut k.rx, &mut wire[n..]), Ok(Opened::Data(5)), "the next record opens with the new keys");
        // Ours, then a record under the new keys, reach rustls.
        let mut back = vec![0u8; KEY_UPDATE_LEN + 64];
        let u = seal_key_update(&mut k.tx, &mut back).unwrap();
        back[u + HEADER..u + HEADER + 4].copy_from_slice(b"news");
        let d = seal(&mut k.tx, &mut back[u..], 4).unwrap();
        assert_eq!(to_client(&mut c, &back[..u + d]).unwrap(), b"news");
        // Near the budget, an update is due.
        k.tx.limit = k.tx.seq + UPDATE_MARGIN;
        assert!(k.tx.update_due());
    }
}
