//! The clipboard of the built-in desktop: text both ways over RDP's CLIPRDR
//! static channel (IronRDP's `ironrdp-cliprdr`, server role).
//!
//! - The viewer's user copies: the viewer sends a format list; when it has
//!   Unicode text, the server asks for it at once and puts it on the office
//!   PC's clipboard (an eager copy: text is small, and the office PC's apps
//!   then paste without waiting on the network).
//! - An app on the office PC copies: the server offers Unicode text; the
//!   viewer asks for it when its user pastes, and gets what the office PC's
//!   clipboard holds then.
//!
//! Off when `clipboard = false` in `thinsvr.toml` or when the company's
//! policy sets `DISABLE_SHARE`: the channel is then not served at all.
//! Text is capped at [`CLIPBOARD_MAX`] bytes either way.

use std::sync::{Arc, Mutex};

use ironrdp_acceptor::{Acceptor, AcceptorResult};
use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest, FileContentsResponse,
    FormatDataRequest, FormatDataResponse, LockDataId, OwnedFormatDataResponse,
};
use ironrdp_cliprdr::CliprdrServer;
use ironrdp_svc::{StaticChannelSet, SvcMessage};

use super::screen::CLIPBOARD_MAX;
use super::server::DesktopError;

/// The largest channel message a viewer may send, reassembled: the text
/// limit in UTF-16 and some room for the headers.
const MAX_MESSAGE: usize = 2 * CLIPBOARD_MAX + 64 * 1024;

/// What the viewer's clipboard messages asked of the server.
#[derive(Debug, PartialEq, Eq)]
pub enum ClipEvent {
    /// The channel is up (the viewer sent its first format list).
    Ready,
    /// The viewer's user copied; `text` when Unicode text is on offer.
    Copied { text: bool },
    /// The viewer wants the office PC's clipboard as Unicode text.
    WantsText,
    /// The viewer wants a format the server never offered.
    WantsOther,
    /// The text asked for with [`Clip::ask_text`] (`None`: refused, too big).
    Text(Option<String>),
}

type Events = Arc<Mutex<Vec<ClipEvent>>>;

/// IronRDP's clipboard backend: it only records what happened, for the
/// session to act on (the session owns the screen and the connection).
#[derive(Debug)]
struct Recorder(Events);

ironrdp_core::impl_as_any!(Recorder);

impl Recorder {
    fn push(&self, e: ClipEvent) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
}

impl CliprdrBackend for Recorder {
    fn temporary_directory(&self) -> &str {
        ""
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::USE_LONG_FORMAT_NAMES
    }

    fn on_ready(&mut self) {
        self.push(ClipEvent::Ready);
    }

    fn on_request_format_list(&mut self) {}

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        let text = available_formats.iter().any(|f| f.id == ClipboardFormatId::CF_UNICODETEXT);
        self.push(ClipEvent::Copied { text });
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.push(if request.format == ClipboardFormatId::CF_UNICODETEXT {
            ClipEvent::WantsText
        } else {
            ClipEvent::WantsOther
        });
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let text = if response.is_error() { None } else { response.to_unicode_string().ok() };
        self.push(ClipEvent::Text(text.filter(|t| t.len() <= CLIPBOARD_MAX).map(|t| from_rdp(&t))));
    }

    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}

/// The clipboard channel of one session: registered on the acceptor before
/// the connection sequence, taken from its result after.
pub struct Clip {
    channels: StaticChannelSet,
    channel_id: u16,
    user_channel_id: u16,
    events: Events,
}

/// The recorder's events, between [`attach`] and [`Clip::join`].
pub struct Attached(Events);

/// Offers the clipboard channel on `acceptor`.
pub fn attach(acceptor: &mut Acceptor) -> Attached {
    let events = Events::default();
    acceptor.attach_static_channel(CliprdrServer::new(Box::new(Recorder(events.clone()))));
    Attached(events)
}

impl Clip {
    /// The channel the viewer joined, taken out of `result`; `None` when the
    /// viewer asked for no clipboard.
    pub fn join(attached: Attached, result: &mut AcceptorResult) -> Option<Clip> {
        let channel_id = result.static_channels.get_channel_id_by_type::<CliprdrServer>()?;
        Some(Clip {
            channels: std::mem::take(&mut result.static_channels),
            channel_id,
            user_channel_id: result.user_channel_id,
            events: attached.0,
        })
    }

    /// Whether data on `channel_id` is for the clipboard.
    pub fn is_mine(&self, channel_id: u16) -> bool {
        channel_id == self.channel_id
    }

    fn cliprdr(&mut self) -> Result<&mut CliprdrServer, DesktopError> {
        self.channels
            .get_by_type_mut::<CliprdrServer>()
            .and_then(|c| c.channel_processor_downcast_mut::<CliprdrServer>())
            .ok_or_else(|| DesktopError::Protocol("the clipboard channel is gone".into()))
    }

