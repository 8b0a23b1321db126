//! The X11 clipboard (the `CLIPBOARD` selection) for the built-in desktop:
//! text only, as `UTF8_STRING` (and `STRING`/`TEXT` for old apps).
//!
//! - Copy on the home PC: thinsvr takes the selection with a window of its
//!   own and answers the apps' `SelectionRequest`s from the text it holds,
//!   until another app takes the selection (`SelectionClear`).
//! - Copy on the office PC: XFIXES reports every new owner of the
//!   selection; the text is fetched (`ConvertSelection` into a property of
//!   thinsvr's window) only when the viewer asks for it.
//!
//! Transfers bigger than one property (the `INCR` protocol) are not done:
//! the limit is [`CLIPBOARD_MAX`] anyway.
#![forbid(unsafe_code)]

use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::x11::io;
use crate::desktop::screen::{ScreenError, CLIPBOARD_MAX};

x11rb::atom_manager! {
    /// The atoms of the clipboard protocol.
    pub Atoms: AtomsCookie {
        CLIPBOARD,
        UTF8_STRING,
        TARGETS,
        TEXT,
        INCR,
        THIN_CLIPBOARD,
    }
}

/// thinsvr's side of the `CLIPBOARD` selection on one X connection.
#[derive(Debug)]
pub struct Clipboard {
    /// An input-only window: owner of the selection when thinsvr holds it,
    /// and where fetched text is put.
    window: xproto::Window,
    atoms: Atoms,
    /// The text thinsvr offers while it owns the selection.
    owned: Option<String>,
    /// Another app took the selection since the last look.
    changed: bool,
}

/// What one event meant to the clipboard.
pub enum Handled {
    /// Not a clipboard event: the caller handles it.
    No(Event),
    /// Consumed.
    Yes,
    /// The answer to [`Clipboard::request`]: the text, or `None` (refused,
    /// not text, too big).
    Converted(Option<String>),
}

impl Clipboard {
    /// Makes the window and asks XFIXES for the selection's owner changes.
    pub fn new(conn: &RustConnection, root: xproto::Window) -> Result<Self, ScreenError> {
        let atoms = Atoms::new(conn).map_err(io("interning atoms"))?.reply().map_err(io("interning atoms"))?;
        let window = conn.generate_id().map_err(io("allocating an X id"))?;
        conn.create_window(
            0,
            window,
            root,
            -1,
            -1,
            1,
            1,
            0,
            xproto::WindowClass::INPUT_ONLY,
            0,
            &xproto::CreateWindowAux::new(),
        )
        .map_err(io("creating the clipboard window"))?
        .check()
        .map_err(io("creating the clipboard window"))?;
        let mask = xfixes::SelectionEventMask::SET_SELECTION_OWNER
            | xfixes::SelectionEventMask::SELECTION_WINDOW_DESTROY
            | xfixes::SelectionEventMask::SELECTION_CLIENT_CLOSE;
        conn.xfixes_select_selection_input(window, atoms.CLIPBOARD, mask)
            .map_err(io("watching the clipboard"))?
            .check()
            .map_err(io("watching the clipboard"))?;
        Ok(Self { window, atoms, owned: None, changed: false })
    }

    /// Whether another app took the clipboard since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The text thinsvr holds, while it owns the selection.
    pub fn owned(&self) -> Option<&str> {
        self.owned.as_deref()
    }

    /// Takes the selection with `text`.
    pub fn set(&mut self, conn: &RustConnection, text: &str) -> Result<(), ScreenError> {
        conn.set_selection_owner(self.window, self.atoms.CLIPBOARD, x11rb::CURRENT_TIME)
            .map_err(io("taking the clipboard"))?;
        if self.owner(conn)? != self.window {
            return Err(ScreenError::Io("another app kept the clipboard".into()));
        }
        self.owned = Some(text.to_owned());
        Ok(())
    }

    /// Asks the selection's owner for its text as `UTF8_STRING`; false when
    /// nobody owns it. The answer comes as an event ([`Handled::Converted`]).
    pub fn request(&self, conn: &RustConnection) -> Result<bool, ScreenError> {
        if self.owner(conn)? == x11rb::NONE {
            return Ok(false);
        }
        conn.convert_selection(
            self.window,
            self.atoms.CLIPBOARD,
            self.atoms.UTF8_STRING,
            self.atoms.THIN_CLIPBOARD,
            x11rb::CURRENT_TIME,
        )
        .map_err(io("reading the clipboard"))?;
        conn.flush().map_err(io("reading the clipboard"))?;
        Ok(true)
    }

