//! The built-in RDP server: IronRDP's acceptor does the connection sequence
//! over TLS (rustls, a certificate made when thinsvr starts, whose SHA-256
//! the viewer pins), the one-time password is checked before any pixel
//! leaves, then the screen's changed regions go out as bitmap updates and
//! the viewer's keys and mouse come back as input.
//!
//! One viewer at a time: a new session takes over from the one before (as
//! a Windows PC's own remote desktop does), so a viewer that vanished
//! without a goodbye never locks the desktop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironrdp_acceptor::{Acceptor, BeginResult, DesktopSize};
use ironrdp_core::{decode, WriteBuf};
use ironrdp_pdu::input::fast_path::{FastPathInput, FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;
use ironrdp_pdu::input::{InputEvent, InputEventPdu};
use ironrdp_pdu::mcs::{DisconnectReason, McsMessage};
use ironrdp_pdu::rdp::capability_sets::{self as caps, CapabilitySet, GeneralExtraFlags};
use ironrdp_pdu::rdp::headers::{ShareControlPdu, ShareDataPdu};
use ironrdp_pdu::x224::X224;
use ironrdp_pdu::Action;
use ironrdp_tokio::TokioFramed;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::clipboard::{Attached, Clip, ClipEvent};
use super::encode::Encoder;
use super::screen::{Button, Held, Input, Pixels, Screen, ScreenError};
use super::{DesktopInfo, USER};

/// How long the viewer may take to finish the connection sequence.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// How long the screen is watched for changes before input is looked at again.
const POLL: Duration = Duration::from_millis(8);

/// Why a desktop session ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The screen could not be opened or read.
    #[error(transparent)]
    Screen(#[from] ScreenError),
    /// The viewer did not speak RDP as expected.
    #[error("viewer: {0}")]
    Protocol(String),
    /// The viewer offered no TLS (plain RDP security is refused).
    #[error("the viewer offered no TLS; plain RDP security is not served")]
    NoTls,
    /// The viewer did not present this tunnel's one-time credentials.
    #[error("the viewer did not present this tunnel's one-time credentials")]
    Credentials,
    /// The connection sequence took too long.
    #[error("the viewer did not finish connecting in {} s", HANDSHAKE.as_secs())]
    Timeout,
    /// A newer session took over.
    #[error("another viewer took over the desktop")]
    TakenOver,
    /// The certificate could not be made.
    #[error("desktop certificate: {0}")]
    Certificate(String),
    /// The stream failed.
    #[error("desktop stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the office PC's screen (in the session's own thread).
pub type ScreenOpener = Arc<dyn Fn() -> Result<Box<dyn Screen>, ScreenError> + Send + Sync>;

/// The built-in desktop server of one thinsvr process.
pub struct DesktopServer {
    tls: tokio_rustls::TlsAcceptor,
    sha256: String,
    open: ScreenOpener,
    /// The session serving now (its number), which a new one cancels.
    current: Mutex<Option<(u64, CancellationToken)>>,
    sessions: std::sync::atomic::AtomicU64,
    /// Screen updates sent to viewers so far (the speed benchmark reads it).
    updates: std::sync::atomic::AtomicU64,
}

impl DesktopServer {
    /// A server for the screen `open` opens, with a new TLS certificate.
    pub fn new(open: ScreenOpener) -> Result<Self, DesktopError> {
        let ck = rcgen::generate_simple_self_signed(vec!["thinsvr-desktop".to_string()])
            .map_err(|e| DesktopError::Certificate(e.to_string()))?;
        let der = ck.cert.der().to_vec();
        let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &der));
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DesktopError::Certificate(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(der)], key)
            .map_err(|e| DesktopError::Certificate(e.to_string()))?;
        Ok(Self {
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            sha256,
            open,
            current: Mutex::new(None),
            sessions: Default::default(),
            updates: Default::default(),
        })
    }

    /// Screen updates (one batch of changed regions each) sent to viewers so far.
    pub fn updates_sent(&self) -> u64 {
        self.updates.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the home PC is told: the certificate's SHA-256, for the viewer to pin.
    pub fn info(&self) -> DesktopInfo {
        DesktopInfo::Builtin { sha256: self.sha256.clone() }
    }

    /// [`Self::serve`] in a thread of its own: IronRDP's connection
    /// sequence is not `Send`, so it runs on a single-threaded runtime.
    pub async fn serve_detached<S>(
        self: Arc<Self>,
        stream: S,
        password: String,
        clipboard: bool,
    ) -> Result<(), DesktopError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("desktop-session".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let r = match rt {
                Ok(rt) => rt.block_on(self.serve(stream, &password, clipboard)),
                Err(e) => Err(DesktopError::Io(e)),
            };
            let _ = tx.send(r);
        })?;
        rx.await.unwrap_or_else(|_| Err(DesktopError::Protocol("the desktop session's thread ended".into())))
    }

    /// Serves one viewer on `stream` (a tunnel stream) until it leaves;
    /// `password` is this tunnel's one-time password; `clipboard` whether
    /// the clipboard is shared (text, both ways).
    pub async fn serve<S>(&self, stream: S, password: &str, clipboard: bool) -> Result<(), DesktopError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let n = self.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mine = CancellationToken::new();
        let r = tokio::select! {
            r = self.session(stream, (password, clipboard), (n, &mine)) => r,
            _ = mine.cancelled() => Err(DesktopError::TakenOver),
        };
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|(m, _)| *m == n) {
            *cur = None;
        }
        r
    }

    /// Makes session `n` the one that serves, ending the one before. Only a
    /// viewer that presented the credentials gets here, so a stranger at the
    /// home PC's port cannot knock the employee's viewer off.
    fn take_over(&self, (n, mine): (u64, &CancellationToken)) {
        let before = self.current.lock().unwrap_or_else(|e| e.into_inner()).replace((n, mine.clone()));
        if let Some((_, before)) = before {
            before.cancel();
        }
    }

    async fn session<S>(
        &self,
        stream: S,
        (password, clipboard): (&str, bool),
        me: (u64, &CancellationToken),
    ) -> Result<(), DesktopError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let mut worker = ScreenWorker::start(self.open.clone(), clipboard).await?;
        let (mut width, mut height) = worker.size;
        let size = DesktopSize { width, height };
        let (framed, mut result, mut acceptor, attached) =
            tokio::time::timeout(HANDSHAKE, self.handshake(stream, size, clipboard))
                .await
                .map_err(|_| DesktopError::Timeout)??;
        let (inner, leftover) = framed.into_inner();
        let (r, w) = tokio::io::split(inner);
        let mut reader = TokioFramed::new_with_leftover(r, leftover);
        let mut writer = w;
        // Nothing of the screen leaves before the one-time credentials are checked.
        let presented = match &result.credentials {
            Some(c) => {
                c.username.as_bytes().ct_eq(USER.as_bytes()).unwrap_u8()
                    & c.password.as_bytes().ct_eq(password.as_bytes()).unwrap_u8()
                    == 1
            }
            None => false,
        };
        if !presented || result.auto_reconnect.is_some() {
            let mut buf = WriteBuf::new();
            if let Ok(n) = acceptor.encode_access_denied(&mut buf) {
                let _ = writer.write_all(&buf[..n]).await;
            }
            let _ = writer.shutdown().await;
            return Err(DesktopError::Credentials);
        }
        self.take_over(me);
        let mut clip = attached.and_then(|a| Clip::join(a, &mut result));
        info!(width, height, clipboard = clip.is_some(), "desktop session started");
        if let Some(note) = monitors_note(&result.client_monitors, (width, height)) {
            info!("{note}");
        }
        if let Some(c) = clip.as_mut() {
            writer.write_all(&c.start()?).await?;
        }
        let mut encoder = Encoder::new(max_update(&result));
        let mut out = Vec::new();
        let mut replies = Vec::new();
        let mut clip_ready = false;
        loop {
            replies.clear();
            for ev in &result.input_events {
                handle_frame(ev, &worker, (width, height), clip.as_mut(), &mut replies)?;
            }
            writer.write_all(&replies).await?;
            // Serves until the viewer leaves (`None`) or the screen's size changes.
            let resized = loop {
                tokio::select! {
                    pdu = reader.read_pdu() => {
                        let (action, frame) = pdu?;
                        match action {
                            Action::FastPath | Action::X224 => {
                                replies.clear();
                                let flow = handle_frame(&frame, &worker, (width, height), clip.as_mut(), &mut replies)?;
                                if flow == Flow::End {
                                    info!("the viewer left");
                                    break None;
                                }
                                writer.write_all(&replies).await?;
                                if let Some(c) = clip.as_mut() {
                                    clip_ready |= clipboard_events(c, &worker, &mut writer).await?;
                                }
                                writer.flush().await?;
                            }
                        }
                    }
                    _ = worker.clip_changed.notified(), if clip_ready => {
                        if let Some(c) = clip.as_mut() {
                            debug!("the office PC's clipboard changed: offering it to the viewer");
                            writer.write_all(&c.offer_text()?).await?;
                            writer.flush().await?;
                        }
                    }
                    frame = worker.updates.recv() => match frame {
                        Some(Ok(f)) if f.size != (width, height) => break Some(f.size),
                        Some(Ok(f)) => {
                            out.clear();
                            for px in f.parts.iter().filter_map(|p| cut_to(p, width, height)) {
                                encoder.encode(&px, &mut out).map_err(|e| DesktopError::Protocol(e.to_string()))?;
                            }
                            writer.write_all(&out).await?;
                            writer.flush().await?;
                            self.updates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(DesktopError::Screen(ScreenError::Io("the screen reader stopped".into()))),
                    },
                }
            };
            let Some((w, h)) = resized else { return Ok(()) };
            // The viewer follows the new size through a deactivation-reactivation
            // sequence: Deactivate All, then the capabilities again with the new size.
            info!(from = ?(width, height), to = ?(w, h), "the desktop size changed: reactivating the viewer");
            writer.write_all(&deactivate_all(&result)?).await?;
            writer.flush().await?;
            let (r, leftover) = reader.into_inner();
            let framed = TokioFramed::new_with_leftover(r.unsplit(writer), leftover);
            let size = DesktopSize { width: w, height: h };
            let mut next = Acceptor::new_deactivation_reactivation(acceptor, Default::default(), size)
                .map_err(|e| DesktopError::Protocol(e.to_string()))?;
            let (framed, again) = tokio::time::timeout(HANDSHAKE, ironrdp_acceptor::accept_finalize(framed, &mut next))
                .await
                .map_err(|_| DesktopError::Timeout)?
                .map_err(|e| DesktopError::Protocol(e.to_string()))?;
            let (inner, leftover) = framed.into_inner();
            let (r, w2) = tokio::io::split(inner);
            (reader, writer) = (TokioFramed::new_with_leftover(r, leftover), w2);
            (acceptor, result, width, height) = (next, again, w, h);
            encoder = Encoder::new(max_update(&result));
            worker.refresh();
        }
    }

    async fn handshake<S>(
        &self,
        stream: S,
        size: DesktopSize,
        clipboard: bool,
    ) -> Result<
        (TokioFramed<tokio_rustls::server::TlsStream<S>>, ironrdp_acceptor::AcceptorResult, Acceptor, Option<Attached>),
        DesktopError,
    >
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync,
    {
        let mut acceptor = Acceptor::new(ironrdp_pdu::nego::SecurityProtocol::SSL, size, capabilities(size), None);
        let attached = clipboard.then(|| super::clipboard::attach(&mut acceptor));
        let begin = ironrdp_acceptor::accept_begin(TokioFramed::new(stream), &mut acceptor)
            .await
            .map_err(|e| DesktopError::Protocol(e.to_string()))?;
        let stream = match begin {
            BeginResult::ShouldUpgrade(s) => s,
            BeginResult::Continue(_) => return Err(DesktopError::NoTls),
        };
        let tls = self.tls.accept(stream).await?;
        acceptor.mark_security_upgrade_as_done();
        let (framed, result) = ironrdp_acceptor::accept_finalize(TokioFramed::new(tls), &mut acceptor)
            .await
            .map_err(|e| DesktopError::Protocol(e.to_string()))?;
        Ok((framed, result, acceptor, attached))
    }
}

