//! A tiny HTTPS client for tests, trusting only the test CA.

use std::net::SocketAddr;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens TLS to `addr` trusting `ca_pem`.
pub async fn tls_connect(addr: SocketAddr, ca_pem: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_over(tokio::net::TcpStream::connect(addr).await.unwrap(), ca_pem).await
}

/// Opens TLS over `tcp` (a connection to the test gateway) trusting `ca_pem`.
pub async fn tls_over(
    tcp: tokio::net::TcpStream,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let addr = tcp.peer_addr().unwrap();
    let ca = thin_protocol::entry_point::EntryPoint::parse(&format!("{ca_pem}\nhttps://{addr}/\n"), "ca").unwrap().ca;
    let cfg = thin_protocol::tls::client_config(&ca).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await.unwrap()
}

/// `GET path`; returns (status, body).
pub async fn get(addr: SocketAddr, ca_pem: &str, path: &str) -> (u16, String) {
    let mut s = tls_connect(addr, ca_pem).await;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