    /// The window that owns the `CLIPBOARD` selection now (`NONE`: nobody).
    fn owner(&self, conn: &RustConnection) -> Result<xproto::Window, ScreenError> {
        let cookie = conn.get_selection_owner(self.atoms.CLIPBOARD).map_err(io("asking for the clipboard's owner"))?;
        Ok(cookie.reply().map_err(io("asking for the clipboard's owner"))?.owner)
    }

    /// Handles `ev` if it is about the clipboard.
    pub fn handle(&mut self, conn: &RustConnection, ev: Event) -> Result<Handled, ScreenError> {
        match ev {
            Event::XfixesSelectionNotify(e) if e.selection == self.atoms.CLIPBOARD => {
                if e.owner != self.window {
                    self.owned = None;
                    self.changed = e.owner != x11rb::NONE;
                }
                Ok(Handled::Yes)
            }
            Event::SelectionClear(e) if e.owner == self.window && e.selection == self.atoms.CLIPBOARD => {
                self.owned = None;
                Ok(Handled::Yes)
            }
            Event::SelectionRequest(e) if e.owner == self.window => {
                self.answer(conn, &e)?;
                Ok(Handled::Yes)
            }
            Event::SelectionNotify(e) if e.requestor == self.window && e.selection == self.atoms.CLIPBOARD => {
                Ok(Handled::Converted(self.fetch(conn, e.property)?))
            }
            other => Ok(Handled::No(other)),
        }
    }

    /// Reads (and deletes) the property the owner put the text in.
    fn fetch(&self, conn: &RustConnection, property: xproto::Atom) -> Result<Option<String>, ScreenError> {
        if property == x11rb::NONE {
            tracing::debug!("the clipboard's owner has no text");
            return Ok(None);
        }
        let longs = u32::try_from(CLIPBOARD_MAX / 4 + 1).unwrap_or(u32::MAX);
        let p = conn
            .get_property(true, self.window, self.atoms.THIN_CLIPBOARD, xproto::AtomEnum::ANY, 0, longs)
            .map_err(io("reading the clipboard"))?
            .reply()
            .map_err(io("reading the clipboard"))?;
        if p.type_ == self.atoms.INCR || p.bytes_after > 0 || p.value.len() > CLIPBOARD_MAX {
            tracing::info!(max = CLIPBOARD_MAX, "the office PC's clipboard holds more text than is carried");
            return Ok(None);
        }
        if p.format != 8 {
            return Ok(None);
        }
        if p.type_ == u32::from(xproto::AtomEnum::STRING) {
            return Ok(Some(p.value.iter().map(|&b| char::from(b)).collect()));
        }
        Ok(Some(String::from_utf8_lossy(&p.value).into_owned()))
    }

    /// Answers another app's request for the text thinsvr holds.
    fn answer(&self, conn: &RustConnection, e: &xproto::SelectionRequestEvent) -> Result<(), ScreenError> {
        let a = &self.atoms;
        // Old clients name no property: the target's name is used.
        let property = if e.property == x11rb::NONE { e.target } else { e.property };
        let string = u32::from(xproto::AtomEnum::STRING);
        let given = match self.owned.as_deref() {
            Some(_) if e.selection != a.CLIPBOARD => x11rb::NONE,
            Some(_) if e.target == a.TARGETS => {
                let targets = [a.TARGETS, a.UTF8_STRING, a.TEXT, string];
                conn.change_property32(
                    xproto::PropMode::REPLACE,
                    e.requestor,
                    property,
                    xproto::AtomEnum::ATOM,
                    &targets,
                )
                .map_err(io("answering a paste"))?;
                property
            }
            Some(text) if e.target == a.UTF8_STRING || e.target == a.TEXT => {
                conn.change_property8(xproto::PropMode::REPLACE, e.requestor, property, a.UTF8_STRING, text.as_bytes())
                    .map_err(io("answering a paste"))?;
                property
            }
            Some(text) if e.target == string => {
                let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect();
                conn.change_property8(xproto::PropMode::REPLACE, e.requestor, property, string, &latin1)
                    .map_err(io("answering a paste"))?;
                property
            }
            _ => x11rb::NONE,
        };
        let notify = xproto::SelectionNotifyEvent {
            response_type: xproto::SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: e.time,
            requestor: e.requestor,
            selection: e.selection,
            target: e.target,
            property: given,
        };
        conn.send_event(false, e.requestor, xproto::EventMask::NO_EVENT, notify).map_err(io("answering a paste"))?;
        conn.flush().map_err(io("answering a paste"))?;
        Ok(())
    }
}