/// How long the office PC's clipboard may take to be read.
const CLIPBOARD_READ: Duration = Duration::from_secs(3);

/// Acts on what the viewer's clipboard messages asked; true once the channel
/// is up (from then on the office PC's copies are offered).
async fn clipboard_events<W: AsyncWrite + Unpin>(
    clip: &mut Clip,
    worker: &ScreenWorker,
    writer: &mut W,
) -> Result<bool, DesktopError> {
    let (mut ready, mut viewer_has_text) = (false, false);
    for ev in clip.take_events() {
        match ev {
            ClipEvent::Ready => ready = true,
            ClipEvent::Copied { text: true } => {
                viewer_has_text = true;
                writer.write_all(&clip.ask_text()?).await?;
            }
            ClipEvent::Copied { text: false } => debug!("the viewer's clipboard holds no text"),
            ClipEvent::Text(Some(text)) => {
                debug!(bytes = text.len(), "the viewer's copied text goes to the office PC's clipboard");
                worker.set_clipboard(text);
            }
            ClipEvent::Text(None) => debug!("the viewer gave no text"),
            ClipEvent::WantsText => {
                let text = worker.read_clipboard().await;
                debug!(bytes = text.as_ref().map(String::len), "the viewer pastes the office PC's clipboard");
                writer.write_all(&clip.give_text(text.as_deref())?).await?;
            }
            ClipEvent::WantsOther => writer.write_all(&clip.give_text(None)?).await?,
        }
    }
    // At the start the viewer's clipboard wins, as with Windows' own
    // remote desktop; with no text there, the office PC's is offered.
    if ready && !viewer_has_text && worker.read_clipboard().await.is_some_and(|t| !t.is_empty()) {
        writer.write_all(&clip.offer_text()?).await?;
    }
    Ok(ready)
}

