//! HTTP `CONNECT` (RFC 9110 section 9.3.6) with optional Basic authentication.

use super::settings::{host_port, unbracket};
use super::{ProxyError, ProxySetting};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// The longest response head accepted from a proxy.
pub const MAX_HEAD: usize = 8 * 1024;

/// Asks the HTTP proxy on `stream` to open a tunnel to `host:port` and
/// reads its answer up to the blank line and not one byte further, so the
/// caller's next read is the target's first byte.
pub async fn handshake<S>(stream: &mut S, proxy: &ProxySetting, host: &str, port: u16) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = host_port(unbracket(host), port);
    let mut request = Zeroizing::new(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"));
    if let Some((user, password)) = proxy.credentials() {
        let token = Zeroizing::new(STANDARD.encode(format!("{user}:{}", password.expose())));
        request.push_str(&format!("Proxy-Authorization: Basic {}\r\n", token.as_str()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| ProxyError::io(proxy, e, "the request"))?;
    stream.flush().await.map_err(|e| ProxyError::io(proxy, e, "the request"))?;

    let head = read_head(stream, proxy).await?;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line: String = String::from_utf8_lossy(line).chars().filter(|c| !c.is_control()).take(200).collect();
    let status = parse_status(&line).ok_or_else(|| {
        ProxyError::malformed(proxy, format!("{line:?} is not an HTTP status line; is it an HTTP proxy?"))
    })?;
    tracing::debug!(proxy = %proxy, status_line = %line, "CONNECT answered");
    match status {
        200..=299 => Ok(()),
        // 407 is the standard answer; tinyproxy answers wrong credentials with 401.
        401 | 407 if proxy.credentials().is_some() => Err(ProxyError::AuthRejected { proxy: proxy.addr() }),
        401 | 407 => Err(ProxyError::AuthRequired { proxy: proxy.addr() }),
        status => Err(ProxyError::HttpStatus { proxy: proxy.addr(), target, status, status_line: line }),
    }
}

/// `HTTP/1.x NNN reason` -> `NNN`.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    let ok = version.starts_with("HTTP/") && code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| code.parse().ok()).flatten()
}

/// Reads until an empty line (`\r\n\r\n`, or bare `\n\n`), never past it:
/// each read asks only for as many bytes as could still belong to the head.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, proxy: &ProxySetting) -> Result<Vec<u8>, ProxyError> {
    let mut head = Vec::with_capacity(256);
    loop {
        if head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n") {
            return Ok(head);
        }
        // Shortest possible rest of the terminator: one byte after "\n" or
        // "\n\r", else two ("\n\n").
        let want = if head.ends_with(b"\n") || head.ends_with(b"\n\r") { 1 } else { 2 };
        if head.len() + want > MAX_HEAD {
            return Err(ProxyError::malformed(proxy, "the response head is longer than 8 KiB"));
        }
        let start = head.len();
        head.resize(start + want, 0);
        let n = stream.read(&mut head[start..]).await.map_err(|e| ProxyError::io(proxy, e, "the response"))?;
        head.truncate(start + n);
        if n == 0 {
            let detail = match start {
                0 => "the proxy closed the connection without answering".to_owned(),
                _ => "the connection closed in the middle of the response head".to_owned(),
            };
            return Err(ProxyError::malformed(proxy, detail));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyKind;
    use thin_protocol::secret::Secret;
    use tokio::io::duplex;

    /// Runs the handshake against a scripted proxy that sends `reply`;
    /// returns the result, the request it received, and what the caller
    /// reads next from the stream.
    async fn scripted(proxy: &ProxySetting, reply: &'static [u8]) -> (Result<(), ProxyError>, String, Vec<u8>) {
        let (mut client, mut server) = duplex(64 * 1024);
        let fake = tokio::spawn(async move {
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                server.read_exact(&mut byte).await.unwrap();
                request.push(byte[0]);
            }
            server.write_all(reply).await.unwrap();
            String::from_utf8(request).unwrap()
        });
        let result = handshake(&mut client, proxy, "gw.example", 443).await;
        let request = fake.await.unwrap();
        let mut rest = Vec::new();
        if result.is_ok() {
            client.read_to_end(&mut rest).await.unwrap();
        }
        (result, request, rest)
    }

    #[tokio::test]
    async fn success_keeps_bytes_after_the_head() {
        let proxy = ProxySetting::new(ProxyKind::Http, "p", 3128);
        let reply = b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n\x16\x03\x01TLS";
        let (result, request, rest) = scripted(&proxy, reply).await;
        result.unwrap();
        assert_eq!(request, "CONNECT gw.example:443 HTTP/1.1\r\nHost: gw.example:443\r\n\r\n");
        assert_eq!(rest, b"\x16\x03\x01TLS");
        let (result, _, rest) = scripted(&proxy, b"HTTP/1.0 200 OK\n\nafter").await;
        result.unwrap();
        assert_eq!(rest, b"after");
    }

    #[tokio::test]
    async fn basic_auth_and_407() {
        let proxy = ProxySetting::new(ProxyKind::Http, "p", 3128).with_credentials("alice", Secret::new("s3cret"));
        let (result, request, _) = scripted(&proxy, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
        assert!(request.contains("Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"), "{request}");
        let msg = result.unwrap_err().to_string();
        assert_eq!(msg, "the proxy p:3128 refused the user name or password");
        let anonymous = ProxySetting::new(ProxyKind::Http, "p", 3128);
        let (result, _, _) = scripted(&anonymous, b"HTTP/1.1 407 Auth\r\n\r\n").await;
        assert!(result.unwrap_err().to_string().contains("requires a user name and password"));
    }

    #[tokio::test]
    async fn refusals_and_garbage() {
        let proxy = ProxySetting::new(ProxyKind::Http, "p", 3128);
        let (result, _, _) = scripted(&proxy, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await;
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "the proxy p:3128 refused to connect to gw.example:443: HTTP/1.1 403 Forbidden");
        assert!(!err.is_retryable());
        let (result, _, _) = scripted(&proxy, b"\x05\x00garbage\n\n").await;
        assert!(matches!(result, Err(ProxyError::Malformed { .. })));
        let (result, _, _) = scripted(&proxy, b"HTTP/1.1 200 OK\r\n").await;
        assert!(result.unwrap_err().to_string().contains("in the middle of the response head"));
        let huge: &'static [u8] = Box::leak(vec![b'a'; MAX_HEAD + 10].into_boxed_slice());
        let (result, _, _) = scripted(&proxy, huge).await;
        assert!(result.unwrap_err().to_string().contains("longer than 8 KiB"));
    }
}
