//! SOCKS5 `CONNECT` (RFC 1928) with no authentication or user name and
//! password (RFC 1929).

use super::settings::{host_port, unbracket};
use super::{ProxyError, ProxySetting};
use std::net::IpAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// The RFC 1928 meaning of a reply code, in words.
pub fn reply_text(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general failure of the SOCKS server",
        2 => "connection not allowed by the proxy's ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused by the target",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

/// Asks the SOCKS5 proxy on `stream` to connect to `host:port`. A DNS name
/// is sent as a name (address type 3) for the proxy to resolve; IP literals
/// as IPv4 or IPv6 addresses. Reads the reply exactly, so the caller's next
/// read is the target's first byte.
pub async fn handshake<S>(stream: &mut S, proxy: &ProxySetting, host: &str, port: u16) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (credentials, addr) = (proxy.credentials(), || proxy.addr());
    // Offer "no authentication", and "user name and password" when we have them.
    let greeting: &[u8] = match credentials {
        Some(_) => &[5, 2, 0, 2],
        None => &[5, 1, 0],
    };
    send(stream, proxy, greeting, "the greeting").await?;
    let mut choice = [0u8; 2];
    recv(stream, proxy, &mut choice, "the method selection").await?;
    if choice[0] != 5 {
        let detail = format!("version {} instead of 5; is it a SOCKS5 proxy?", choice[0]);
        return Err(ProxyError::malformed(proxy, detail));
    }
    match (choice[1], credentials) {
        (0, _) => {}
        (2, Some((user, password))) => {
            let (user, password) = (user.as_bytes(), password.expose().as_bytes());
            let mut auth = Zeroizing::new(Vec::with_capacity(3 + user.len() + password.len()));
            auth.extend([1, user.len() as u8]);
            auth.extend_from_slice(user);
            auth.push(password.len() as u8);
            auth.extend_from_slice(password);
            send(stream, proxy, &auth, "authentication").await?;
            let mut status = [0u8; 2];
            recv(stream, proxy, &mut status, "authentication").await?;
            if status[1] != 0 {
                return Err(ProxyError::AuthRejected { proxy: addr() });
            }
        }
        (0xFF, None) => return Err(ProxyError::AuthRequired { proxy: addr() }),
        (0xFF, Some(_)) => return Err(ProxyError::Socks5NoMethod { proxy: addr() }),
        (method, _) => {
            let detail = format!("it chose authentication method {method:#04x}, which was not offered");
            return Err(ProxyError::malformed(proxy, detail));
        }
    }

    let host = unbracket(host);
    let mut request = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => request.extend([1].into_iter().chain(ip.octets())),
        Ok(IpAddr::V6(ip)) => request.extend([4].into_iter().chain(ip.octets())),
        Err(_) => {
            let name = u8::try_from(host.len()).map_err(|_| ProxyError::Invalid {
                origin: "the target".into(),
                reason: format!("host name longer than 255 bytes ({} bytes)", host.len()),
            })?;
            request.extend([3, name]);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend(port.to_be_bytes());
    send(stream, proxy, &request, "the connect request").await?;

    let mut reply = [0u8; 4];
    recv(stream, proxy, &mut reply, "the connect reply").await?;
    if reply[0] != 5 {
        let detail = format!("reply version {} instead of 5", reply[0]);
        return Err(ProxyError::malformed(proxy, detail));
    }
    if reply[1] != 0 {
        let (target, code) = (host_port(host, port), reply[1]);
        return Err(ProxyError::Socks5Reply { proxy: addr(), target, code });
    }
    let bound = match reply[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            recv(stream, proxy, &mut len, "the connect reply").await?;
            usize::from(len[0])
        }
        n => return Err(ProxyError::malformed(proxy, format!("unknown address type {n}"))),
    };
    let mut rest = vec![0u8; bound + 2];
    recv(stream, proxy, &mut rest, "the connect reply").await?;
    tracing::debug!(proxy = %proxy, "SOCKS5 connect succeeded");
    Ok(())
}

async fn send<S: AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &ProxySetting,
    buf: &[u8],
    stage: &str,
) -> Result<(), ProxyError> {
    s.write_all(buf).await.map_err(|e| ProxyError::io(proxy, e, stage))?;
    s.flush().await.map_err(|e| ProxyError::io(proxy, e, stage))
}