/// What the log says when the viewer spans several monitors (`/multimon`):
/// the office PC's desktop (all of its own monitors, as one) is one screen,
/// shown in the viewer's window, not laid out on the viewer's monitors.
fn monitors_note(monitors: &[ironrdp_pdu::gcc::Monitor], (width, height): (u16, u16)) -> Option<String> {
    (monitors.len() > 1).then(|| {
        format!(
            "the viewer has {} monitors; the built-in desktop is one screen of {width}x{height} (every monitor of \
             the office PC side by side), shown in the viewer's window rather than spread over the viewer's monitors",
            monitors.len()
        )
    })
}

/// The largest fast-path update the viewer takes (0: no limit given).
fn max_update(result: &ironrdp_acceptor::AcceptorResult) -> usize {
    result
        .capabilities
        .iter()
        .find_map(|c| match c {
            CapabilitySet::MultiFragmentUpdate(m) => Some(m.max_request_size as usize),
            _ => None,
        })
        .unwrap_or(0)
}

/// The Deactivate All PDU that starts a deactivation-reactivation sequence.
fn deactivate_all(result: &ironrdp_acceptor::AcceptorResult) -> Result<Vec<u8>, DesktopError> {
    use ironrdp_pdu::mcs::SendDataIndication;
    use ironrdp_pdu::rdp::headers::{ServerDeactivateAll, ShareControlHeader};
    let bad = |e: ironrdp_core::EncodeError| DesktopError::Protocol(e.to_string());
    let control = ShareControlHeader {
        share_id: 0,
        pdu_source: result.io_channel_id,
        share_control_pdu: ShareControlPdu::ServerDeactivateAll(ServerDeactivateAll),
    };
    let user_data = ironrdp_core::encode_vec(&control).map_err(bad)?.into();
    let pdu = SendDataIndication { initiator_id: result.user_channel_id, channel_id: result.io_channel_id, user_data };
    ironrdp_core::encode_vec(&X224(pdu)).map_err(bad)
}

