//! TLS for the relay's tests: a self-signed gateway, real sockets, and the
//! relay driven the way a paired tunnel drives it.

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use thin_protocol::read_ahead::ReadAhead;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{relay_tls, HandshakeSecrets, RelayEnd, Traffic};
use crate::stream::GateStream;

/// A client and a server configuration that trust each other, for `versions`;
/// the server lets its keys be taken, as the gateway's does, and keeps its
/// traffic secrets in `secrets` when given.
pub fn configs(
    versions: &[&'static SupportedProtocolVersion],
    secrets: Option<Arc<HandshakeSecrets>>,
) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["gateway.test".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    server.enable_secret_extraction = true;
    if let Some(s) = secrets {
        server.key_log = s;
    }
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(client), Arc::new(server))
}

type AppStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Two apps connected to one gateway listener: the apps' ends and the
/// gateway's.
async fn two_legs(
    versions: &[&'static SupportedProtocolVersion],
    secrets: Option<Arc<HandshakeSecrets>>,
) -> ((AppStream, GateStream), (AppStream, GateStream)) {
    let (client_cfg, server_cfg) = configs(versions, secrets);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_cfg);
    let connector = tokio_rustls::TlsConnector::from(client_cfg);
    let mut legs = Vec::new();
    for _ in 0..2 {
        let app = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector.connect("gateway.test".try_into().unwrap(), tcp).await.unwrap()
        };
        let gate = async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(ReadAhead::new(tcp)).await.unwrap()
        };
        legs.push(tokio::join!(app, gate));
    }
    let b = legs.pop().unwrap();
    (legs.pop().unwrap(), b)
}

/// The relay of two legs, as a task, with these counters.
fn spawn_relay(
    a_gw: GateStream,
    b_gw: GateStream,
    secrets: Arc<HandshakeSecrets>,
    counters: (Arc<Traffic>, Arc<Traffic>),
) -> tokio::task::JoinHandle<RelayEnd> {
    spawn_relay_bare(a_gw, b_gw, secrets, counters, false)
}

/// [`spawn_relay`], with bare records agreed or not.
fn spawn_relay_bare(
    a_gw: GateStream,
    b_gw: GateStream,
    secrets: Arc<HandshakeSecrets>,
    counters: (Arc<Traffic>, Arc<Traffic>),
    bare: bool,
) -> tokio::task::JoinHandle<RelayEnd> {
    tokio::spawn(async move {
        relay_tls((a_gw, b_gw), &secrets, Duration::from_secs(30), counters, Default::default(), bare).await
    })
}

/// An app's side of a switch to bare records: it sends its `close_notify`
/// and then `bare`, and ends its socket, while it reads what the gateway
/// sends: `Ok` with every byte after the gateway's own `close_notify`
/// (opened with the app's TLS keys), as it came, to the end.
async fn switch_both_ways(app: AppStream, bare: Vec<u8>) -> Result<Vec<u8>, String> {
    let (tcp, mut conn) = app.into_inner();
    conn.send_close_notify();
    let mut wire = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut wire).unwrap();
    }
    wire.extend_from_slice(&bare);
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&wire).await.unwrap();
        wr.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await.unwrap().unwrap();
    writer.await.unwrap();
    let len = 5 + u16::from_be_bytes([got[3], got[4]]) as usize;
    conn.read_tls(&mut &got[..len]).unwrap();
    conn.process_new_packets().map_err(|e| e.to_string())?;
    let mut plain = Vec::new();
    match std::io::Read::read_to_end(&mut conn.reader(), &mut plain) {
        Ok(0) => Ok(got[len..].to_vec()),
        other => Err(format!("not a close_notify: {other:?}, {plain:?}")),
    }
}

