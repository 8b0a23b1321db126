//! The HTTP/1.1 heads that open every connection (`protocol/src/http.rs`):
//! `read_request` (the gateway reading a peer) and `read_response` (an app
//! reading the gateway's answer), over the same bytes.
//!
//! Checks: no panic; allocation bounded; a head is read up to its blank line
//! and not one byte further (the framed protocol follows it on the same
//! stream); a parsed request written out again parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, run, Budget};
use thin_protocol::http::{read_request, read_response, HttpError, Request, MAX_HEAD};

/// Bytes a successful read may consume: up to the first blank line.
fn head_len(data: &[u8]) -> Option<usize> {
    data.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn check_consumed<T>(what: &str, data: &[u8], rest: &[u8], r: &Result<T, HttpError>) {
    let used = data.len() - rest.len();
    assert!(used <= MAX_HEAD, "{what}: read {used} bytes, past MAX_HEAD");
    if r.is_ok() {
        assert_eq!(Some(used), head_len(data), "{what}: did not stop right after the blank line");
    }
    if let Err(HttpError::TooLarge) = r {
        assert!(head_len(&data[..used]).is_none(), "{what}: TooLarge with a complete head");
    }
}

fn write(req: &Request) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.target).into_bytes();
    for (k, v) in &req.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fuzz_target!(|data: &[u8]| {
    let budget = Budget::start(budget_for(data.len()));
    let mut rest = data;
    let req = run(read_request(&mut rest));
    check_consumed("read_request", data, rest, &req);
    if let Ok(req) = &req {
        assert!(req.target.starts_with(req.path()));
        assert!(req.headers.iter().all(|(k, _)| *k == k.to_ascii_lowercase()), "header names are lower case");
        let again = write(req);
        if again.len() <= MAX_HEAD {
            let back = run(read_request(&mut again.as_slice())).unwrap_or_else(|e| {
                panic!("{req:?} written out as {:?} does not parse: {e}", String::from_utf8_lossy(&again))
            });
            assert_eq!((&back.method, &back.target, &back.headers), (&req.method, &req.target, &req.headers));
            assert_eq!(back.is_upgrade(), req.is_upgrade());
        }
    }
    let mut rest = data;
    let resp = run(read_response(&mut rest));
    check_consumed("read_response", data, rest, &resp);
    budget.check("http_head");
});