async fn recv<S: AsyncRead + Unpin>(
    s: &mut S,
    proxy: &ProxySetting,
    buf: &mut [u8],
    stage: &str,
) -> Result<(), ProxyError> {
    s.read_exact(buf).await.map(drop).map_err(|e| ProxyError::io(proxy, e, stage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyKind;
    use tokio::io::duplex;

    /// Runs the handshake against a scripted proxy: for each step it reads
    /// that many bytes, then sends the reply. Returns the result, the bytes
    /// received after the greeting, and what the caller reads next.
    async fn scripted(host: &str, steps: &[(usize, &'static [u8])]) -> (Result<(), ProxyError>, Vec<u8>, Vec<u8>) {
        let (mut client, mut server) = duplex(4096);
        let steps = steps.to_vec();
        let fake = tokio::spawn(async move {
            let mut request = Vec::new();
            for (n, reply) in steps {
                let mut buf = vec![0u8; n];
                server.read_exact(&mut buf).await.unwrap();
                request.extend(buf);
                server.write_all(reply).await.unwrap();
            }
            request.split_off(3.min(request.len()))
        });
        let proxy = ProxySetting::new(ProxyKind::Socks5, "s", 1080);
        let result = handshake(&mut client, &proxy, host, 443).await;
        let request = fake.await.unwrap();
        let mut rest = Vec::new();
        if result.is_ok() {
            client.read_to_end(&mut rest).await.unwrap();
        }
        (result, request, rest)
    }

    fn msg(err: &ProxyError) -> String {
        err.to_string()
    }

    const NO_AUTH: (usize, &[u8]) = (3, b"\x05\x00");

    #[tokio::test]
    async fn address_types_and_exact_reads() {
        let ok_v4: &[u8] = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x01\xbbTLS";
        let (result, request, rest) = scripted("gw.example", &[NO_AUTH, (5 + 10 + 2, ok_v4)]).await;
        result.unwrap();
        assert_eq!(request, b"\x05\x01\x00\x03\x0agw.example\x01\xbb");
        assert_eq!(rest, b"TLS");
        let ok_name: &[u8] = b"\x05\x00\x00\x03\x02gw\x01\xbbTLS";
        let (result, request, rest) = scripted("[::1]", &[NO_AUTH, (4 + 16 + 2, ok_name)]).await;
        result.unwrap();
        assert_eq!(&request[..5], b"\x05\x01\x00\x04\x00");
        assert_eq!(rest, b"TLS");
        let (result, request, _) = scripted("10.0.0.1", &[NO_AUTH, (4 + 4 + 2, ok_v4)]).await;
        result.unwrap();
        assert_eq!(request, b"\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb");
    }

    #[tokio::test]
    async fn reply_codes_become_words() {
        let refused: &[u8] = b"\x05\x04\x00\x01\0\0\0\0\0\0";
        let (result, _, _) = scripted("gw.example", &[NO_AUTH, (17, refused)]).await;
        let err = result.unwrap_err();
        let text = "the SOCKS5 proxy s:1080 could not connect to gw.example:443: host unreachable (reply code 4)";
        assert_eq!(err.to_string(), text);
        assert!(err.is_retryable());
        let ruleset: &[u8] = b"\x05\x02\x00\x01\0\0\0\0\0\0";
        let (result, _, _) = scripted("gw.example", &[NO_AUTH, (17, ruleset)]).await;
        let err = result.unwrap_err();
        assert!(msg(&err).contains("not allowed by the proxy's ruleset"));
        assert!(!err.is_retryable());
        let words: Vec<_> = (1..=8).map(reply_text).collect();
        assert!(words[0].contains("general failure") && words[5] == "TTL expired");
        assert_eq!(words[6..], ["command not supported", "address type not supported"]);
    }

    #[tokio::test]
    async fn auth_demanded_and_wrong_protocol() {
        let (result, _, _) = scripted("gw.example", &[(3, b"\x05\xff")]).await;
        assert!(matches!(result, Err(ProxyError::AuthRequired { .. })));
        let (result, _, _) = scripted("gw.example", &[(3, b"HTTP/1.1 400 Bad Request\r\n\r\n")]).await;
        assert!(msg(&result.unwrap_err()).contains("is it a SOCKS5 proxy?"));
        let (result, _, _) = scripted("gw.example", &[(3, b"\x05")]).await;
        assert!(msg(&result.unwrap_err()).contains("closed during the method selection"));
    }
}
