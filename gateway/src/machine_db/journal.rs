//! The journal beside `MachineDatabase.config`: changes appended since the
//! file was last written whole, so that a registration costs one small
//! append and fsync instead of a rewrite of every machine (which made
//! registrations one after another O(n²) in the number of machines).
//!
//! `MachineDatabase.config.journal` holds batches, each a header line
//! `THINJOURNAL1 <number> <body bytes> <SHA-256 of the body, hex>` and a body in the
//! database's own text format: `declare root` with a `Machines` folder (the
//! records as they are after the batch) and a `Removed` folder (`bool MSID
//! true` for each machine removed). A batch is applied by taking out every
//! machine it names, then putting its records in, so a rename and a claim of
//! the freed ID apply in any order.
//!
//! The writer rewrites the whole file (atomically, see [`super::write`]) and
//! then empties the journal from time to time; [`super::MachineDb::open`]
//! applies what the journal holds, so a crash loses no acknowledged change.
//! Batches are numbered, and the file names the last one it holds
//! (`uint64 JournalSeq` in its root): a crash between the whole save and the
//! emptying of the journal, or a journal that could not be emptied, replays
//! nothing twice.
//! A batch cut short by a crash (only ever the last, never acknowledged) is
//! ignored; any other damage is an error naming the journal and its line.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::cfg_format::{self, Folder, Item, Value};
use super::{DbError, Machine, MachineDb};

/// Marks a batch's header line.
const MAGIC: &str = "THINJOURNAL1";
/// Largest body accepted when reading (a batch of every machine of a large
/// gateway fits many times over).
const MAX_BODY: usize = 256 << 20;

/// One batch: for each changed MSID, its record now (`None`: removed).
pub type Batch = Vec<(String, Option<Machine>)>;

/// Path of the journal of the database at `db`.
pub fn path_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    /// Bytes in the file.
    len: u64,
    /// Number of the last batch appended (or held by the database).
    seq: u64,
}

impl Journal {
    /// The journal of `db` as opened (journal applied); the file is opened
    /// at the first append, and batches are numbered on from what `db` holds.
    pub fn new(db: &MachineDb) -> Journal {
        let path = path_of(db.path());
        let len = fs::metadata(&path).map_or(0, |m| m.len());
        Journal { path, file: None, len, seq: db.journal_seq() }
    }

    /// Number of the last batch appended.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the journal holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `batch` and waits until it is on disk; returns its number
    /// (for [`MachineDb::set_journal_seq`] of a copy it was applied to).
    pub fn append(&mut self, batch: &Batch) -> io::Result<u64> {
        let body = render(batch);
        let seq = self.seq + 1;
        let header = format!("{MAGIC} {seq} {} {}\n", body.len(), hex::encode(Sha256::digest(body.as_bytes())));
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
                self.file.insert(f)
            }
        };
        let mut buf = Vec::with_capacity(header.len() + body.len());
        buf.extend_from_slice(header.as_bytes());
        buf.extend_from_slice(body.as_bytes());
        let res = file.write_all(&buf).and_then(|()| file.sync_data());
        if res.is_err() {
            // A partial append is cut off, so that the next batch starts
            // where a reader expects one; failing that, the next write is a
            // whole rewrite (see the writer) and empties the journal.
            let _ = file.set_len(self.len).and_then(|()| file.sync_data());
        } else {
            self.len += buf.len() as u64;
            self.seq = seq;
        }
        res.map(|()| seq)
    }

    /// Empties the journal (after the database file was written whole).
    pub fn clear(&mut self) -> io::Result<()> {
        if self.len == 0 && self.file.is_none() && !self.path.exists() {
            return Ok(());
        }
        self.file = None;
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.len = 0;
        Ok(())
    }
}

/// The body of a batch.
fn render(batch: &Batch) -> String {
    let mut machines = Folder::new("Machines");
    let mut removed = Folder::new("Removed");
    for (msid, m) in batch {
        match m {
            Some(m) => machines.folders.push(m.to_folder()),
            None => removed.items.push(Item::new(msid.clone(), Value::Bool(true))),
        }
    }
    let mut root = Folder::new("root");
    root.folders = vec![machines, removed];
    cfg_format::write(&root)
}

/// Applies `batch` to `db`: every machine it names is taken out, then its
/// records are put in.
pub fn apply(db: &mut MachineDb, batch: Batch) -> Result<(), DbError> {
    for (msid, _) in &batch {
        db.remove(msid);
    }
    for m in batch.into_iter().filter_map(|(_, m)| m) {
        db.try_upsert(m)?;
    }
    Ok(())
}

