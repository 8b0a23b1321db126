//! `.stb` string tables (`protocol/src/stb.rs`): the base tables and a brand's
//! patches, read by the builder and compiled into the apps.
//!
//! Checks: no panic; allocation bounded; every reported line exists; every
//! key is valid and found on its line; a table written out again (values
//! escaped) parses to the same table; merging a table with itself or with an
//! empty one changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thin_fuzz::{budget_for, Budget};
use thin_protocol::stb::{is_valid_key, StringTable};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\r', "\\r").replace('\n', "\\n").replace('\t', "\\t")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let budget = Budget::start(budget_for(data.len()));
    let lines = text.lines().count();
    match StringTable::parse(text, "t.stb") {
        Ok(t) => {
            let mut out = String::new();
            for k in t.keys() {
                assert!(is_valid_key(k));
                let line = t.line_of(k).unwrap();
                assert!((1..=lines).contains(&line));
                let v = t.get(k).unwrap();
                assert!(!v.is_empty());
                out.push_str(&format!("{k} {}\n", escape(v)));
            }
            let back = StringTable::parse(&out, "again.stb")
                .unwrap_or_else(|e| panic!("a written table does not parse: {e:?}\n{out}"));
            assert_eq!(back.len(), t.len());
            for k in t.keys() {
                assert_eq!(back.get(k), t.get(k), "key {k} changed in a round trip");
            }
            assert_eq!(StringTable::merged(&t, &t), t);
            let empty = StringTable::default();
            assert_eq!(StringTable::merged(&empty, &t).keys().collect::<Vec<_>>(), t.keys().collect::<Vec<_>>());
            assert!(t.unknown_keys(&t).is_empty());
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
                assert!(e.to_string().starts_with(&format!("t.stb:{}: ", e.line)));
            }
        }
    }
    budget.check("stb");
});