    fn encode(&self, messages: Vec<SvcMessage>) -> Result<Vec<u8>, DesktopError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        ironrdp_svc::server_encode_svc_messages(messages, self.channel_id, self.user_channel_id)
            .map_err(|e| DesktopError::Protocol(format!("clipboard: {e}")))
    }

    /// The server's first messages (capabilities, monitor ready), to send
    /// once the session starts.
    pub fn start(&mut self) -> Result<Vec<u8>, DesktopError> {
        let channel = self
            .channels
            .get_by_type_mut::<CliprdrServer>()
            .ok_or_else(|| DesktopError::Protocol("the clipboard channel is gone".into()))?;
        let messages = channel.start().map_err(|e| DesktopError::Protocol(format!("clipboard: {e}")))?;
        self.encode(messages)
    }

    /// One chunk of channel data from the viewer; returns what to send back.
    /// A message declared bigger than the limit ends the session.
    pub fn process(&mut self, data: &[u8]) -> Result<Vec<u8>, DesktopError> {
        let header: ironrdp_pdu::rdp::vc::ChannelPduHeader =
            ironrdp_core::decode(data).map_err(|e| DesktopError::Protocol(format!("clipboard: {e}")))?;
        if usize::try_from(header.length).map_or(true, |n| n > MAX_MESSAGE) {
            return Err(DesktopError::Protocol(format!(
                "clipboard: a message of {} bytes, more than the {MAX_MESSAGE} allowed",
                header.length
            )));
        }
        let channel = self
            .channels
            .get_by_type_mut::<CliprdrServer>()
            .ok_or_else(|| DesktopError::Protocol("the clipboard channel is gone".into()))?;
        let messages = channel.process(data).map_err(|e| DesktopError::Protocol(format!("clipboard: {e}")))?;
        self.encode(messages)
    }

    /// What the viewer's messages asked for since the last call.
    pub fn take_events(&self) -> Vec<ClipEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Tells the viewer that the office PC's clipboard holds text.
    pub fn offer_text(&mut self) -> Result<Vec<u8>, DesktopError> {
        let formats = [ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)];
        let messages = self.cliprdr()?.initiate_copy(&formats).map_err(|e| DesktopError::Protocol(e.to_string()))?;
        self.encode(messages.into())
    }

    /// Asks the viewer for the text its user copied.
    pub fn ask_text(&mut self) -> Result<Vec<u8>, DesktopError> {
        let messages = self
            .cliprdr()?
            .initiate_paste(ClipboardFormatId::CF_UNICODETEXT)
            .map_err(|e| DesktopError::Protocol(e.to_string()))?;
        self.encode(messages.into())
    }

    /// Answers the viewer's request with `text` (`None`: a refusal).
    pub fn give_text(&mut self, text: Option<&str>) -> Result<Vec<u8>, DesktopError> {
        let response = match text {
            Some(t) => OwnedFormatDataResponse::new_unicode_string(&to_rdp(t)),
            None => OwnedFormatDataResponse::new_error(),
        };
        let messages =
            self.cliprdr()?.submit_format_data(response).map_err(|e| DesktopError::Protocol(e.to_string()))?;
        self.encode(messages.into())
    }
}

/// Office PC text to RDP's: CR LF line ends.
pub fn to_rdp(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// RDP text to the office PC's: LF line ends on Linux, CR LF on Windows;
/// what follows a NUL is dropped (RDP text ends with one).
pub fn from_rdp(text: &str) -> String {
    let text = text.split('\0').next().unwrap_or_default();
    if cfg!(windows) {
        to_rdp(text)
    } else {
        text.replace("\r\n", "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clipboard channel as [`Clip::join`] leaves it, without a connection.
    fn clip() -> Clip {
        let mut channels = StaticChannelSet::new();
        channels.insert(CliprdrServer::new(Box::new(Recorder(Events::default()))));
        channels.attach_channel_id(std::any::TypeId::of::<CliprdrServer>(), 1004);
        Clip { channels, channel_id: 1004, user_channel_id: 1007, events: Events::default() }
    }

    /// A channel chunk as a viewer sends it: CHANNEL_PDU_HEADER (the whole
    /// message's length, the chunk flags), then the chunk.
    fn chunk(declared: usize, flags: u32, data: &[u8]) -> Vec<u8> {
        let mut c = u32::try_from(declared).unwrap().to_le_bytes().to_vec();
        c.extend_from_slice(&flags.to_le_bytes());
        c.extend_from_slice(data);
        c
    }

    const FIRST: u32 = 1;

    #[test]
    fn a_viewer_declaring_a_message_over_the_limit_is_refused_before_anything_is_kept() {
        // The first chunk of a 9 MiB "copy": refused, naming both sizes.
        let huge = 9 * 1024 * 1024;
        let err = clip().process(&chunk(huge, FIRST, &[0; 1600])).expect_err("9 MiB accepted").to_string();
        assert!(err.contains(&huge.to_string()) && err.contains(&MAX_MESSAGE.to_string()), "{err}");
        // One byte over the limit is refused too; the limit itself is taken
        // (the chunk is kept for the next ones, nothing is answered yet).
        assert!(clip().process(&chunk(MAX_MESSAGE + 1, FIRST, &[0; 1600])).is_err());
        let mut c = clip();
        assert_eq!(c.process(&chunk(MAX_MESSAGE, FIRST, &[0; 1600])).expect("at the limit"), Vec::<u8>::new());
        // Chunks that add up to more than their message declared end it
        // (IronRDP checks the sum), so the limit bounds what is buffered.
        let mut c = clip();
        c.process(&chunk(2000, FIRST, &[0; 1600])).expect("first chunk");
        assert!(c.process(&chunk(2000, 0, &[0; 1600])).is_err(), "3,200 bytes of a 2,000-byte message");
    }

    #[test]
    fn line_ends_follow_each_side() {
        assert_eq!(to_rdp("a\nb\r\nc"), "a\r\nb\r\nc");
        let back = from_rdp("a\r\nb\0junk");
        if cfg!(windows) {
            assert_eq!(back, "a\r\nb");
        } else {
            assert_eq!(back, "a\nb");
        }
    }
}