/// Applies the batches of `db`'s journal that it does not hold yet; returns
/// how many.
pub fn replay(db: &mut MachineDb) -> Result<usize, DbError> {
    let path = path_of(db.path());
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(DbError::Read { path, source }),
    };
    let mut at = 0;
    let mut line = 1;
    let mut batches = 0;
    while at < bytes.len() {
        let invalid = |line: usize, msg: String| DbError::Invalid { path: path.clone(), line, msg };
        let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') else {
            tracing::warn!(journal = %path.display(), line, "ignored a journal batch cut short (a crash during a save)");
            break;
        };
        let header = std::str::from_utf8(&bytes[at..at + nl]).unwrap_or("");
        let mut words = header.split(' ');
        let (Some(MAGIC), Some(seq), Some(len), Some(sum), None) =
            (words.next(), words.next(), words.next(), words.next(), words.next())
        else {
            return Err(invalid(line, format!("expected a `{MAGIC} NUMBER LENGTH SHA256` batch header; move the journal away to start from the database file alone (its last changes are then lost)")));
        };
        let Ok(seq) = seq.parse::<u64>() else {
            return Err(invalid(line, format!("the batch number `{seq}` is not a number")));
        };
        let Some(len) = len.parse::<usize>().ok().filter(|&l| l <= MAX_BODY) else {
            return Err(invalid(line, format!("the batch length `{len}` is not a number up to {MAX_BODY}")));
        };
        let start = at + nl + 1;
        let end = start.saturating_add(len);
        let last = end >= bytes.len();
        if end > bytes.len() || hex::encode(Sha256::digest(&bytes[start..end])) != sum {
            if last {
                tracing::warn!(journal = %path.display(), line, "ignored a journal batch cut short (a crash during a save)");
                break;
            }
            return Err(invalid(line, "this batch does not match its checksum, and batches follow it: the journal is damaged; restore the database from its backup folder, or move the journal away (its changes are then lost)".into()));
        }
        let body = &bytes[start..end];
        if seq > db.journal_seq() {
            let batch = parse(&path, line, body)?;
            apply(db, batch).map_err(|e| invalid(line, format!("this batch cannot be applied: {e}")))?;
            db.set_journal_seq(seq);
            batches += 1;
        }
        line += 1 + body.iter().filter(|&&b| b == b'\n').count();
        at = end;
    }
    Ok(batches)
}

/// Reads a batch's body; `line` is its header's line in the journal.
fn parse(path: &Path, line: usize, body: &[u8]) -> Result<Batch, DbError> {
    let shift = |e: DbError| match e {
        DbError::Invalid { line: l, msg, .. } => DbError::Invalid { path: path.to_owned(), line: line + l, msg },
        other => other,
    };
    let part = MachineDb::parse(path, body).map_err(shift)?;
    let mut batch: Batch = part.iter().map(|m| (m.msid.clone(), Some(m.clone()))).collect();
    if let Some(removed) = part.other_folder("Removed") {
        batch.extend(removed.items.iter().map(|it| (it.name.clone(), None)));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(msid: &str, pcid: &str) -> Machine {
        Machine { create_date: 1_700_000_000_000, ..Machine::new(msid, pcid) }
    }

    #[test]
    fn batches_replay_in_order_and_a_cut_last_batch_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("MachineDatabase.config");
        let mut j = Journal::new(&MachineDb::open(&db_path).unwrap());
        j.append(&vec![("A".into(), Some(machine("A", "one"))), ("B".into(), Some(machine("B", "two")))]).unwrap();
        // A renames to the ID B gives up in the same batch, in either order.
        j.append(&vec![("A".into(), Some(machine("A", "two"))), ("B".into(), Some(machine("B", "three")))]).unwrap();
        j.append(&vec![("C".into(), Some(machine("C", "one"))), ("B".into(), None)]).unwrap();
        let whole = fs::read(path_of(&db_path)).unwrap();
        assert_eq!(j.len(), whole.len() as u64);

        let mut db = MachineDb::open(&db_path).unwrap();
        assert_eq!(db.len(), 2);
        assert_eq!(db.by_pcid("two").unwrap().msid, "A");
        assert_eq!(db.by_pcid("one").unwrap().msid, "C");
        assert!(db.by_msid("B").is_none());
        assert_eq!(db.journal_seq(), 3);
        assert_eq!(replay(&mut db).unwrap(), 0, "replaying again changes nothing");
        assert_eq!(db.len(), 2);

        // A crash after the whole file was saved, before the journal was
        // emptied: the file names the batches it holds, none is applied twice.
        db.save().unwrap();
        assert!(fs::read_to_string(&db_path).unwrap().contains("uint64 JournalSeq 3"));
        let again = MachineDb::open(&db_path).unwrap();
        assert_eq!((again.len(), again.by_pcid("one").unwrap().msid.as_str()), (2, "C"));
        // A journal that could not be emptied goes on numbering after it.
        let mut j2 = Journal::new(&again);
        assert_eq!(j2.append(&vec![("D".into(), Some(machine("D", "four")))]).unwrap(), 4);
        assert_eq!(MachineDb::open(&db_path).unwrap().len(), 3);
        fs::remove_file(&db_path).unwrap();

        // A crash in the middle of the last append: that batch was never
        // acknowledged, and is ignored.
        for cut in [whole.len() - 1, whole.len() - 40] {
            fs::write(path_of(&db_path), &whole[..cut]).unwrap();
            let db = MachineDb::open(&db_path).unwrap();
            assert!(db.by_msid("B").is_some() && db.by_msid("C").is_none(), "cut at {cut}");
        }

        // Damage before the end is an error naming the journal and the line.
        let mut bad = whole.clone();
        let body = whole.windows(7).position(|w| w == b"declare").unwrap();
        bad[body] = b'D';
        fs::write(path_of(&db_path), &bad).unwrap();
        let e = MachineDb::open(&db_path).unwrap_err().to_string();
        assert!(e.contains("MachineDatabase.config.journal:1:") && e.contains("checksum"), "{e}");

        j.clear().unwrap();
        assert!(!path_of(&db_path).exists());
        assert_eq!(MachineDb::open(&db_path).unwrap().len(), 0);
    }
}
