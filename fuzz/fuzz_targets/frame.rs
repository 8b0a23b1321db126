//! Frames (`protocol/src/frame.rs`) of every direction's message enum, read
//! from one byte stream by `read_frame` and, cut into pieces and cancelled at
//! every "not yet", by `FrameReader`.
//!
//! Input: a selector byte (which enum), a plan length and plan (how the stream
//! is cut for `FrameReader`), then the stream.
//!
//! Checks: no panic; allocation bounded; `read_frame` never reads past the end
//! of a frame; both readers see the same frames and the same kind of error;
//! every decoded message re-encodes and decodes to the same bytes, and
//! `write_frame` then `read_frame` gives it back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, poll_once, round_trip, run, take_plan, Budget, Chunked, Wire};
use thin_protocol::frame::{read_frame, write_frame, FrameError, FrameReader, MAX_FRAME};
use thin_protocol::messages::{E2e, GateToServer, GateToTunnel, Hello, ServerToGate};

/// What a read gave, comparable across the two readers.
#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Option<Vec<u8>>),
    /// End of stream (between or inside frames: the two readers word a cut
    /// length prefix differently).
    Eof,
    TooLarge(usize),
    Malformed,
    Io,
}

fn seen<T: Wire>(r: Result<T, FrameError>) -> Seen {
    match r {
        Ok(m) => Seen::Frame(round_trip(&m)),
        Err(FrameError::Closed) => Seen::Eof,
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Seen::Eof,
        Err(FrameError::Io(_)) => Seen::Io,
        Err(FrameError::TooLarge(n)) => {
            assert!(n > MAX_FRAME, "TooLarge({n}) within the limit");
            Seen::TooLarge(n)
        }
        Err(FrameError::Malformed(_)) => Seen::Malformed,
    }
}

fn check<T: Wire>(plan: &[u8], stream: &[u8]) {
    // read_frame over the whole stream, frame after frame, until an error.
    let mut rest = stream;
    let mut plain = Vec::new();
    loop {
        let before = rest.len();
        let r = run(read_frame::<T, _>(&mut rest));
        let used = before - rest.len();
        let s = seen(r);
        if let Seen::Frame(_) = s {
            let len = u32::from_be_bytes(stream[stream.len() - before..][..4].try_into().unwrap()) as usize;
            assert_eq!(used, 4 + len, "read_frame read past the end of its frame");
        }
        let stop = !matches!(s, Seen::Frame(_));
        plain.push(s);
        if stop {
            break;
        }
    }

    // FrameReader over the same stream in pieces, its reads cancelled at
    // every "not yet" and started again.
    let mut rd = Chunked::new(stream, plan);
    let mut fr = FrameReader::new();
    let mut cut = Vec::new();
    loop {
        let s = loop {
            if let Some(r) = poll_once(fr.read::<T, _>(&mut rd)) {
                break seen(r);
            }
        };
        let stop = !matches!(s, Seen::Frame(_));
        cut.push(s);
        if stop {
            break;
        }
    }
    assert_eq!(plain, cut, "{}: read_frame and a cancelled FrameReader disagree", T::NAME);

    // write_frame -> read_frame gives every frame back.
    for s in &plain {
        if let Seen::Frame(Some(bytes)) = s {
            let m: T = serde_json::from_slice(bytes).unwrap();
            let mut out = Vec::new();
            match run(write_frame(&mut out, &m)) {
                Ok(()) => {
                    let back = run(read_frame::<T, _>(&mut out.as_slice())).expect("a written frame reads back");
                    assert_eq!(serde_json::to_vec(&back).unwrap(), *bytes);
                }
                // Decoding fills in absent optional fields, so the re-encoded
                // message can exceed the limit that its original met.
                Err(FrameError::TooLarge(n)) => assert!(n == bytes.len() && n > MAX_FRAME),
                Err(e) => panic!("write_frame: {e}"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let budget = Budget::start(budget_for(data.len()));
    let (sel, plan, stream) = take_plan(data);
    match sel % 5 {
        0 => check::<Hello>(plan, stream),
        1 => check::<ServerToGate>(plan, stream),
        2 => check::<GateToServer>(plan, stream),
        3 => check::<GateToTunnel>(plan, stream),
        _ => check::<E2e>(plan, stream),
    }
    budget.check("frame");
});
