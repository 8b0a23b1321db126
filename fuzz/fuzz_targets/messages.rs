//! The message enums (`protocol/src/messages.rs`): `Hello`, `ServerToGate`,
//! `GateToServer`, `GateToTunnel`, `E2e` and `ErrorCode`, each decoded from the
//! same JSON bytes, as a frame's body.
//!
//! Checks: no panic; allocation bounded; every decoded message re-encodes and
//! decodes to the same bytes (the catch-all `Unexpected` never encodes); and,
//! as the module promises, a frame's bytes depend only on its variant: every
//! enum that decodes the input (other than to its catch-all) re-encodes it to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, round_trip, Budget, Wire};
use thin_protocol::messages::{E2e, ErrorCode, GateToServer, GateToTunnel, Hello, ServerToGate};

fn decode<T: Wire>(data: &[u8], encodings: &mut Vec<(&'static str, Vec<u8>)>) {
    if let Ok(m) = serde_json::from_slice::<T>(data) {
        if let Some(bytes) = round_trip(&m) {
            encodings.push((T::NAME, bytes));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let budget = Budget::start(budget_for(data.len()));
    let mut encodings = Vec::new();
    decode::<Hello>(data, &mut encodings);
    decode::<ServerToGate>(data, &mut encodings);
    decode::<GateToServer>(data, &mut encodings);
    decode::<GateToTunnel>(data, &mut encodings);
    decode::<E2e>(data, &mut encodings);
    if let Some((first, bytes)) = encodings.first() {
        for (other, b) in &encodings[1..] {
            assert_eq!(bytes, b, "{first} and {other} encode the same input differently");
        }
    }
    if let Ok(code) = serde_json::from_slice::<ErrorCode>(data) {
        let bytes = serde_json::to_vec(&code).unwrap();
        assert_eq!(serde_json::from_slice::<ErrorCode>(&bytes).unwrap(), code);
    }
    budget.check("messages");
});
