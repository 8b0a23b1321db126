//! String tables (`.stb`), the original's format for every user-facing text.
//!
//! UTF-8 lines `KEY<spaces or tabs>value`; `#` or `//` begin a comment line;
//! a UTF-8 BOM is ignored; the escapes `\r \n \t \\` are understood in values;
//! the first definition of a key wins. A brand's `*.patch.stb` is read before the
//! base table, so it overrides only the keys it names (see [`StringTable::merged`]).

use std::collections::HashMap;

/// One problem in a string table, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct StbError {
    /// File name used in the message.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub msg: String,
}

/// A parsed string table: keys in file order, values unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringTable {
    entries: Vec<(String, String, usize)>,
    index: HashMap<String, usize>,
}

/// Whether `key` is a valid string-table key (ASCII letters, digits, `_`, `.`, `-`).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A backslash escape the format does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EscapeError {
    /// `\x` for another `x` than `r n t \\`.
    #[error("unknown escape \\{0}: use \\r, \\n, \\t or \\\\ (write \\\\ for a backslash)")]
    Unknown(char),
    /// A value that ends with one backslash.
    #[error("a lone backslash ends the value: write \\\\ for a backslash")]
    Lone,
}

fn unescape(raw: &str) -> Result<String, EscapeError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(o) => return Err(EscapeError::Unknown(o)),
            None => return Err(EscapeError::Lone),
        }
    }
    Ok(out)
}

impl StringTable {
    /// Parses a table. Every bad line is reported, not only the first; `file` names
    /// the table in the messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, Vec<StbError>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut table = StringTable::default();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let err = |msg: String| StbError { file: file.to_string(), line: i + 1, msg };
            let (key, value) = match line.find([' ', '\t']) {
                Some(at) => (&line[..at], line[at..].trim_start()),
                None => (line, ""),
            };
            if !is_valid_key(key) {
                errors.push(err(format!(
                    "{key:?} is not a valid key: keys use ASCII letters, digits and _ (write `KEY value`)"
                )));
                continue;
            }
            if value.is_empty() {
                errors.push(err(format!("key {key} has no value: write `{key} <text>` or delete the line")));
                continue;
            }
            match unescape(value) {
                Ok(v) => table.insert(key, v, i + 1),
                Err(msg) => errors.push(err(format!("key {key}: {msg}"))),
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    fn insert(&mut self, key: &str, value: String, line: usize) {
        if !self.index.contains_key(key) {
            self.index.insert(key.to_string(), self.entries.len());
            self.entries.push((key.to_string(), value, line));
        }
    }

    /// The value of `key`, if defined.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.index.get(key).map(|&i| self.entries[i].1.as_str())
    }

    /// The 1-based line where `key` is defined.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).map(|&i| self.entries[i].2)
    }

    /// Keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _, _)| k.as_str())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `patch` read first, then `base`: the patch overrides only the keys it names.
    pub fn merged(patch: &StringTable, base: &StringTable) -> StringTable {
        let mut out = patch.clone();
        for (k, v, l) in &base.entries {
            out.insert(k, v.clone(), *l);
        }
        out
    }

    /// Keys of `self` (a patch) that `base` does not define, with their lines.
    pub fn unknown_keys<'a>(&'a self, base: &StringTable) -> Vec<(&'a str, usize)> {
        self.entries.iter().filter(|(k, _, _)| base.get(k).is_none()).map(|(k, _, l)| (k.as_str(), *l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_escapes_and_first_wins() {
        let t = StringTable::parse("\u{feff}# c\n// c\nA  one\\ttwo\\n\nB\tx\\\\y\nA later\n", "t.stb").unwrap();
        assert_eq!(t.get("A"), Some("one\ttwo\n"));
        assert_eq!(t.get("B"), Some("x\\y"));
        assert_eq!(t.line_of("A"), Some(3));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn reports_every_bad_line() {
        let errs = StringTable::parse("OK fine\nBAD\nK\\ey v\nE bad\\q\n", "p.stb").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(errs[0].to_string().starts_with("p.stb:2: key BAD has no value"));
    }

    #[test]
    fn patch_overrides_only_its_keys() {
        let base = StringTable::parse("A base-a\nB base-b\n", "b").unwrap();
        let patch = StringTable::parse("B patched\nZ unknown\n", "p").unwrap();
        let m = StringTable::merged(&patch, &base);
        assert_eq!(m.get("A"), Some("base-a"));
        assert_eq!(m.get("B"), Some("patched"));
        assert_eq!(patch.unknown_keys(&base), vec![("Z", 2)]);
    }
}
