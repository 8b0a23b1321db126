//! The TLS 1.3 record layer (`protocol/src/records.rs`) that thingate's relay
//! and the apps' in-place legs (`client/tunnel/src/inplace.rs`) run on every
//! byte the other side of a leg sends: `record_len`, then `open` in place,
//! as both read their socket.
//!
//! Input: a selector byte (the suite, and the traffic secret both ends
//! derive their keys from), then operations, each an op byte and a payload
//! of up to a two-byte big-endian length (cut to what is left). The peer
//! puts on the wire: 0 the payload as raw bytes (forged records, garbage),
//! 1 the payload sealed as application data, 2 any inner plaintext (the
//! payload: content, content type, padding) sealed as one record, 3 a key
//! update (its send keys move on), 4 a close_notify.
//!
//! Checks: no panic, allocation bounded; `record_len` gives a length within
//! TLS 1.3's limits; every record the peer sealed before the first raw
//! bytes opens (no authentication failure while the two ends are in step),
//! data, key updates and close_notify to exactly what was sealed, in
//! order, and any inner plaintext to what its content type makes of it
//! (data only when the last byte that is not padding is type 23, then the
//! bytes before it); a key update the receiver follows keeps the next
//! records opening; opened data never lies outside its record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustls::CipherSuite as S;
use thin_fuzz::{budget_for, Budget};
use thin_protocol::records::{self, Keys, Opened, HEADER, MAX_CONTENT, MAX_RECORD, TAG};

/// What the peer sealed into one record.
enum Sealed {
    Data(Vec<u8>),
    /// An inner plaintext of the fuzzer's: content, type, padding.
    Inner(Vec<u8>),
    KeyUpdate,
    CloseNotify,
}

fn sealed_record(tx: &mut Keys, content: &[u8], typ: Option<u8>) -> Option<Vec<u8>> {
    let n = content.len().min(MAX_CONTENT);
    let mut rec = vec![0u8; HEADER + n + 1 + TAG];
    rec[HEADER..HEADER + n].copy_from_slice(&content[..n]);
    let len = match typ {
        None => records::seal(tx, &mut rec, n),
        Some(t) => records::seal_content(tx, &mut rec, n, t),
    }
    .ok()?;
    rec.truncate(len);
    Some(rec)
}

fn check(data: &[u8]) {
    let Some((&sel, mut ops)) = data.split_first() else { return };
    let (suite, secret_len) = match sel % 3 {
        0 => (S::TLS13_AES_128_GCM_SHA256, 32),
        1 => (S::TLS13_AES_256_GCM_SHA384, 48),
        _ => (S::TLS13_CHACHA20_POLY1305_SHA256, 32),
    };
    let secret = vec![sel; secret_len];
    let mut tx = Keys::from_traffic_secret(suite, &secret).expect("a known suite");
    let mut rx = Keys::from_traffic_secret(suite, &secret).expect("a known suite");

    // The peer writes the wire.
    let mut wire = Vec::new();
    let mut sealed = Vec::new();
    let mut raw_from = None;
    while let Some((&op, rest)) = ops.split_first() {
        let Some(len) = rest.get(..2).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) else { break };
        let len = len.min(rest.len() - 2);
        let payload = &rest[2..2 + len];
        ops = &rest[2 + len..];
        match op % 5 {
            0 => {
                raw_from.get_or_insert(wire.len());
                wire.extend_from_slice(payload);
            }
            1 => {
                let Some(rec) = sealed_record(&mut tx, payload, None) else { break };
                wire.extend_from_slice(&rec);
                sealed.push(Sealed::Data(payload[..payload.len().min(MAX_CONTENT)].to_vec()));
            }
            2 => {
                let Some((&typ, content)) = payload.split_last() else { continue };
                let content = &content[..content.len().min(MAX_CONTENT)];
                let Some(rec) = sealed_record(&mut tx, content, Some(typ)) else { break };
                wire.extend_from_slice(&rec);
                let mut inner = content.to_vec();
                inner.push(typ);
                sealed.push(Sealed::Inner(inner));
            }
            3 => {
                let mut rec = [0u8; records::KEY_UPDATE_LEN];
                let Ok(n) = records::seal_key_update(&mut tx, &mut rec) else { break };
                wire.extend_from_slice(&rec[..n]);
                sealed.push(Sealed::KeyUpdate);
            }
            _ => {
                let mut rec = [0u8; records::CLOSE_NOTIFY_LEN];
                let Ok(n) = records::seal_close_notify(&mut tx, &mut rec) else { break };
                wire.extend_from_slice(&rec[..n]);
                sealed.push(Sealed::CloseNotify);
            }
        }
    }

    // The receiving side reads it, record after record, until an error.
    let (mut at, mut next) = (0, 0);
    let mut in_step = true;
    while at < wire.len() {
        let ours = raw_from.is_none_or(|r| at < r);
        let n = match records::record_len(&wire[at..]) {
            Ok(Some(n)) => n,
            Ok(None) => {
                assert!(!ours, "the header of a sealed record was not whole");
                break;
            }
            Err(e) => {
                assert!(!ours, "a sealed record's header was refused: {e}");
                break;
            }
        };
        assert!((HEADER + TAG + 1..=MAX_RECORD).contains(&n), "record_len gave {n}");
        if at + n > wire.len() {
            assert!(!ours, "a sealed record was cut");
            break;
        }
        let rec = &mut wire[at..at + n];
        let got = records::open(&mut rx, rec);
        if let Ok(Opened::Data(len)) = got {
            assert!(HEADER + len + 1 + TAG <= n, "opened data outside its record");
        }
        if !(ours && in_step) {
            if got.is_err() {
                break;
            }
            at += n;
            continue;
        }
        match (&got, &sealed[next]) {
            (Ok(Opened::Data(len)), Sealed::Data(d)) => assert_eq!(&rec[HEADER..HEADER + len], &d[..]),
            (Ok(Opened::KeyUpdate { requested: false }), Sealed::KeyUpdate) => {}
            (Ok(Opened::CloseNotify), Sealed::CloseNotify) => {}
            (_, Sealed::Inner(inner)) => {
                assert!(got != Err(records::RecordError::Decrypt), "a record sealed in step failed to open");
                let end = inner.iter().rposition(|&b| b != 0);
                match got {
                    Ok(Opened::Data(len)) => {
                        // Type 23, or a session ticket (dropped: no data).
                        let typ = end.map(|e| inner[e]);
                        assert!(
                            (typ == Some(23) && Some(len) == end && rec[HEADER..HEADER + len] == inner[..len])
                                || (len == 0 && typ == Some(22) && inner.first() == Some(&4)),
                            "inner plaintext {inner:?} opened as {len} bytes of data"
                        );
                    }
                    Ok(Opened::CloseNotify) => assert!(end.is_some_and(|e| inner[e] == 21 && e == 2)),
                    Ok(Opened::KeyUpdate { .. }) => {
                        assert!(end.is_some_and(|e| inner[e] == 22 && e == 5 && inner[0] == 24));
                        // The receiver moved on; the peer's keys did not.
                        in_step = false;
                    }
                    Err(_) => break,
                }
            }
            (got, _) => panic!("record {next} sealed in step opened as {got:?}"),
        }
        next += 1;
        at += n;
    }
    if raw_from.is_none() && in_step && at == wire.len() {
        assert_eq!(next, sealed.len(), "every sealed record was read");
    }
}

fuzz_target!(|data: &[u8]| {
    let budget = Budget::start(budget_for(data.len()));
    check(data);
    budget.check("records");
});