/// The server's capabilities: 32-bit bitmaps of the screen's size, fast-path
/// input and output, scan codes and Unicode keys.
fn capabilities(size: DesktopSize) -> Vec<CapabilitySet> {
    vec![
        CapabilitySet::General(caps::General {
            extra_flags: GeneralExtraFlags::FASTPATH_OUTPUT_SUPPORTED,
            refresh_rect_support: true,
            suppress_output_support: false,
            ..Default::default()
        }),
        CapabilitySet::Bitmap(caps::Bitmap {
            pref_bits_per_pix: 32,
            desktop_width: size.width,
            desktop_height: size.height,
            // The viewer follows a size change (deactivation-reactivation); with
            // the flag off FreeRDP keeps its window at the first size.
            desktop_resize_flag: true,
            drawing_flags: caps::BitmapDrawingFlags::empty(),
        }),
        CapabilitySet::Order(caps::Order::new(caps::OrderFlags::empty(), caps::OrderSupportExFlags::empty(), 0, 0)),
        CapabilitySet::Pointer(caps::Pointer { color_pointer_cache_size: 0, pointer_cache_size: 0 }),
        CapabilitySet::Input(caps::Input {
            input_flags: caps::InputFlags::SCANCODES
                | caps::InputFlags::MOUSEX
                | caps::InputFlags::FASTPATH_INPUT
                | caps::InputFlags::UNICODE
                | caps::InputFlags::FASTPATH_INPUT_2,
            keyboard_layout: 0,
            keyboard_type: None,
            keyboard_subtype: 0,
            keyboard_function_key: 12,
            keyboard_ime_filename: String::new(),
        }),
        CapabilitySet::VirtualChannel(caps::VirtualChannel {
            flags: caps::VirtualChannelFlags::NO_COMPRESSION,
            chunk_size: None,
        }),
        CapabilitySet::MultiFragmentUpdate(caps::MultifragmentUpdate { max_request_size: 1024 * 1024 }),
    ]
}

