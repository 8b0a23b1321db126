//! [`MachineDb`]: loads and checks `MachineDatabase.config`, keeps it in memory
//! and saves it atomically, with backups in `backup.MachineDatabase.config/`.

use super::cfg_format::{self, Folder, Item, Value};
use super::{DbError, Machine};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Backups kept; older ones are deleted.
pub const MAX_BACKUPS: usize = 32;
/// Bytes the backups may take together; the oldest go first (the newest
/// backup is kept whatever its size).
pub const MAX_BACKUP_BYTES: u64 = 256 << 20;
/// At most one backup is made per this interval.
const BACKUP_INTERVAL: Duration = Duration::from_secs(60);
/// Temp files of an earlier save older than this are deleted on open.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);
/// The root item naming the last journal batch the file holds.
const JOURNAL_SEQ: &str = "JournalSeq";
/// Marks temp files: `MachineDatabase.config.tmp.<random>`.
const TMP_MARK: &str = ".tmp.";

/// The registered machines: by MSID, with a PCID index. All file work is
/// blocking; call [`MachineDb::save`] from a blocking context.
#[derive(Debug, Clone)]
pub struct MachineDb {
    path: PathBuf,
    machines: BTreeMap<String, Machine>,
    /// Lower-case PCID -> MSID.
    pcids: HashMap<String, String>,
    /// Root items and folders other than `Machines` (e.g. `Revision`), kept as read.
    other: Folder,
    /// The last journal batch this holds (`uint64 JournalSeq` in the file's
    /// root; 0: none): replaying skips the batches up to it.
    journal_seq: u64,
}

