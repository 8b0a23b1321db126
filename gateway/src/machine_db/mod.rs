//! `MachineDatabase.config`: the registered servers (one per MSID, each with a
//! unique PCID), in the original's SoftEther text format so that an admin can
//! read and edit it while the gateway is stopped.
//!
//! [`cfg_format`] reads and writes the generic format; [`MachineDb`] maps it to
//! [`Machine`] records, checks them and saves atomically with backups;
//! [`journal`] keeps the changes made since the last whole save.

pub mod cfg_format;
pub mod journal;
mod store;

pub use store::{write, MachineDb, MAX_BACKUPS, MAX_BACKUP_BYTES};

use cfg_format::{Folder, Item, Value};
use std::path::PathBuf;

/// Unix ms minus this is the original's date (ms since 1970-01-01 09:00:00 GMT).
pub const ORIGINAL_EPOCH_OFFSET_MS: i64 = 32_400_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One registered server (a folder under `Machines`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// Machine ID; also the folder name in the file.
    pub msid: String,
    /// Computer ID, lower case.
    pub pcid: String,
    /// Hash of the server's certificate or key.
    pub cert_hash: String,
    /// Registration time, Unix ms (0 = unknown).
    pub create_date: i64,
    /// Host name the server registered from.
    pub create_host: String,
    /// IP address the server registered from.
    pub create_ip: String,
    /// Last change of the record, Unix ms (0 = never).
    pub update_date: i64,
    /// Last time the server connected, Unix ms (0 = never).
    pub last_server_date: i64,
    /// IP address of that connection.
    pub last_ip: String,
    /// Capability bits (see the reference, "ServerMask64 bits").
    pub server_mask64: u64,
    /// Number of server connections so far.
    pub num_server: u64,
    /// Number of client connections relayed to this server so far.
    pub num_client: u64,
    /// First client connection, Unix ms (0 = never).
    pub first_client_date: i64,
    /// Last client connection, Unix ms (0 = never).
    pub last_client_date: i64,
    /// Fields this version does not know (e.g. `WolMacList`), kept verbatim.
    pub extra: Vec<Item>,
}

