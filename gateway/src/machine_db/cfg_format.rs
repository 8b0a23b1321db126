//! The SoftEther configuration text format that `MachineDatabase.config` uses.
//!
//! A file is a header of `#` comment lines and one `declare root { ... }` folder.
//! A folder holds items (`TYPE NAME VALUE` lines, types `uint`, `uint64`, `bool`,
//! `string`, `byte`) and sub-folders (`declare NAME` then `{` ... `}`).
//! In names and strings, control characters, space and `$` are written `$HH`
//! and the empty string is `$`; `byte` values are base64 (empty: `$`).
//! Output uses tab indentation, CRLF line ends and name order; input accepts any
//! indentation, LF or CRLF, a UTF-8 BOM and `#` or `//` comment lines.

use base64::Engine as _;
use std::fmt::Write as _;

/// The comment block written at the top of every file, as in the original.
pub const HEADER: &str = "# Software Configuration File\r\n\
# ---------------------------\r\n\
#\r\n\
# You may edit this file when the server program is not running.\r\n\
#\r\n\
# In prior to edit this file manually by your text editor,\r\n\
# shutdown the server background service.\r\n\
# Otherwise, all changes will be lost.\r\n\
#\r\n";

/// Deepest folder nesting accepted on input.
const MAX_DEPTH: usize = 64;

/// The value of an item, one variant per type keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `uint`: 32-bit unsigned.
    Uint(u32),
    /// `uint64`: 64-bit unsigned.
    Uint64(u64),
    /// `bool`: `true` or `false`.
    Bool(bool),
    /// `string`: UTF-8 text.
    Str(String),
    /// `byte`: binary data, base64 in the file.
    Bytes(Vec<u8>),
}

impl Value {
    /// The type keyword written before the item name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Uint(_) => "uint",
            Value::Uint64(_) => "uint64",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Bytes(_) => "byte",
        }
    }
}

/// One `TYPE NAME VALUE` line.
#[derive(Debug, Clone)]
pub struct Item {
    /// Name (unescaped).
    pub name: String,
    /// Typed value.
    pub value: Value,
    /// Line it was read from; 0 when built in code. Not compared by `==`.
    pub line: usize,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value
    }
}

impl Eq for Item {}

impl Item {
    /// An item not read from a file.
    pub fn new(name: impl Into<String>, value: Value) -> Item {
        Item { name: name.into(), value, line: 0 }
    }
}

/// A `declare NAME { ... }` block.
#[derive(Debug, Clone, Default)]
pub struct Folder {
    /// Name (unescaped).
    pub name: String,
    /// Items, in file order (sorted on output).
    pub items: Vec<Item>,
    /// Sub-folders, in file order (sorted on output).
    pub folders: Vec<Folder>,
    /// Line of its `declare`; 0 when built in code. Not compared by `==`.
    pub line: usize,
}

impl PartialEq for Folder {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.items == other.items && self.folders == other.folders
    }
}

impl Eq for Folder {}

impl Folder {
    /// An empty folder not read from a file.
    pub fn new(name: impl Into<String>) -> Folder {
        Folder { name: name.into(), ..Folder::default() }
    }
    /// The item called `name` (ASCII case-insensitive).
    pub fn item(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name.eq_ignore_ascii_case(name))
    }
    /// The sub-folder called `name` (ASCII case-insensitive).
    pub fn folder(&self, name: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// Why a text is not a valid configuration file: the line and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub msg: String,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line, msg: msg.into() })
}

/// Parses a whole file and returns its single top-level folder (normally `root`).
pub fn parse(text: &str) -> Result<Folder, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut stack = vec![Folder::new("")];
    let mut pending: Option<(String, usize)> = None;
    let mut last = 1;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last = n;
        let line = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        if let Some((name, at)) = pending.take() {
            if line != "{" {
                return err(
                    n,
                    format!("expected `{{` after `declare {name}` (line {at}); put `{{` alone on this line"),
                );
            }
            if stack.len() > MAX_DEPTH {
                return err(n, format!("folders are nested more than {MAX_DEPTH} deep; the file is damaged"));
            }
            stack.push(Folder { line: at, ..Folder::new(name) });
            continue;
        }
        let mut tok = line.split_ascii_whitespace();
        let first = tok.next().unwrap_or_default();
        if first == "}" || first == "{" {
            if first == "{" || tok.next().is_some() {
                return err(n, format!("unexpected `{line}`; braces stand alone and `{{` follows `declare NAME`"));
            }
            let (Some(done), Some(parent)) = (stack.pop(), stack.last_mut()) else {
                return err(n, "`}` without a matching `declare`; remove this line");
            };
            add_folder(parent, done)?;
        } else if first.eq_ignore_ascii_case("declare") {
            let (Some(name), None) = (tok.next(), tok.next()) else {
                return err(n, "write `declare NAME` with one name (spaces in names are written $20)");
            };
            pending = Some((unescape(name, n)?, n));
        } else {
            let Some(name) = tok.next() else {
                return err(n, format!("`{line}` is not an item; write `TYPE NAME VALUE`"));
            };
            let raw_value = tok.next();
            if tok.next().is_some() {
                return err(n, format!("unexpected text after the value of `{name}`; write spaces in strings as $20"));
            }
            let item = Item { name: unescape(name, n)?, value: parse_value(first, raw_value, n)?, line: n };
            match stack.last_mut() {
                Some(parent) if parent.line != 0 => add_item(parent, item)?,
                _ => return err(n, "item outside any folder; move it inside `declare root { ... }`"),
            }
        }
    }
    if let Some((name, at)) = pending {
        return err(at, format!("`declare {name}` is not followed by `{{`; add a `{{` line after it"));
    }
    if stack.len() > 1 {
        let open = stack.last().map(|f| (f.line, f.name.clone())).unwrap_or_default();
        return err(open.0, format!("`declare {}` is never closed; add the missing `}}` line", open.1));
    }
    let mut top = stack.pop().unwrap_or_default();
    match top.folders.len() {
        0 => err(last, "no `declare root` folder; the file is empty or truncated, restore it from a backup"),
        1 => Ok(top.folders.remove(0)),
        _ => err(top.folders[1].line, "a second top-level folder; the file holds only one `declare root { ... }`"),
    }
}

