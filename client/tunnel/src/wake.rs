//! Wake-on-LAN: an office PC wakes another office PC on its LAN for a user
//! logged in to it.
//!
//! The user's thinclient logs in to the office PC named with `--via` (its
//! password, and its one-time password when set: a stranger gets no further)
//! and opens a stream of kind [`KIND_WAKE`] naming the target. That office
//! PC asks the gateway for the target's MAC addresses over its control
//! session ([`ServerToGate::Wake`]); the gateway answers only when both are in
//! one wake group, within its rate limits. The office PC then sends the magic
//! packet (6 x 0xFF, then the MAC 16 times: 102 bytes) to each address by UDP
//! broadcast on port 9, and tells the user how many it sent. It never sends
//! to a MAC address the gateway did not give it.
//!
//! Each office PC reports its own MAC addresses (ServerMask64 bit 128) when it
//! starts serving: on Linux the adapters in `/sys/class/net`, on Windows
//! those `getmac` lists, or `wol_macs` in `thinsvr.toml` instead.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thin_protocol::messages::ServerToGate;
use thin_protocol::policy::{format_mac, parse_mac};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::mux::MuxStream;

/// Stream kind: wake another office PC (see the module).
pub const KIND_WAKE: u8 = 3;

/// The UDP port of magic packets (discard).
pub const WOL_PORT: u16 = 9;

/// Tests only: where magic packets go instead of `255.255.255.255:9`
/// (`127.0.0.1:PORT`). Honoured only by debug builds, never by a release
/// build, so a shipped office PC cannot be pointed elsewhere.
pub const TEST_BROADCAST_ENV: &str = "THIN_TEST_WOL_BROADCAST";

/// How long an office PC waits for the gateway's answer to a wake request.
const GATE_WAIT: Duration = Duration::from_secs(15);

/// Longest line on a wake stream.
const MAX_LINE: u64 = 4096;

/// The magic packet that wakes `mac`.
pub fn magic_packet(mac: &[u8; 6]) -> [u8; 102] {
    let mut p = [0xffu8; 102];
    for chunk in p[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(mac);
    }
    p
}

/// Where magic packets go: the limited broadcast address, port 9.
pub fn broadcast_target() -> SocketAddr {
    #[cfg(debug_assertions)]
    if let Some(a) = std::env::var(TEST_BROADCAST_ENV).ok().and_then(|v| v.parse().ok()) {
        return a;
    }
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, WOL_PORT))
}

/// Sends the magic packet for every address of `macs` (already checked by
/// the gateway; checked again here); returns how many went out.
pub async fn send_magic(macs: &[String]) -> std::io::Result<usize> {
    let to = broadcast_target();
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    sock.set_broadcast(true)?;
    let mut sent = 0;
    for m in macs.iter().take(16) {
        let Ok(mac) = parse_mac(m) else { continue };
        sock.send_to(&magic_packet(&mac), to).await?;
        sent += 1;
    }
    Ok(sent)
}

/// This computer's MAC addresses to report: `configured` when set, else the
/// adapters the system lists (at most 16).
pub fn local_macs(configured: &[String]) -> Vec<String> {
    let found = if configured.is_empty() { system_macs() } else { configured.to_vec() };
    let mut out: Vec<String> = Vec::new();
    for m in found {
        if let Ok(mac) = parse_mac(m.trim()) {
            let text = format_mac(&mac);
            if !out.contains(&text) && out.len() < 16 {
                out.push(text);
            }
        }
    }
    out
}

#[cfg(not(windows))]
fn system_macs() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return Vec::new() };
    let mut names: Vec<_> = dir.flatten().map(|e| e.path()).collect();
    names.sort();
    names
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "lo"))
        .filter_map(|p| std::fs::read_to_string(p.join("address")).ok())
        .collect()
}

#[cfg(windows)]
fn system_macs() -> Vec<String> {
    use std::os::windows::process::CommandExt;
    /// No console window flashes up for the tool (CREATE_NO_WINDOW).
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    let mut cmd = std::process::Command::new("getmac");
    let out = cmd.args(["/fo", "csv", "/nh"]).creation_flags(CREATE_NO_WINDOW).output();
    out.map(|o| getmac_csv(&String::from_utf8_lossy(&o.stdout))).unwrap_or_default()
}

/// The first column of `getmac /fo csv /nh` lines (`"00-11-22-33-44-55","\Device\..."`).
#[cfg_attr(not(windows), allow(dead_code))]
fn getmac_csv(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.split(',').next()).map(|c| c.trim().trim_matches('"').to_string()).collect()
}

/// A wake request from a tunnel to the control session.
#[derive(Debug)]
pub struct WakeRequest {
    pcid: String,
    reply: oneshot::Sender<Result<Vec<String>, String>>,
}

/// Hands wake requests to whichever control session is up.
#[derive(Clone, Debug)]
pub struct Waker {
    tx: mpsc::Sender<WakeRequest>,
}

impl Waker {
    /// A waker and the receiving end the control sessions read.
    pub fn channel() -> (Waker, mpsc::Receiver<WakeRequest>) {
        let (tx, rx) = mpsc::channel(8);
        (Waker { tx }, rx)
    }