/// `px` cut to the negotiated desktop (a screen that grew is not sent past it).
fn cut_to(px: &Pixels, width: u16, height: u16) -> Option<Pixels> {
    let r = px.rect;
    if r.x >= width || r.y >= height {
        return None;
    }
    let w = r.width.min(width - r.x);
    let h = r.height.min(height - r.y);
    if w == r.width && h == r.height {
        return Some(px.clone());
    }
    let mut data = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
    for y in 0..usize::from(h) {
        data.extend_from_slice(&px.data[y * px.stride..y * px.stride + usize::from(w) * 4]);
    }
    Some(Pixels { rect: super::screen::Rect { x: r.x, y: r.y, width: w, height: h }, stride: usize::from(w) * 4, data })
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    End,
}

/// One PDU from the viewer: input goes to the screen; a refresh request
/// repaints; a goodbye ends the session.
/// Replies (the clipboard channel's) go to `replies`.
fn handle_frame(
    frame: &[u8],
    worker: &ScreenWorker,
    size: (u16, u16),
    clip: Option<&mut Clip>,
    replies: &mut Vec<u8>,
) -> Result<Flow, DesktopError> {
    let bad = |e: ironrdp_core::DecodeError| DesktopError::Protocol(e.to_string());
    match Action::from_fp_output_header(*frame.first().unwrap_or(&0)) {
        Ok(Action::FastPath) => {
            let input: FastPathInput = decode(frame).map_err(bad)?;
            for ev in input.input_events() {
                for i in fast_path_input(ev, size) {
                    worker.input(i);
                }
            }
        }
        Ok(Action::X224) => {
            let msg: X224<McsMessage<'_>> = decode(frame).map_err(bad)?;
            match msg.0 {
                McsMessage::SendDataRequest(data) => {
                    if let Some(c) = clip.filter(|c| c.is_mine(data.channel_id)) {
                        replies.extend_from_slice(&c.process(data.user_data.as_ref())?);
                        return Ok(Flow::Go);
                    }
                    let Ok(control) = decode::<ironrdp_pdu::rdp::headers::ShareControlHeader>(data.user_data.as_ref())
                    else {
                        debug!(channel = data.channel_id, "data on a channel the server does not serve");
                        return Ok(Flow::Go);
                    };
                    if let ShareControlPdu::Data(header) = control.share_control_pdu {
                        match header.share_data_pdu {
                            ShareDataPdu::Input(InputEventPdu(events)) => {
                                for ev in events {
                                    for i in slow_path_input(&ev, size) {
                                        worker.input(i);
                                    }
                                }
                            }
                            ShareDataPdu::RefreshRectangle(_) => worker.refresh(),
                            ShareDataPdu::ShutdownRequest => return Ok(Flow::End),
                            other => debug!(pdu = ironrdp_core::name(&other), "share data ignored"),
                        }
                    }
                }
                McsMessage::DisconnectProviderUltimatum(d) => {
                    debug!(user = d.reason == DisconnectReason::UserRequested, "the viewer disconnected");
                    return Ok(Flow::End);
                }
                _ => debug!("MCS message ignored"),
            }
        }
        Err(bits) => return Err(DesktopError::Protocol(format!("unknown PDU action {bits}"))),
    }
    Ok(Flow::Go)
}

fn clamp(x: u16, y: u16, (w, h): (u16, u16)) -> (u16, u16) {
    (x.min(w.saturating_sub(1)), y.min(h.saturating_sub(1)))
}

