//! The HTTP/1.1 layer that opens every connection: plain GET pages
//! (`/thingate/`, `/thinstat/`) and the `Upgrade` that switches to frames.
//!
//! Heads are read byte by byte (from TLS's own buffer), so nothing after the
//! blank line is consumed.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// Errors reading an HTTP head.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Head larger than [`MAX_HEAD`].
    #[error("HTTP head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// Not HTTP/1.x.
    #[error("malformed HTTP head: {0}")]
    Malformed(String),
    /// The peer closed before sending a complete head.
    #[error("connection closed before a complete HTTP head")]
    Closed,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path including the query string.
    pub target: String,
    /// Header names in lower case with their values.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The path without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// The query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
    /// True when this request asks to switch to the framed protocol.
    pub fn is_upgrade(&self) -> bool {
        self.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case(crate::UPGRADE_TOKEN))
    }
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
}

async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    loop {
        let n = r.read(&mut byte).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(HttpError::TooLarge);
        }
    }
}

/// Reads and parses a request head.
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, HttpError> {
    let head = read_head(r).await?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("incomplete".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    Ok(Request {
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
    })
}

/// Reads and parses a response head.
pub async fn read_response<R: AsyncRead + Unpin>(r: &mut R) -> Result<Response, HttpError> {
    let head = read_head(r).await?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("incomplete".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    Ok(Response { status: resp.code.unwrap_or(0), reason: resp.reason.unwrap_or_default().to_string() })
}

/// Writes the upgrade request that opens a framed connection.
pub async fn write_upgrade_request<W: AsyncWrite + Unpin>(w: &mut W, host: &str) -> std::io::Result<()> {
    let req = format!(
        "GET {}connect HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {}\r\nUser-Agent: thintelework/{}\r\n\r\n",
        crate::GATE_PATH,
        crate::UPGRADE_TOKEN,
        env!("CARGO_PKG_VERSION")
    );
    w.write_all(req.as_bytes()).await?;
    w.flush().await
}

/// Writes the `101 Switching Protocols` answer.
pub async fn write_upgrade_response<W: AsyncWrite + Unpin>(w: &mut W) -> std::io::Result<()> {
    let resp =
        format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {}\r\n\r\n", crate::UPGRADE_TOKEN);
    w.write_all(resp.as_bytes()).await?;
    w.flush().await
}

/// Writes a complete response with a body and `Connection: close`.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    write_response_with(w, status, reason, content_type, &[], body).await
}

/// [`write_response`] with `extra` headers (name, value) after the usual ones.
pub async fn write_response_with<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upgrade_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        write_upgrade_request(&mut a, "gw.example").await.unwrap();
        a.write_all(b"X").await.unwrap();
        let req = read_request(&mut b).await.unwrap();
        assert!(req.is_upgrade());
        assert_eq!(req.path(), "/thingate/connect");
        let mut x = [0u8; 1];
        b.read_exact(&mut x).await.unwrap();
        assert_eq!(&x, b"X");
        write_upgrade_response(&mut b).await.unwrap();
        assert_eq!(read_response(&mut a).await.unwrap().status, 101);
    }

    #[tokio::test]
    async fn garbage_and_oversize() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(b"\x16\x03\x01garbage\r\n\r\n").await.unwrap();
        assert!(matches!(read_request(&mut b).await, Err(HttpError::Malformed(_))));
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(&vec![b'a'; MAX_HEAD + 10]).await.unwrap();
        assert!(matches!(read_request(&mut b).await, Err(HttpError::TooLarge)));
    }
}