/// Both apps switch after a sealed exchange; what each receives after the
/// gateway's `close_notify`, and how the relay ended.
async fn both_switch(bare: bool, up: &[u8], down: &[u8]) -> (Vec<u8>, Vec<u8>, RelayEnd) {
    let secrets = Arc::new(HandshakeSecrets::default());
    let ((mut a, a_gw), (mut b, b_gw)) = two_legs(&[&rustls::version::TLS13], Some(secrets.clone())).await;
    let relay = spawn_relay_bare(a_gw, b_gw, secrets, Default::default(), bare);
    // Sealed records go as before, both ways.
    one_way(&mut a, &mut b, b"sealed, before").await;
    one_way(&mut b, &mut a, b"sealed, back").await;
    let (at_a, at_b) = tokio::join!(switch_both_ways(a, up.to_vec()), switch_both_ways(b, down.to_vec()));
    let end = tokio::time::timeout(Duration::from_secs(10), relay).await.unwrap().unwrap();
    (at_b.unwrap(), at_a.unwrap(), end)
}

#[tokio::test]
async fn with_bare_records_what_follows_each_close_notify_is_passed_on_as_it_came() {
    // Bytes that are no TLS record the gateway could open.
    let (up, down) = (data(300_000), data(70_001).into_iter().rev().collect::<Vec<u8>>());
    let (got_up, got_down, end) = both_switch(true, &up, &down).await;
    assert!(got_up == up, "up: {} bytes came of {}", got_up.len(), up.len());
    assert!(got_down == down, "down: {} bytes came of {}", got_down.len(), down.len());
    let (n_up, n_down) = (14 + up.len() as u64, 12 + down.len() as u64);
    assert!(matches!(end, RelayEnd::Done(u, d) if u == n_up && d == n_down), "{end:?}");
}

#[tokio::test]
async fn without_bare_records_nothing_after_a_close_notify_is_passed_on() {
    let (got_up, got_down, end) = both_switch(false, &data(5000), &data(6000)).await;
    assert!(got_up.is_empty() && got_down.is_empty(), "{} and {} bytes passed", got_up.len(), got_down.len());
    assert!(matches!(end, RelayEnd::Done(14, 12)), "{end:?}");
}