fn mouse(flags: PointerFlags, wheel: i16, x: u16, y: u16, size: (u16, u16)) -> Vec<Input> {
    let (x, y) = clamp(x, y, size);
    if flags.contains(PointerFlags::VERTICAL_WHEEL) {
        return vec![Input::Wheel { delta: wheel }];
    }
    let down = flags.contains(PointerFlags::DOWN);
    let button = if flags.contains(PointerFlags::LEFT_BUTTON) {
        Some(Button::Left)
    } else if flags.contains(PointerFlags::RIGHT_BUTTON) {
        Some(Button::Right)
    } else if flags.contains(PointerFlags::MIDDLE_BUTTON_OR_WHEEL) {
        Some(Button::Middle)
    } else {
        None
    };
    match button {
        Some(button) => vec![Input::Button { button, down, x, y }],
        None => vec![Input::Move { x, y }],
    }
}

fn fast_path_input(ev: &FastPathInputEvent, size: (u16, u16)) -> Vec<Input> {
    match *ev {
        FastPathInputEvent::KeyboardEvent(flags, code) => vec![Input::Key {
            code,
            extended: flags.contains(KeyboardFlags::EXTENDED),
            down: !flags.contains(KeyboardFlags::RELEASE),
        }],
        FastPathInputEvent::UnicodeKeyboardEvent(flags, ch) => {
            vec![Input::Unicode { ch, down: !flags.contains(KeyboardFlags::RELEASE) }]
        }
        FastPathInputEvent::MouseEvent(m) => {
            mouse(m.flags, m.number_of_wheel_rotation_units, m.x_position, m.y_position, size)
        }
        FastPathInputEvent::MouseEventEx(m) => {
            let (x, y) = clamp(m.x_position, m.y_position, size);
            vec![Input::Move { x, y }]
        }
        FastPathInputEvent::MouseEventRel(_) | FastPathInputEvent::QoeEvent(_) | FastPathInputEvent::SyncEvent(_) => {
            Vec::new()
        }
    }
}

fn slow_path_input(ev: &InputEvent, size: (u16, u16)) -> Vec<Input> {
    use ironrdp_pdu::input::{scan_code, unicode};
    match ev {
        InputEvent::ScanCode(k) => vec![Input::Key {
            code: k.key_code as u8,
            extended: k.flags.contains(scan_code::KeyboardFlags::EXTENDED),
            down: !k.flags.contains(scan_code::KeyboardFlags::RELEASE),
        }],
        InputEvent::Unicode(k) => {
            vec![Input::Unicode { ch: k.unicode_code, down: !k.flags.contains(unicode::KeyboardFlags::RELEASE) }]
        }
        InputEvent::Mouse(m) => mouse(m.flags, m.number_of_wheel_rotation_units, m.x_position, m.y_position, size),
        InputEvent::MouseX(m) => {
            let (x, y) = clamp(m.x_position, m.y_position, size);
            vec![Input::Move { x, y }]
        }
        _ => Vec::new(),
    }
}

/// What the session asks of the screen's thread.
enum ToScreen {
    Input(Input),
    Refresh,
    SetClipboard(String),
    ReadClipboard(tokio::sync::oneshot::Sender<Option<String>>),
}

/// Changed parts of the screen, and the screen's size after them.
struct Frame {
    size: (u16, u16),
    parts: Vec<Pixels>,
}

/// The screen, read and driven in a thread of its own (its calls block).
struct ScreenWorker {
    size: (u16, u16),
    /// Another app on the office PC put something on the clipboard.
    clip_changed: Arc<tokio::sync::Notify>,
    commands: std::sync::mpsc::SyncSender<ToScreen>,
    updates: tokio::sync::mpsc::Receiver<Result<Frame, ScreenError>>,
}

