//! `MachineDatabase.config` (`gateway/src/machine_db/`): the generic SoftEther
//! text format (`cfg_format`) and the machine records read from it
//! (`MachineDb::parse`, what `MachineDb::open` does after reading the file).
//!
//! Checks: no panic; allocation bounded; every refusal names a line of the
//! file; what parses writes out to text that parses to the same tree, and
//! writing is a fixed point (`write(parse(write(t))) == write(t)`); a database
//! renders to a file that loads to the same machines and renders the same;
//! `unescape(escape(s)) == s`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};
use thingate::machine_db::cfg_format;
use thingate::machine_db::{DbError, MachineDb};

fuzz_target!(|data: &[u8]| {
    let budget = Budget::start(budget_for(data.len()));
    if let Ok(text) = std::str::from_utf8(data) {
        let lines = text.lines().count().max(1);
        match cfg_format::parse(text) {
            Ok(root) => {
                let out = cfg_format::write(&root);
                let back =
                    cfg_format::parse(&out).unwrap_or_else(|e| panic!("written text does not parse: {e}\n{out}"));
                let again = cfg_format::write(&back);
                assert_eq!(out, again, "write(parse(write(t))) != write(t)");
                // Same tree, up to the order that writing sorts.
                assert!(sorted(root) == sorted(back), "parse(write(t)) is another tree");
            }
            Err(e) => assert!((1..=lines).contains(&e.line), "line {} of {lines}: {}", e.line, e.msg),
        }
        let s = text;
        assert_eq!(cfg_format::unescape(&cfg_format::escape(s), 1).unwrap(), s);
    }
    let path = Path::new("/var/lib/thingate/MachineDatabase.config");
    match MachineDb::parse(path, data) {
        Ok(db) => {
            let out = db.render();
            let back = MachineDb::parse(path, out.as_bytes())
                .unwrap_or_else(|e| panic!("a rendered database does not load: {e}\n{out}"));
            assert_eq!(machines(&db), machines(&back));
            assert_eq!(back.render(), out);
            for m in db.iter() {
                assert_eq!(db.by_pcid(&m.pcid).map(|x| &x.msid), Some(&m.msid));
                assert_eq!(db.by_msid(&m.msid), Some(m));
            }
        }
        Err(DbError::Invalid { line, .. }) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
        }
        Err(e) => panic!("parse gave {e}"),
    }
    budget.check("machine_db");
});

/// The tree with items and folders sorted by name (names are unique in a folder).
fn sorted(mut f: cfg_format::Folder) -> cfg_format::Folder {
    f.items.sort_by(|a, b| a.name.cmp(&b.name));
    f.folders = f.folders.into_iter().map(sorted).collect();
    f.folders.sort_by(|a, b| a.name.cmp(&b.name));
    f
}

/// The machines, with their unknown fields in the order writing sorts them.
fn machines(db: &MachineDb) -> Vec<thingate::machine_db::Machine> {
    db.iter()
        .cloned()
        .map(|mut m| {
            m.extra.sort_by(|a, b| a.name.cmp(&b.name));
            m
        })
        .collect()
}