    /// Asks the gateway for `pcid`'s MAC addresses; the refusal as its text.
    pub async fn macs_of(&self, pcid: &str) -> Result<Vec<String>, String> {
        let (reply, answer) = oneshot::channel();
        let offline = || "this office PC is not connected to the gateway now; try again in a moment".to_string();
        self.tx.try_send(WakeRequest { pcid: pcid.to_string(), reply }).map_err(|_| offline())?;
        match tokio::time::timeout(GATE_WAIT, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(offline()),
            Err(_) => Err("the gateway did not answer the wake request in time".into()),
        }
    }
}

/// Wake requests sent on one control session and not answered yet.
#[derive(Default)]
pub struct WakesInFlight {
    next: u64,
    waiting: HashMap<u64, oneshot::Sender<Result<Vec<String>, String>>>,
}

impl WakesInFlight {
    /// The `Wake` frame for `req`, or `None` when its requester gave up.
    pub fn start(&mut self, req: WakeRequest) -> Option<ServerToGate> {
        if req.reply.is_closed() {
            return None;
        }
        self.next += 1;
        self.waiting.insert(self.next, req.reply);
        Some(ServerToGate::Wake { request_id: self.next, pcid: req.pcid })
    }

    /// Delivers the gateway's answer.
    pub fn finish(&mut self, request_id: u64, macs: Vec<String>, error: Option<String>) {
        if let Some(reply) = self.waiting.remove(&request_id) {
            let _ = reply.send(error.map_or(Ok(macs), Err));
        }
    }
}

/// The office PC's answer on a wake stream (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeReply {
    /// Magic packets sent.
    pub sent: u32,
    /// `None`: sent; otherwise why not.
    pub error: Option<String>,
}

/// Office PC: serves one wake stream (the user is logged in to this PC).
pub async fn serve_stream(st: MuxStream, waker: &Waker) {
    let mut rd = BufReader::new(st);
    let mut line = String::new();
    let mut limited = (&mut rd).take(MAX_LINE);
    let read = limited.read_line(&mut line);
    if !matches!(tokio::time::timeout(Duration::from_secs(30), read).await, Ok(Ok(n)) if n > 0) {
        return;
    }
    let target = line.trim();
    let reply = match waker.macs_of(target).await {
        Ok(macs) => match send_magic(&macs).await {
            Ok(n) => {
                info!(%target, packets = n, "magic packets sent");
                WakeReply { sent: n as u32, error: None }
            }
            Err(e) => WakeReply { sent: 0, error: Some(format!("this office PC could not send the packet: {e}")) },
        },
        Err(why) => {
            warn!(%target, "wake refused: {why}");
            WakeReply { sent: 0, error: Some(why) }
        }
    };
    let mut st = rd.into_inner();
    let mut out = serde_json::to_vec(&reply).expect("a reply serializes");
    out.push(b'\n');
    let _ = st.write_all(&out).await;
    let _ = st.flush().await;
    let _ = st.shutdown().await;
}

/// Home PC: asks, over an open stream of kind [`KIND_WAKE`], to wake `target`.
pub async fn ask(st: MuxStream, target: &str) -> Result<WakeReply, String> {
    let mut rd = BufReader::new(st);
    rd.get_mut().write_all(format!("{target}\n").as_bytes()).await.map_err(|e| e.to_string())?;
    rd.get_mut().flush().await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    let mut limited = (&mut rd).take(MAX_LINE);
    let read = limited.read_line(&mut line);
    match tokio::time::timeout(GATE_WAIT + Duration::from_secs(15), read).await {
        Ok(Ok(n)) if n > 0 => serde_json::from_str(line.trim()).map_err(|e| format!("a bad answer: {e}")),
        Ok(_) => Err("the office PC closed the request without an answer: update ThinServer there to one that \
                      can wake other PCs"
            .into()),
        Err(_) => Err("the office PC did not answer in time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_packet_is_six_ff_and_sixteen_macs() {
        let mac = [1, 2, 3, 4, 5, 6];
        let p = magic_packet(&mac);
        assert_eq!(p.len(), 102);
        assert_eq!(&p[..6], &[0xff; 6]);
        assert!(p[6..].chunks(6).all(|c| c == mac));
    }

    #[test]
    fn configured_addresses_win_and_bad_ones_are_dropped() {
        let conf = ["00:11:22:aa:bb:cc".to_string(), "nonsense".into(), "00-11-22-AA-BB-CC".into()];
        assert_eq!(local_macs(&conf), ["00-11-22-AA-BB-CC"]);
        let csv = "\"00-11-22-33-44-55\",\"\\Device\\Tcpip_{X}\"\r\n\"N/A\",\"Media disconnected\"\r\n";
        assert_eq!(getmac_csv(csv)[0], "00-11-22-33-44-55");
    }

    #[tokio::test]
    async fn answers_reach_their_requester_and_a_lost_session_fails_the_rest() {
        let (waker, mut rx) = Waker::channel();
        let w = waker.clone();
        let a = tokio::spawn(async move { w.macs_of("desk-02").await });
        let mut inflight = WakesInFlight::default();
        let Some(ServerToGate::Wake { request_id, pcid }) = inflight.start(rx.recv().await.unwrap()) else { panic!() };
        assert_eq!(pcid, "desk-02");
        inflight.finish(request_id, vec!["00-11-22-33-44-55".into()], None);
        assert_eq!(a.await.unwrap(), Ok(vec!["00-11-22-33-44-55".to_string()]));
        let b = tokio::spawn(async move { waker.macs_of("desk-03").await });
        let _ = inflight.start(rx.recv().await.unwrap());
        drop(inflight);
        assert!(b.await.unwrap().unwrap_err().contains("not connected"));
    }
}