/// Why the database could not be read, changed or saved.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}; check its permissions", path.display())]
    Read {
        /// The database file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is malformed; it was not changed.
    #[error("{}:{line}: {msg} (the file was not changed; fix it, or restore a copy from the backup folder next to it)", path.display())]
    Invalid {
        /// The database file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong and how to fix it.
        msg: String,
    },
    /// Writing the new file failed; the previous file is intact.
    #[error("cannot save {}: {source}; check that its folder is writable and the disk is not full", path.display())]
    Save {
        /// The database file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// [`MachineDb::try_upsert`] of an empty MSID.
    #[error("a machine needs a non-empty MSID")]
    EmptyMsid,
    /// [`MachineDb::try_upsert`] of an invalid PCID.
    #[error("invalid computer ID {pcid:?}: {source}")]
    BadPcid {
        /// The refused PCID.
        pcid: String,
        /// Why.
        source: thin_protocol::pcid::PcidError,
    },
    /// [`MachineDb::try_upsert`] of a PCID that another MSID holds.
    #[error("computer ID {pcid:?} is already registered by {msid}")]
    PcidTaken {
        /// The PCID.
        pcid: String,
        /// Its current owner.
        msid: String,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Num,
    Date,
}

/// Known fields, in file order.
const FIELDS: [(&str, Kind); 14] = [
    ("CertHash", Kind::Str),
    ("CreateDate", Kind::Date),
    ("CreateHost", Kind::Str),
    ("CreateIp", Kind::Str),
    ("FirstClientDate", Kind::Date),
    ("LastClientDate", Kind::Date),
    ("LastIp", Kind::Str),
    ("LastServerDate", Kind::Date),
    ("Msid", Kind::Str),
    ("NumClient", Kind::Num),
    ("NumServer", Kind::Num),
    ("Pcid", Kind::Str),
    ("ServerMask64", Kind::Num),
    ("UpdateDate", Kind::Date),
];

/// The machine field of its Wake-on-LAN MAC addresses.
pub const WOL_MAC_LIST: &str = "WolMacList";

/// The machine field set by the admin console when the admin disables a
/// machine (`bool Disabled true`): it may then neither register nor serve.
pub const DISABLED: &str = "Disabled";

/// Positions of `Msid` and `Pcid` in [`FIELDS`].
const MSID: usize = 8;
const PCID: usize = 11;

/// A field value while loading: text or number (Unix ms for dates).
enum Field {
    S(String),
    N(u64),
    D(i64),
}

impl Machine {
    /// A machine with only its IDs set.
    pub fn new(msid: impl Into<String>, pcid: impl Into<String>) -> Machine {
        Machine { msid: msid.into(), pcid: pcid.into(), ..Machine::default() }
    }

    /// Reads a machine folder. Errors are `(line, message)`; the PCID is
    /// returned as written (checked by the caller), with the line of `Pcid`.
    fn from_folder(f: &Folder) -> Result<(Machine, usize), (usize, String)> {
        if let Some(sub) = f.folders.first() {
            return Err((sub.line, format!("machine `{}` may hold only items; remove `declare {}`", f.name, sub.name)));
        }
        let mut m = Machine::default();
        let mut seen: [usize; FIELDS.len()] = [0; FIELDS.len()];
        for it in &f.items {
            let Some(k) = FIELDS.iter().position(|(n, _)| n.eq_ignore_ascii_case(&it.name)) else {
                m.extra.push(it.clone());
                continue;
            };
            let (name, kind) = FIELDS[k];
            if seen[k] != 0 {
                return Err((it.line, format!("{name} is already set on line {}; remove one of the two", seen[k])));
            }
            seen[k] = it.line.max(1);
            let field = match (kind, &it.value) {
                (Kind::Str, Value::Str(s)) => Field::S(s.clone()),
                (Kind::Num, Value::Uint64(v)) => Field::N(*v),
                (Kind::Num, Value::Uint(v)) => Field::N(u64::from(*v)),
                (Kind::Date, Value::Uint64(0)) => Field::D(0),
                (Kind::Date, Value::Uint64(v)) => match i64::try_from(*v)
                    .ok()
                    .and_then(|v| v.checked_add(ORIGINAL_EPOCH_OFFSET_MS))
                {
                    Some(d) => Field::D(d),
                    None => return Err((it.line, format!("{name} {v} is too large to be a date; write 0 if unknown"))),
                },
                (Kind::Str, _) => {
                    return Err((it.line, format!("{name} must be a string; write `string {name} VALUE`")))
                }
                _ => return Err((it.line, format!("{name} must be a number; write `uint64 {name} NUMBER`"))),
            };
            m.set(name, field);
        }
        if m.msid.is_empty() {
            return Err((
                f.line,
                format!("machine `{}` has no Msid; add `string Msid {}`", f.name, cfg_format::escape(&f.name)),
            ));
        }
        if m.msid != f.name {
            return Err((
                seen[MSID],
                format!("Msid `{}` differs from its folder name `{}`; make them the same", m.msid, f.name),
            ));
        }
        if seen[PCID] == 0 {
            return Err((
                f.line,
                format!("machine `{}` has no Pcid; add `string Pcid COMPUTER-ID` or remove the machine", f.name),
            ));
        }
        Ok((m, seen[PCID]))
    }

    fn set(&mut self, name: &str, v: Field) {
        match (name, v) {
            ("CertHash", Field::S(s)) => self.cert_hash = s,
            ("CreateHost", Field::S(s)) => self.create_host = s,
            ("CreateIp", Field::S(s)) => self.create_ip = s,
            ("LastIp", Field::S(s)) => self.last_ip = s,
            ("Msid", Field::S(s)) => self.msid = s,
            ("Pcid", Field::S(s)) => self.pcid = s,
            ("NumServer", Field::N(n)) => self.num_server = n,
            ("NumClient", Field::N(n)) => self.num_client = n,
            ("FirstClientDate", Field::D(d)) => self.first_client_date = d,
            ("LastClientDate", Field::D(d)) => self.last_client_date = d,
            ("ServerMask64", Field::N(n)) => self.server_mask64 = n,
            ("CreateDate", Field::D(d)) => self.create_date = d,
            ("LastServerDate", Field::D(d)) => self.last_server_date = d,
            ("UpdateDate", Field::D(d)) => self.update_date = d,
            _ => {}
        }
    }

    /// Its `WolMacList`: MAC addresses for Wake-on-LAN, a string of
    /// `00-11-22-AA-BB-CC` separated by commas (kept among the fields this
    /// version otherwise passes through, so an edited file keeps its form).
    pub fn wol_macs(&self) -> Vec<String> {
        self.extra
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(WOL_MAC_LIST))
            .and_then(|i| match &i.value {
                Value::Str(s) => Some(s.split([',', '/', ' ']).filter(|m| !m.is_empty()).map(str::to_owned).collect()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Sets its `WolMacList` (empty: removes it).
    pub fn set_wol_macs(&mut self, macs: &[String]) {
        self.extra.retain(|i| !i.name.eq_ignore_ascii_case(WOL_MAC_LIST));
        if !macs.is_empty() {
            self.extra.push(Item::new(WOL_MAC_LIST, Value::Str(macs.join(","))));
        }
    }

    /// True when the admin disabled it (`bool Disabled true`, kept among the
    /// fields this version otherwise passes through, like `WolMacList`).
    pub fn disabled(&self) -> bool {
        self.extra.iter().any(|i| i.name.eq_ignore_ascii_case(DISABLED) && i.value == Value::Bool(true))
    }

    /// Sets or clears its `Disabled` flag (cleared: the field is removed).
    pub fn set_disabled(&mut self, on: bool) {
        self.extra.retain(|i| !i.name.eq_ignore_ascii_case(DISABLED));
        if on {
            self.extra.push(Item::new(DISABLED, Value::Bool(true)));
        }
    }

    /// The folder written for this machine: known fields, then `extra`.
    fn to_folder(&self) -> Folder {
        let s = |n: &str, v: &str| Item::new(n, Value::Str(v.to_owned()));
        let d = |n: &str, v: i64| {
            let orig = if v == 0 { 0 } else { v.saturating_sub(ORIGINAL_EPOCH_OFFSET_MS).max(0) };
            Item::new(n, Value::Uint64(orig as u64))
        };
        let mut f = Folder::new(self.msid.clone());
        f.items = vec![
            s("CertHash", &self.cert_hash),
            d("CreateDate", self.create_date),
            s("CreateHost", &self.create_host),
            s("CreateIp", &self.create_ip),
            d("FirstClientDate", self.first_client_date),
            d("LastClientDate", self.last_client_date),
            s("LastIp", &self.last_ip),
            d("LastServerDate", self.last_server_date),
            s("Msid", &self.msid),
            Item::new("NumClient", Value::Uint64(self.num_client)),
            Item::new("NumServer", Value::Uint64(self.num_server)),
            s("Pcid", &self.pcid),
            Item::new("ServerMask64", Value::Uint64(self.server_mask64)),
            d("UpdateDate", self.update_date),
        ];
        let known = |n: &str| FIELDS.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        for it in &self.extra {
            if !known(&it.name) && !f.items.iter().any(|k| k.name == it.name) {
                f.items.push(it.clone());
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_round_trip_and_field_checks() {
        let mut m = Machine::new("M", "pc");
        (m.create_date, m.last_server_date, m.num_server) = (1_606_718_422_950, 0, 7);
        (m.num_client, m.first_client_date, m.last_client_date) = (3, 1_606_718_422_950, 1_606_718_422_951);
        m.extra.push(Item::new("WolMacList", Value::Str("aa".into())));
        m.extra.push(Item::new("pcid", Value::Str("ignored: a known field".into())));
        let f = m.to_folder();
        assert_eq!(f.item("CreateDate").map(|i| &i.value), Some(&Value::Uint64(1_606_686_022_950)));
        assert_eq!(f.item("LastServerDate").map(|i| &i.value), Some(&Value::Uint64(0)));
        assert_eq!(f.item("LastClientDate").map(|i| &i.value), Some(&Value::Uint64(1_606_686_022_951)));
        assert_eq!(f.item("NumClient").map(|i| &i.value), Some(&Value::Uint64(3)));
        let (back, _) = Machine::from_folder(&f).unwrap();
        m.extra.pop();
        assert_eq!(back, m);
        let mut twice = f.clone();
        twice.items.push(Item { line: 9, ..Item::new("MSID", Value::Str("M".into())) });
        assert!(Machine::from_folder(&twice).unwrap_err().1.contains("already set"));
        let mut off = m.clone();
        assert!(!off.disabled());
        off.set_disabled(true);
        let (back, _) = Machine::from_folder(&off.to_folder()).unwrap();
        assert!(back.disabled(), "the flag survives the file");
        off.set_disabled(false);
        assert!(!off.disabled() && off.extra.iter().all(|i| i.name != DISABLED));
        let mut typed = f;
        typed.items[0] = Item { line: 4, ..Item::new("CertHash", Value::Uint(1)) };
        assert_eq!(Machine::from_folder(&typed).unwrap_err().0, 4);
    }
}
