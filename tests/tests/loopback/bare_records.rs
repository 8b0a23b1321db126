//! Bare records through a real gateway: after the login each app's leg
//! carries the end-to-end records bare (`GateToTunnel::Paired {
//! bare_records }`) and the gateway passes them on as they came.
//!
//! A tap on a leg is a stranger on the network path: it sees every TCP byte
//! and may change, add or drop any, but holds no key. It records what
//! crosses and attacks the first bare record the home PC sends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thin_e2e::*;
use thin_tunnel::client_agent::ClientError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAD: usize = thin_tunnel::inplace::BARE_PAD;

/// Whether the content of a TLS-shaped record is a bare record: an
/// end-to-end record (a 4-byte length, then that many bytes), then `PAD`
/// zero bytes. A sealed TLS record ends in 17 bytes of ciphertext and tag,
/// all zero with odds of 2^-136.
fn is_bare(content: &[u8]) -> bool {
    content.len() >= 4 + 16 + PAD
        && u32::from_be_bytes(content[..4].try_into().unwrap()) as usize == content.len() - 4 - PAD
        && content[content.len() - PAD..].iter().all(|&b| b == 0)
}

/// The bare records in a recorded stream of TLS-shaped records, whole.
fn bare_records(wire: &[u8]) -> Vec<&[u8]> {
    let (mut at, mut out) = (0, Vec::new());
    while at + 5 <= wire.len() {
        let end = at + 5 + u16::from_be_bytes([wire[at + 3], wire[at + 4]]) as usize;
        if end > wire.len() {
            break;
        }
        if wire[at] == 23 && is_bare(&wire[at + 5..end]) {
            out.push(&wire[at..end]);
        }
        at = end;
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Attack {
    None,
    /// Flip one bit of the end-to-end ciphertext.
    Flip,
    /// Make a byte of the padding non-zero.
    Pad,
    /// Put a bare record of the attacker's before it.
    Inject,
}

/// What crossed a tap one way, per connection.
type Wire = Arc<Mutex<Vec<Vec<u8>>>>;

/// The bare records of every connection of `w`, in order.
fn bare_of(w: &Wire) -> Vec<Vec<u8>> {
    w.lock().unwrap().iter().flat_map(|c| bare_records(c).into_iter().map(<[u8]>::to_vec)).collect()
}

/// A tap in front of `upstream`; `up` and `down` are what crossed it.
struct Tap {
    addr: SocketAddr,
    up: Wire,
    down: Wire,
}

/// Starts a tap in front of `upstream` that attacks the first bare record
/// each connection sends up (`up` keeps what the app sent).
async fn tap(upstream: SocketAddr, attack: Attack) -> Tap {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (up, down) = (Wire::default(), Wire::default());
    let (u, d) = (up.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((from, _)) = l.accept().await {
            let Ok(to) = TcpStream::connect(upstream).await else { continue };
            let ((mut fr, mut fw), (mut tr, mut tw)) = (from.into_split(), to.into_split());
            let i = {
                let (mut u, mut d) = (u.lock().unwrap(), d.lock().unwrap());
                u.push(Vec::new());
                d.push(Vec::new());
                u.len() - 1
            };
            let d = d.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = tr.read(&mut buf).await {
                    d.lock().unwrap()[i].extend_from_slice(&buf[..n]);
                    if fw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = fw.shutdown().await;
            });
            let u = u.clone();
            tokio::spawn(async move {
                // An app sends nothing but TLS-shaped records: the handshake,
                // sealed records, bare ones.
                let mut done = attack == Attack::None;
                loop {
                    let mut rec = vec![0u8; 5];
                    if fr.read_exact(&mut rec).await.is_err() {
                        break;
                    }
                    rec.resize(5 + u16::from_be_bytes([rec[3], rec[4]]) as usize, 0);
                    if fr.read_exact(&mut rec[5..]).await.is_err() {
                        break;
                    }
                    // What the app sent, before any attack.
                    u.lock().unwrap()[i].extend_from_slice(&rec);
                    if !done && rec[0] == 23 && is_bare(&rec[5..]) {
                        done = true;
                        match attack {
                            Attack::Flip => rec[5 + 4 + 2] ^= 0x01,
                            Attack::Pad => *rec.last_mut().unwrap() = 1,
                            Attack::Inject => {
                                let mut forged = vec![23, 3, 3, 0, (4 + 80 + PAD) as u8];
                                forged.extend(80u32.to_be_bytes());
                                forged.extend((0..80).map(|_| rand::random::<u8>()));
                                forged.extend([0u8; PAD]);
                                forged.extend(rec);
                                rec = forged;
                            }
                            Attack::None => {}
                        }
                    }
                    if tw.write_all(&rec).await.is_err() {
                        break;
                    }
                }
                let _ = tw.shutdown().await;
            });
        }
    });
    Tap { addr, up, down }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_login_the_gateway_passes_the_end_to_end_records_on_as_they_came() {
    let gw = TestGateway::start().await;
    let (target, _) = net::echo_server_counting().await;
    let office = tap(gw.addr, Attack::None).await;
    let _pc = gw.office_pc("bare-desk", "pw").via(gw.dir.link(office.addr)).target(target).await;
    let home = tap(gw.addr, Attack::None).await;
    let t = connect(&gw.dir.link(home.addr), "bare-desk", "pw").await;

    // A megabyte there and back.
    let data = pattern(1 << 20);
    let st = t.open_stream().await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(st);
    let sent = data.clone();
    let writer = tokio::spawn(async move { wr.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(30), rd.read_exact(&mut back)).await.unwrap().unwrap();
    writer.await.unwrap();
    assert!(back == data, "every byte came back");
    drop((rd, t));

    // Each leg carried the data in bare records, and what the home PC sent
    // reached the office PC byte for byte, and back: the gateway opened and
    // sealed nothing. (The office PC's control connection crosses its tap
    // too, sealed.)
    let legs = || {
        let (hu, hd) = (bare_of(&home.up), bare_of(&home.down));
        let same = hu == bare_of(&office.down) && hd == bare_of(&office.up);
        async move { same.then_some((hu, hd)) }
    };
    let (hu, hd) = wait_for("both legs to carry the same bare records", Duration::from_secs(10), legs).await;
    let carried = |w: &[Vec<u8>]| w.iter().map(|r| r.len() - 5 - 4 - 16 - PAD).sum::<usize>();
    assert!(carried(&hu) >= data.len(), "up: {} bytes in bare records", carried(&hu));
    assert!(carried(&hd) >= data.len(), "down: {} bytes in bare records", carried(&hd));
    for w in [&home.up, &home.down, &office.up, &office.down] {
        for c in w.lock().unwrap().iter() {
            assert!(!c.windows(64).any(|s| s == &data[4096..4160]), "plaintext crossed a leg");
        }
    }
    gw.shutdown().await;
}

/// A stranger on the path who changes a bare record, or adds one, gets the
/// tunnel closed (the end-to-end keys catch it at the office PC), and the
/// target sees no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_padded_or_added_bare_record_fails_closed_and_the_target_sees_nothing() {
    let gw = TestGateway::start().await;
    let (target, accepted) = net::echo_server_counting().await;
    let _pc = gw.office_pc("bare-attacked", "pw").target(target).await;
    for attack in [Attack::Flip, Attack::Pad, Attack::Inject] {
        let home = tap(gw.addr, attack).await;
        match try_connect(&gw.dir.link(home.addr), "bare-attacked", "pw").await {
            Ok(t) => assert!(!echo_works(&t).await, "{attack:?}: the tunnel carried data after the attack"),
            Err(ClientError::Refused(m)) if m.starts_with("the office PC's check failed") => {}
            Err(e) => panic!("{attack:?}: the login itself failed: {e}"),
        }
        assert!(!bare_of(&home.up).is_empty(), "{attack:?}: no bare record was sent");
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "{attack:?} reached the target");
    }
    // Untouched, the same path works.
    let home = tap(gw.addr, Attack::None).await;
    let t = connect(&gw.dir.link(home.addr), "bare-attacked", "pw").await;
    assert!(echo_works(&t).await);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    gw.shutdown().await;
}
