//! Generates the string-table keys (`$OUT_DIR/keys.rs`) from the base table
//! `brand/default/strtable_en.stb`: one `Key` constant per key, so that a
//! misspelt key fails the build instead of showing the key to the user. (The
//! Japanese base table has the same keys; `strings`' tests check it.)
use std::fmt::Write;
use std::path::Path;

fn main() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../brand/default/strtable_en.stb");
    println!("cargo:rerun-if-changed={}", base.display());
    let text = std::fs::read_to_string(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    let mut keys: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
        .map(|l| l.split_whitespace().next().unwrap_or(l))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut code = String::from("impl Key {\n");
    for k in &keys {
        assert!(
            k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{}: key {k:?} is not an identifier",
            base.display()
        );
        writeln!(code, "    /// `{k}` in the string tables.\n    pub const {k}: Key = Key({k:?});").unwrap();
    }
    code.push_str("    /// Every key of the base table, sorted.\n    pub const ALL: &'static [Key] = &[\n");
    for k in &keys {
        writeln!(code, "        Key::{k},").unwrap();
    }
    code.push_str("    ];\n}\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("keys.rs");
    std::fs::write(out, code).unwrap();
}