fn data(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

async fn relayed_both_ways(versions: &[&'static SupportedProtocolVersion]) {
    let secrets = Arc::new(HandshakeSecrets::default());
    let ((mut a, mut a_gw), (mut b, b_gw)) = two_legs(versions, Some(secrets.clone())).await;
    // The client's first record came before the relay took the leg: one
    // byte is read the old way, the rest waits inside rustls.
    a.write_all(b"early bytes").await.unwrap();
    a.flush().await.unwrap();
    let mut first = [0u8; 1];
    a_gw.read_exact(&mut first).await.unwrap();
    let (all, one) = (Arc::new(Traffic::default()), Arc::new(Traffic::default()));
    let relay = spawn_relay(a_gw, b_gw, secrets.clone(), (all.clone(), one));
    let up = data(3_000_000);
    let sent = up.clone();
    let writer = tokio::spawn(async move {
        a.write_all(&sent).await.unwrap();
        a.shutdown().await.unwrap();
        let mut back = Vec::new();
        a.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(&got[..10], b"arly bytes");
    assert!(got[10..] == up[..], "every byte, in order");
    b.write_all(b"pong").await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(writer.await.unwrap(), b"pong");
    let end = tokio::time::timeout(Duration::from_secs(10), relay).await.unwrap().unwrap();
    assert!(matches!(end, RelayEnd::Done(n, 4) if n == 10 + up.len() as u64), "{end:?}");
    let counted = all.client_to_server.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, 10 + up.len() as u64);
    if versions == [&rustls::version::TLS13] {
        assert_eq!(secrets.len(), 0, "the relay took both legs' secrets");
    }
}

#[tokio::test]
async fn tls13_legs_are_relayed_record_by_record_with_half_close() {
    relayed_both_ways(&[&rustls::version::TLS13]).await;
}

#[tokio::test]
async fn tls12_legs_still_go_through_rustls() {
    relayed_both_ways(&[&rustls::version::TLS12]).await;
}

/// What the other app sees of a relay that ended on a bad record: the end,
/// and none of the bad record's bytes.
async fn ended(relay: tokio::task::JoinHandle<RelayEnd>, b: &mut AppStream) -> String {
    let end = tokio::time::timeout(Duration::from_secs(10), relay).await.unwrap().unwrap();
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), b.read_to_end(&mut rest)).await.unwrap();
    assert!(r.is_err() || rest.is_empty(), "nothing of a refused record reaches the other app: {rest:?}");
    match end {
        RelayEnd::Error(e) => e.to_string(),
        other => panic!("the relay went on: {other:?}"),
    }
}

#[tokio::test]
async fn a_forged_record_ends_the_tunnel() {
    // A stranger on the path writes a record of its own into the client's leg.
    let ((mut a, a_gw), (mut b, b_gw)) = two_legs(&[&rustls::version::TLS13], None).await;
    let relay = spawn_relay(a_gw, b_gw, Default::default(), Default::default());
    let mut forged = vec![23, 3, 3, 0, 40];
    forged.extend(data(40));
    a.get_mut().0.write_all(&forged).await.unwrap();
    assert!(ended(relay, &mut b).await.contains("failed authentication"));
}

/// `a` writes `what` and `b` reads it.
async fn one_way(a: &mut AppStream, b: &mut AppStream, what: &[u8]) {
    a.write_all(what).await.unwrap();
    a.flush().await.unwrap();
    let mut got = vec![0u8; what.len()];
    tokio::time::timeout(Duration::from_secs(10), b.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, what);
}

#[tokio::test]
async fn key_updates_either_way_are_followed_and_answered() {
    // rustls asks for the gateway's update when it updates its own (as it
    // does by itself near 2^24 records); both ends update, data goes on.
    let secrets = Arc::new(HandshakeSecrets::default());
    let ((mut a, a_gw), (mut b, b_gw)) = two_legs(&[&rustls::version::TLS13], Some(secrets.clone())).await;
    let relay = spawn_relay(a_gw, b_gw, secrets, Default::default());
    one_way(&mut a, &mut b, b"before").await;
    for round in 0..3 {
        a.get_mut().1.refresh_traffic_keys().unwrap();
        one_way(&mut a, &mut b, format!("client updated {round}").as_bytes()).await;
        // The gateway answered with its own update toward the client.
        one_way(&mut b, &mut a, format!("to the updated client {round}").as_bytes()).await;
        b.get_mut().1.refresh_traffic_keys().unwrap();
        one_way(&mut b, &mut a, format!("server updated {round}").as_bytes()).await;
        one_way(&mut a, &mut b, format!("to the updated server {round}").as_bytes()).await;
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), relay).await.unwrap().unwrap();
    assert!(matches!(end, RelayEnd::Done(..)), "{end:?}");
}

#[tokio::test]
async fn without_the_kept_secrets_a_key_update_ends_the_tunnel_and_says_why() {
    let ((mut a, a_gw), (mut b, b_gw)) = two_legs(&[&rustls::version::TLS13], None).await;
    let relay = spawn_relay(a_gw, b_gw, Default::default(), Default::default());
    one_way(&mut a, &mut b, b"before").await;
    a.get_mut().1.refresh_traffic_keys().unwrap();
    a.write_all(b"after").await.unwrap();
    a.flush().await.unwrap();
    assert!(ended(relay, &mut b).await.contains("updated its TLS keys"));
}

#[tokio::test]
async fn a_leg_closed_without_close_notify_ends_the_tunnel() {
    let ((mut a, a_gw), (mut b, b_gw)) = two_legs(&[&rustls::version::TLS13], None).await;
    let relay = spawn_relay(a_gw, b_gw, Default::default(), Default::default());
    // One byte back, so the app has read all the gateway sent and its
    // socket closes with a FIN, not a reset.
    b.write_all(b"y").await.unwrap();
    b.flush().await.unwrap();
    a.read_exact(&mut [0u8; 1]).await.unwrap();
    drop(a);
    let why = ended(relay, &mut b).await;
    assert!(why.contains("without a TLS close_notify"), "{why}");
}
