//! PROXY protocol v1 and v2 (`AcceptProxyProtocol 1`): a load balancer in front
//! of the gateway prepends the client's real address, so limits, `/thinstat/`
//! and the loopback-only pages see the real peer. Reads exactly the header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIG: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// Errors in a PROXY header.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Not a PROXY header.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

/// Reads a v1 or v2 header. `Ok(None)` for `UNKNOWN`/`LOCAL` (use the TCP peer).
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut first = [0u8; 1];
    r.read_exact(&mut first).await?;
    match first[0] {
        b'P' => read_v1(r).await,
        0x0D => read_v2(r).await,
        _ => Err(ProxyHeaderError::Malformed("neither v1 nor v2")),
    }
}

async fn read_v1<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut line = vec![b'P'];
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() >= 107 {
            return Err(ProxyHeaderError::Malformed("v1 line longer than 107 bytes"));
        }
        r.read_exact(&mut b).await?;
        line.push(b[0]);
    }
    let text = std::str::from_utf8(&line).map_err(|_| ProxyHeaderError::Malformed("v1 not ASCII"))?;
    let parts: Vec<&str> = text.trim_end().split(' ').collect();
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src.parse().map_err(|_| ProxyHeaderError::Malformed("v1 source address"))?;
            if (*fam == "TCP4") != ip.is_ipv4() {
                return Err(ProxyHeaderError::Malformed("v1 family does not match the address"));
            }
            let port: u16 = sport.parse().map_err(|_| ProxyHeaderError::Malformed("v1 source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(ProxyHeaderError::Malformed("v1 fields")),
    }
}

async fn read_v2<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut head = [0u8; 15];
    r.read_exact(&mut head).await?;
    if head[..11] != V2_SIG[1..] {
        return Err(ProxyHeaderError::Malformed("v2 signature"));
    }
    let (ver_cmd, fam) = (head[11], head[12]);
    let len = u16::from_be_bytes([head[13], head[14]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("v2 version"));
    }
    if len > 512 {
        return Err(ProxyHeaderError::Malformed("v2 header too long"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if ver_cmd & 0x0F == 0 {
        return Ok(None); // LOCAL: health check from the balancer itself
    }
    match fam >> 4 {
        1 if len >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Ok(Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]]))))
        }
        2 if len >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            Ok(Some(SocketAddr::new(Ipv6Addr::from(a).into(), u16::from_be_bytes([body[32], body[33]]))))
        }
        0 => Ok(None),
        _ => Err(ProxyHeaderError::Malformed("v2 address family")),
    }
}

/// Builds a v2 header for `src` -> `dst` (used by tests and tools).
pub fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIG.to_vec();
    out.push(0x21);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v) => v.to_ipv6_mapped(),
                IpAddr::V6(v) => v,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn v1_v2_and_garbage() {
        let mut v1: &[u8] = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nTLS...";
        assert_eq!(read_header(&mut v1).await.unwrap(), Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(v1, b"TLS...", "nothing past the header is consumed");
        let mut unk: &[u8] = b"PROXY UNKNOWN\r\n";
        assert_eq!(read_header(&mut unk).await.unwrap(), None);
        let src: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
        let h = v2_header(src, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(read_header(&mut h.as_slice()).await.unwrap(), Some(src));
        let h = v2_header("198.51.100.2:7".parse().unwrap(), "192.0.2.1:443".parse().unwrap());
        assert_eq!(read_header(&mut h.as_slice()).await.unwrap(), Some("198.51.100.2:7".parse().unwrap()));
        for bad in [&b"GET / HTTP/1.1\r\n"[..], b"PROXY TCP4 1.2.3.4\r\n", b"PROXY TCP4 ::1 ::1 1 2\r\n"] {
            assert!(read_header(&mut &bad[..]).await.is_err(), "{bad:?}");
        }
        let long = [b'P'; 200];
        assert!(read_header(&mut &long[..]).await.is_err());
    }
}