impl MachineDb {
    /// Reads and checks the file. A missing file gives an empty database; a
    /// malformed one gives [`DbError::Invalid`] (`PATH:LINE: what to fix`) and is
    /// left untouched. Temp files left by a crashed save are deleted.
    ///
    /// The changes in the journal beside the file (`.journal`, see
    /// [`super::journal`]) are applied on top; the files are not changed.
    pub fn open(path: &Path) -> Result<MachineDb, DbError> {
        let mut db = match fs::read(path) {
            Ok(bytes) => {
                let db = Self::parse(path, &bytes)?;
                remove_stale_temps(path);
                db
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::empty(path),
            Err(source) => return Err(DbError::Read { path: path.to_owned(), source }),
        };
        super::journal::replay(&mut db)?;
        Ok(db)
    }

    /// An empty database that lives in memory only; `label` names it in
    /// messages (e.g. the etcd key a record came from).
    pub fn in_memory(label: &Path) -> MachineDb {
        Self::empty(label)
    }

    fn empty(path: &Path) -> MachineDb {
        MachineDb {
            path: path.to_owned(),
            machines: BTreeMap::new(),
            pcids: HashMap::new(),
            other: Folder::new("root"),
            journal_seq: 0,
        }
    }

    /// Checks the bytes of a database file as [`MachineDb::open`] does, without
    /// touching the file system; `path` names the file in messages and is where
    /// [`MachineDb::save`] writes.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<MachineDb, DbError> {
        let mut db = Self::empty(path);
        let invalid = |line: usize, msg: String| DbError::Invalid { path: path.to_owned(), line, msg };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
            invalid(line, "this line is not UTF-8 text; save the file as UTF-8".into())
        })?;
        let root = cfg_format::parse(text).map_err(|e| invalid(e.line, e.msg))?;
        if !root.name.eq_ignore_ascii_case("root") {
            return Err(invalid(root.line, format!("the top folder is `{}`; name it `declare root`", root.name)));
        }
        for it in root.items {
            if it.name.eq_ignore_ascii_case(JOURNAL_SEQ) {
                let Value::Uint64(n) = it.value else {
                    return Err(invalid(
                        it.line,
                        format!("`{JOURNAL_SEQ}` is a uint64; write `uint64 {JOURNAL_SEQ} 0`"),
                    ));
                };
                db.journal_seq = n;
            } else {
                db.other.items.push(it);
            }
        }
        let mut pcid_lines: HashMap<String, usize> = HashMap::new();
        for list in root.folders {
            if !list.name.eq_ignore_ascii_case("Machines") {
                db.other.folders.push(list);
                continue;
            }
            if let Some(it) = list.items.first() {
                return Err(invalid(
                    it.line,
                    format!("`Machines` holds only `declare MSID` folders; remove or move `{}`", it.name),
                ));
            }
            for f in &list.folders {
                let (mut m, line) = Machine::from_folder(f).map_err(|(l, msg)| invalid(l, msg))?;
                m.pcid = thin_protocol::pcid::normalize(&m.pcid)
                    .map_err(|e| invalid(line, format!("Pcid `{}`: {e}", m.pcid)))?;
                if let Some(first) = pcid_lines.get(&m.pcid) {
                    let msg = format!(
                        "computer ID `{}` is also used on line {first}; each Pcid must be unique, change or remove one",
                        m.pcid
                    );
                    return Err(invalid(line, msg));
                }
                if db.machines.contains_key(&m.msid) {
                    return Err(invalid(f.line, format!("machine `{}` is declared twice; remove one", m.msid)));
                }
                pcid_lines.insert(m.pcid.clone(), line);
                db.pcids.insert(m.pcid.clone(), m.msid.clone());
                db.machines.insert(m.msid.clone(), m);
            }
        }
        Ok(db)
    }

    /// A folder of the file's root other than `Machines`, as read.
    pub(super) fn other_folder(&self, name: &str) -> Option<&Folder> {
        self.other.folder(name)
    }

    /// The last journal batch this database holds.
    pub fn journal_seq(&self) -> u64 {
        self.journal_seq
    }

    /// Notes that this database holds the journal's batches up to `seq`.
    pub fn set_journal_seq(&mut self, seq: u64) {
        self.journal_seq = seq;
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The machine holding this PCID (compared in lower case).
    pub fn by_pcid(&self, pcid_lower: &str) -> Option<&Machine> {
        let msid = self.pcids.get(&pcid_lower.to_ascii_lowercase())?;
        self.machines.get(msid)
    }

    /// The machine with this MSID.
    pub fn by_msid(&self, msid: &str) -> Option<&Machine> {
        self.machines.get(msid)
    }

    /// Adds or replaces the machine with `m.msid` (PCID lower-cased). Callers
    /// check the PCID first; a change [`MachineDb::try_upsert`] would refuse is
    /// logged as an error and not made, so the file stays loadable.
    pub fn upsert(&mut self, m: Machine) {
        if let Err(e) = self.try_upsert(m) {
            tracing::error!("machine database not changed: {e}");
            debug_assert!(false, "MachineDb::upsert refused: {e}");
        }
    }

    /// Adds or replaces the machine with `m.msid`; returns the old record. The
    /// PCID is checked and lower-cased; an empty MSID, an invalid PCID or one
    /// held by another MSID is refused, so no two machines share a PCID.
    pub fn try_upsert(&mut self, mut m: Machine) -> Result<Option<Machine>, DbError> {
        if m.msid.is_empty() {
            return Err(DbError::EmptyMsid);
        }
        m.pcid = thin_protocol::pcid::normalize(&m.pcid)
            .map_err(|source| DbError::BadPcid { pcid: m.pcid.clone(), source })?;
        if let Some(owner) = self.pcids.get(&m.pcid).filter(|o| **o != m.msid) {
            return Err(DbError::PcidTaken { pcid: m.pcid, msid: owner.clone() });
        }
        let (pcid, msid) = (m.pcid.clone(), m.msid.clone());
        let old = self.machines.insert(msid.clone(), m);
        if let Some(o) = old.as_ref().filter(|o| o.pcid != pcid) {
            self.pcids.remove(&o.pcid);
        }
        self.pcids.insert(pcid, msid);
        Ok(old)
    }

    /// Removes the machine with this MSID.
    pub fn remove(&mut self, msid: &str) -> Option<Machine> {
        let m = self.machines.remove(msid)?;
        self.pcids.remove(&m.pcid);
        Some(m)
    }

    /// Number of machines.
    pub fn len(&self) -> usize {
        self.machines.len()
    }

    /// True when no machine is registered.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    /// The machines, in MSID order.
    pub fn iter(&self) -> impl Iterator<Item = &Machine> {
        self.machines.values()
    }

    /// Writes the file atomically; see [`write`].
    pub fn save(&self) -> Result<(), DbError> {
        write(&self.path, &self.render())
    }

    /// The file's text as [`MachineDb::save`] would write it.
    pub fn render(&self) -> String {
        cfg_format::write(&self.to_root())
    }

    fn to_root(&self) -> Folder {
        let mut root = self.other.clone();
        root.name = "root".into();
        if root.item("Revision").is_none() {
            root.items.push(Item::new("Revision", Value::Uint(5)));
        }
        if self.journal_seq > 0 {
            root.items.push(Item::new(JOURNAL_SEQ, Value::Uint64(self.journal_seq)));
        }
        let mut machines = Folder::new("Machines");
        machines.folders = self.machines.values().map(Machine::to_folder).collect();
        root.folders.push(machines);
        root
    }
}