impl ScreenWorker {
    /// Opens the screen in its own thread; with `clipboard`, the clipboard
    /// is watched for changes.
    async fn start(open: ScreenOpener, clipboard: bool) -> Result<Self, ScreenError> {
        let clip_changed = Arc::new(tokio::sync::Notify::new());
        let changed = clip_changed.clone();
        let (commands, inbox) = std::sync::mpsc::sync_channel::<ToScreen>(1024);
        // Two frames in flight at most: a slow viewer makes the screen's
        // changes pile up in the display server, where they merge.
        let (tx, updates) = tokio::sync::mpsc::channel(2);
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("desktop-screen".into())
            .spawn(move || {
                let mut screen = match open() {
                    Ok(s) => s,
                    Err(e) => return drop(ready_tx.send(Err(e))),
                };
                let _ = ready_tx.send(Ok(screen.size()));
                let mut refresh = true;
                let mut held = Held::default();
                // Whatever way the session ends, the office PC is left with
                // no key or button held.
                let release = |screen: &mut Box<dyn Screen>, held: &mut Held| {
                    let left = held.release_all();
                    if !left.is_empty() {
                        info!(?left, "the viewer left keys or buttons held: released");
                    }
                    for i in left {
                        if let Err(e) = screen.input(i) {
                            warn!("desktop input: {e}");
                        }
                    }
                };
                loop {
                    loop {
                        match inbox.try_recv() {
                            Ok(ToScreen::Input(i)) => match screen.input(i) {
                                Ok(()) => held.note(&i),
                                Err(e) => warn!("desktop input: {e}"),
                            },
                            Ok(ToScreen::Refresh) => refresh = true,
                            Ok(ToScreen::SetClipboard(text)) => {
                                if let Err(e) = screen.set_clipboard_text(&text) {
                                    warn!("cannot put the viewer's copy on the office PC's clipboard: {e}");
                                }
                            }
                            Ok(ToScreen::ReadClipboard(reply)) => {
                                let text = screen.clipboard_text().unwrap_or_else(|e| {
                                    warn!("cannot read the office PC's clipboard: {e}");
                                    None
                                });
                                let _ = reply.send(text);
                            }
                            Err(std::sync::mpsc::TryRecvError::Empty) => break,
                            Err(std::sync::mpsc::TryRecvError::Disconnected) => return release(&mut screen, &mut held),
                        }
                    }
                    if clipboard {
                        match screen.clipboard_changed() {
                            Ok(true) => changed.notify_one(),
                            Ok(false) => {}
                            Err(e) => warn!("cannot watch the office PC's clipboard: {e}"),
                        }
                    }
                    let parts = if std::mem::take(&mut refresh) {
                        screen.grab_all().map(|p| vec![p])
                    } else {
                        screen.changes(POLL)
                    };
                    match parts {
                        Ok(p) if p.is_empty() => {}
                        Ok(parts) => {
                            if tx.blocking_send(Ok(Frame { size: screen.size(), parts })).is_err() {
                                return release(&mut screen, &mut held);
                            }
                        }
                        Err(e) => {
                            release(&mut screen, &mut held);
                            return drop(tx.blocking_send(Err(e)));
                        }
                    }
                }
            })
            .map_err(|e| ScreenError::Io(e.to_string()))?;
        let size = ready.await.map_err(|_| ScreenError::Io("the screen reader stopped".into()))??;
        Ok(Self { size, clip_changed, commands, updates })
    }

    fn set_clipboard(&self, text: String) {
        if self.commands.try_send(ToScreen::SetClipboard(text)).is_err() {
            debug!("the viewer's copy dropped: the screen is behind");
        }
    }

    /// The office PC's clipboard text (`None` also when the screen's thread
    /// is behind or the app holding the clipboard does not answer).
    async fn read_clipboard(&self) -> Option<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.try_send(ToScreen::ReadClipboard(tx)).ok()?;
        tokio::time::timeout(CLIPBOARD_READ, rx).await.ok()?.ok()?
    }

    fn input(&self, i: Input) {
        if self.commands.try_send(ToScreen::Input(i)).is_err() {
            debug!("desktop input dropped: the screen is behind");
        }
    }

    fn refresh(&self) {
        let _ = self.commands.try_send(ToScreen::Refresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_pdu::gcc::{Monitor, MonitorFlags};

    #[test]
    fn a_viewer_with_several_monitors_is_told_it_gets_one_screen() {
        let m = |left: i32| Monitor { left, top: 0, right: left + 1919, bottom: 1079, flags: MonitorFlags::empty() };
        assert_eq!(monitors_note(&[], (1024, 768)), None);
        assert_eq!(monitors_note(&[m(0)], (1024, 768)), None);
        let note = monitors_note(&[m(0), m(1920)], (3840, 1080)).unwrap();
        assert!(note.contains("2 monitors") && note.contains("one screen of 3840x1080"), "{note}");
    }

    #[test]
    fn updates_are_cut_to_the_negotiated_desktop() {
        let px = Pixels {
            rect: super::super::screen::Rect { x: 6, y: 2, width: 4, height: 3 },
            stride: 16,
            data: (0..48).collect(),
        };
        let cut = cut_to(&px, 8, 4).unwrap();
        assert_eq!((cut.rect.width, cut.rect.height, cut.stride), (2, 2, 8));
        assert_eq!(cut.data, [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
        assert!(cut_to(&px, 6, 4).is_none(), "wholly outside");
    }
}