fn add_item(f: &mut Folder, item: Item) -> Result<(), ParseError> {
    if let Some(old) = f.items.iter().find(|i| i.name == item.name) {
        return err(
            item.line,
            format!("`{}` is already set on line {}; remove one of the two lines", item.name, old.line),
        );
    }
    f.items.push(item);
    Ok(())
}

fn add_folder(f: &mut Folder, sub: Folder) -> Result<(), ParseError> {
    if let Some(old) = f.folders.iter().find(|s| s.name == sub.name) {
        return err(
            sub.line,
            format!("folder `{}` is already declared on line {}; remove or merge one", sub.name, old.line),
        );
    }
    f.folders.push(sub);
    Ok(())
}

fn parse_value(ty: &str, raw: Option<&str>, n: usize) -> Result<Value, ParseError> {
    let t = ty.to_ascii_lowercase();
    if !["uint", "uint64", "bool", "string", "byte"].contains(&t.as_str()) {
        return err(n, format!("unknown type `{ty}`; use uint, uint64, bool, string or byte"));
    }
    if t == "byte" {
        return match raw {
            None | Some("$") => Ok(Value::Bytes(Vec::new())),
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v)
                .map(Value::Bytes)
                .or_else(|_| err(n, format!("`{v}` is not base64 data for a `byte` item; fix or remove the line"))),
        };
    }
    let Some(v) = raw else {
        return err(n, "the value is missing; write `TYPE NAME VALUE` (an empty string is `$`)");
    };
    let number = |max: u64| -> Result<u64, ParseError> {
        match v.parse::<u64>() {
            Ok(x) if x <= max => Ok(x),
            _ => err(n, format!("`{v}` is not a number for `{t}` (0 to {max}); write digits only")),
        }
    };
    match t.as_str() {
        "uint" => Ok(Value::Uint(number(u32::MAX.into())? as u32)),
        "uint64" => Ok(Value::Uint64(number(u64::MAX)?)),
        "bool" => match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => err(n, format!("`{v}` is not a boolean; write `true` or `false`")),
        },
        _ => Ok(Value::Str(unescape(v, n)?)),
    }
}

/// Escapes a name or string for the file: control characters, space and `$`
/// become `$HH`; the empty string becomes `$`.
pub fn escape(s: &str) -> String {
    if s.is_empty() {
        return "$".to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_control() || c == ' ' || c == '$' {
            let _ = write!(out, "${:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape`]; `n` is the line number for errors.
pub fn unescape(s: &str, n: usize) -> Result<String, ParseError> {
    if s == "$" {
        return Ok(String::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1..i + 3) {
            Some(h) if h.iter().all(u8::is_ascii_hexdigit) => {
                out.push(u8::from_str_radix(std::str::from_utf8(h).unwrap_or("0"), 16).unwrap_or(0));
                i += 3;
            }
            _ => {
                return err(
                    n,
                    format!("bad escape in `{s}`: `$` must be followed by two hex digits (write `$` itself as $24)"),
                )
            }
        }
    }
    String::from_utf8(out).or_else(|_| err(n, format!("the escapes in `{s}` do not form UTF-8 text; fix them")))
}

/// Writes a whole file: the header, then `root` and everything under it.
pub fn write(root: &Folder) -> String {
    let mut out = String::from(HEADER);
    write_folder(&mut out, root, 0);
    out
}

fn by_name(a: &str, b: &str) -> std::cmp::Ordering {
    a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()).then_with(|| a.cmp(b))
}

fn write_folder(out: &mut String, f: &Folder, depth: usize) {
    let tabs = "\t".repeat(depth);
    let _ = write!(out, "{tabs}declare {}\r\n{tabs}{{\r\n", escape(&f.name));
    let mut items: Vec<&Item> = f.items.iter().collect();
    items.sort_by(|a, b| by_name(&a.name, &b.name));
    for it in &items {
        let value = match &it.value {
            Value::Uint(v) => v.to_string(),
            Value::Uint64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::Str(s) => escape(s),
            Value::Bytes(b) if b.is_empty() => "$".to_owned(),
            Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        };
        let _ = write!(out, "{tabs}\t{} {} {value}\r\n", it.value.type_name(), escape(&it.name));
    }
    if !items.is_empty() && !f.folders.is_empty() {
        out.push_str("\r\n");
    }
    let mut folders: Vec<&Folder> = f.folders.iter().collect();
    folders.sort_by(|a, b| by_name(&a.name, &b.name));
    for sub in folders {
        write_folder(out, sub, depth + 1);
    }
    let _ = write!(out, "{tabs}}}\r\n");
}
