//! PROXY protocol v1 and v2 headers (`gateway/src/proxy_protocol.rs`), read
//! as the gateway reads them in front of TLS.
//!
//! Checks: no panic; allocation bounded; a header is read exactly (v1: up to
//! its CRLF, at most 107 bytes; v2: 16 bytes plus its length), nothing of the
//! TLS bytes after it; and addresses built from the input survive a v2 header
//! (`v2_header`) and a v1 line.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, run, Budget};
use thingate::proxy_protocol::{read_header, v2_header};

fn addr(b: &[u8], v6: bool) -> SocketAddr {
    let mut x = [0u8; 18];
    x[..b.len().min(18)].copy_from_slice(&b[..b.len().min(18)]);
    let port = u16::from_be_bytes([x[16], x[17]]);
    let ip: IpAddr = if v6 {
        Ipv6Addr::from(<[u8; 16]>::try_from(&x[..16]).unwrap()).into()
    } else {
        Ipv4Addr::new(x[0], x[1], x[2], x[3]).into()
    };
    SocketAddr::new(ip, port)
}

fuzz_target!(|data: &[u8]| {
    let budget = Budget::start(budget_for(data.len()));
    let mut rest = data;
    let r = run(read_header(&mut rest));
    let used = data.len() - rest.len();
    if r.is_ok() {
        match data[0] {
            b'P' => {
                assert!(used <= 107, "v1 header of {used} bytes");
                assert!(data[..used].ends_with(b"\r\n"), "v1 header read past its CRLF");
                assert!(!data[..used - 2].windows(2).any(|w| w == b"\r\n"), "v1 header read past its first CRLF");
            }
            _ => {
                let len = u16::from_be_bytes([data[14], data[15]]) as usize;
                assert_eq!(used, 16 + len, "v2 header not read exactly");
            }
        }
    }

    // Addresses from the input, through a v2 header and a v1 line.
    let v6 = data.first().is_some_and(|b| b & 1 == 1);
    let (src, dst) = (addr(data.get(1..).unwrap_or_default(), v6), addr(data.get(19..).unwrap_or_default(), v6));
    let h = v2_header(src, dst);
    assert_eq!(run(read_header(&mut h.as_slice())).unwrap(), Some(src), "v2 round trip");
    let fam = if v6 { "TCP6" } else { "TCP4" };
    let line = format!("PROXY {fam} {} {} {} {}\r\n", src.ip(), dst.ip(), src.port(), dst.port());
    assert_eq!(run(read_header(&mut line.as_bytes())).unwrap(), Some(src), "v1 round trip of {line:?}");
    budget.check("proxy_protocol");
});