/// Writes `text` to the database file at `path` atomically: a temp file in the
/// same folder (mode 0600, fsynced), a backup of the current file (hard link or
/// copy, at most one per minute, newest [`MAX_BACKUPS`] kept), a rename over the
/// file, and an fsync of the folder. A crash at any point leaves the old or the
/// new file. Blocking.
pub fn write(path: &Path, text: &str) -> Result<(), DbError> {
    let res = (|| {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}{TMP_MARK}", file_name(path)))
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir(path))?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        if fs::symlink_metadata(path).is_ok() {
            if let Err(e) = backup(path) {
                tracing::warn!(path = %path.display(), error = %e, "no backup of the machine database");
            }
        }
        tmp.persist(path).map_err(|e| e.error)?;
        fs::File::open(dir(path))?.sync_all()
    })();
    res.map_err(|source| DbError::Save { path: path.to_owned(), source })
}

fn dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or("MachineDatabase.config".into(), |n| n.to_string_lossy().into_owned())
}

/// Links (or copies) the current file into the backup folder, then prunes.
fn backup(path: &Path) -> io::Result<()> {
    let bdir = dir(path).join(format!("backup.{}", file_name(path)));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&bdir)?;
    let stem = path.file_stem().map_or("MachineDatabase".into(), |s| s.to_string_lossy());
    let ext = path.extension().map_or("config".into(), |s| s.to_string_lossy());
    let now = SystemTime::now();
    let name = backup_name(&stem, &ext, now);
    let floor = backup_name(&stem, &ext, now.checked_sub(BACKUP_INTERVAL).unwrap_or(now));
    let mut names: Vec<String> = fs::read_dir(&bdir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_backup_name(n, &stem, &ext))
        .collect();
    names.sort();
    if !names.last().is_some_and(|newest| *newest > floor && *newest <= name) {
        let target = bdir.join(&name);
        if fs::hard_link(path, &target).is_err() {
            let part = bdir.join(format!("{name}.partial"));
            fs::copy(path, &part)?;
            fs::set_permissions(&part, fs::Permissions::from_mode(0o600))?;
            fs::File::open(&part)?.sync_all()?;
            fs::rename(&part, &target)?;
        }
        names.push(name);
        names.sort();
    }
    // Keep the newest MAX_BACKUPS, and of those only as many as fit in
    // MAX_BACKUP_BYTES (the newest is always kept).
    let mut kept_bytes = 0u64;
    let mut keep = 0;
    for name in names.iter().rev().take(MAX_BACKUPS) {
        let len = fs::metadata(bdir.join(name)).map_or(0, |m| m.len());
        if keep > 0 && kept_bytes + len > MAX_BACKUP_BYTES {
            break;
        }
        kept_bytes += len;
        keep += 1;
    }
    for old in &names[..names.len() - keep] {
        let _ = fs::remove_file(bdir.join(old));
    }
    Ok(())
}

/// Deletes temp files of an interrupted save older than [`STALE_TEMP_AGE`].
fn remove_stale_temps(path: &Path) {
    let prefix = format!("{}{TMP_MARK}", file_name(path));
    let Ok(entries) = fs::read_dir(dir(path)) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        let named = e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix));
        if named && stale.is_some_and(|age| age > STALE_TEMP_AGE) && fs::remove_file(e.path()).is_ok() {
            tracing::info!(file = %e.path().display(), "removed the temp file of an interrupted save");
        }
    }
}

/// `STEM_YYYYMMDD_HHMMSS_mmm.EXT`, in UTC.
fn backup_name(stem: &str, ext: &str, t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{stem}_{:04}{:02}{:02}_{:02}{:02}{:02}_{:03}.{ext}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn is_backup_name(n: &str, stem: &str, ext: &str) -> bool {
    let mid = n.strip_prefix(stem).and_then(|r| r.strip_prefix('_')).and_then(|r| r.strip_suffix(ext));
    let Some(mid) = mid.and_then(|r| r.strip_suffix('.')) else {
        return false;
    };
    mid.len() == 19
        && mid.bytes().enumerate().all(|(i, b)| if i == 8 || i == 15 { b == b'_' } else { b.is_ascii_digit() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_606_718_422_950);
        let n = backup_name("MachineDatabase", "config", t);
        assert_eq!(n, "MachineDatabase_20201130_064022_950.config");
        assert!(is_backup_name(&n, "MachineDatabase", "config"));
        for other in
            ["MachineDatabase_20201130_064022_95.config", "MachineDatabase_20201130-064022_950.config", "x.config"]
        {
            assert!(!is_backup_name(other, "MachineDatabase", "config"), "{other}");
        }
    }
}
