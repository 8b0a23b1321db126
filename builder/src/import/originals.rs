//! Readers of the original `IPA-DNP-ThinApps-Private` customisation files
//! (manual 4-4, 5-1, 5-2, 5-7): `Vars/Vars.h` (`#define` lines), `Vars/Vars.cs`
//! (`public static readonly string NAME = "...";`), `Vars/Vars.props`
//! (`<APP_ID_PREFIX>...</APP_ID_PREFIX>`) and the `hamcore/*.patch.stb` string
//! tables, whose keys may be the original's `$TOKEN$` names.

use crate::error::Problem;
use std::path::Path;

/// A value read from a file, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// The value (quotes and `L` prefix removed).
    pub value: String,
    /// Its line.
    pub line: usize,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let v = v.strip_prefix('L').filter(|r| r.starts_with('"')).unwrap_or(v);
    v.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(v).to_string()
}

/// Reads a text file (UTF-8, a BOM ignored); the problem names the file.
pub fn read_text(path: &Path, shown: &str) -> Result<String, Problem> {
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::file(
            shown,
            format!("cannot read: {e}"),
            "give the folder of the original source tree (the one holding src/Vars and src/bin)",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Problem::file(
            shown,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            "save the file as UTF-8 and import again",
        )
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string())
}

/// `#define NAME VALUE` lines of `Vars.h`: the first definition of `name`.
pub fn define(text: &str, name: &str) -> Option<At> {
    text.lines().enumerate().find_map(|(i, l)| {
        let rest = l.trim_start().strip_prefix("#define")?;
        let mut it = rest.trim_start().splitn(2, char::is_whitespace);
        (it.next()? == name).then(|| At { value: unquote(it.next().unwrap_or("")), line: i + 1 })
    })
}

/// `public static readonly string NAME = "value";` of `Vars.cs`.
pub fn cs_string(text: &str, name: &str) -> Option<At> {
    text.lines().enumerate().find_map(|(i, l)| {
        let (lhs, rhs) = l.split_once('=')?;
        let words: Vec<&str> = lhs.split_whitespace().collect();
        (words.last() == Some(&name) && words.contains(&"string"))
            .then(|| At { value: unquote(rhs.trim().trim_end_matches(';')), line: i + 1 })
    })
}

/// `<NAME>value</NAME>` of `Vars.props`.
pub fn xml_element(text: &str, name: &str) -> Option<At> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    text.lines().enumerate().find_map(|(i, l)| {
        let start = l.find(&open)? + open.len();
        let end = l[start..].find(&close)? + start;
        Some(At { value: l[start..end].trim().to_string(), line: i + 1 })
    })
}

/// One line of an original string table: key, value as written (escapes
/// kept), line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StbLine {
    /// Key, e.g. `$APPSHORT$` or `DS_TITLE`.
    pub key: String,
    /// Value as written in the file.
    pub raw: String,
    /// 1-based line.
    pub line: usize,
}

/// The entries of an original `.stb` (first definition of a key wins).
pub fn stb_lines(text: &str) -> Vec<StbLine> {
    let mut out: Vec<StbLine> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
            continue;
        }
        let mut it = t.splitn(2, [' ', '\t']);
        let key = it.next().unwrap_or("").to_string();
        let raw = it.next().unwrap_or("").trim().to_string();
        if !out.iter().any(|e| e.key == key) {
            out.push(StbLine { key, raw, line: i + 1 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_originals_shapes() {
        let h = "#include \"x.h\"\n#define APP_ID_PREFIX\t\t\"Mikaka\"\n#define APP_ID_PREFIX_UNICODE\tL\"Mikaka\"\n#define DS_RPC_PORT\t\t9877\n";
        assert_eq!(define(h, "APP_ID_PREFIX"), Some(At { value: "Mikaka".into(), line: 2 }));
        assert_eq!(define(h, "APP_ID_PREFIX_UNICODE").unwrap().value, "Mikaka");
        assert_eq!(define(h, "DS_RPC_PORT").unwrap().value, "9877");
        assert_eq!(define(h, "DS_URDP_PORT"), None);
        let cs = "public static class Vars\n{\n    public static readonly string CompanyName = \"Mikaka Corp\";\n}";
        assert_eq!(cs_string(cs, "CompanyName"), Some(At { value: "Mikaka Corp".into(), line: 3 }));
        let props = "<Project>\n  <PropertyGroup>\n    <APP_ID_PREFIX>Mikaka</APP_ID_PREFIX>\n";
        assert_eq!(xml_element(props, "APP_ID_PREFIX"), Some(At { value: "Mikaka".into(), line: 3 }));
        let stb = "#\n$APPSHORT$     Mikaka Telework\n$APP_ID_PREFIX$\t\t\t\n// c\nDS_X\ta\\tb\n$APPSHORT$ again\n";
        let l = stb_lines(stb);
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].key.as_str(), l[0].raw.as_str(), l[0].line), ("$APPSHORT$", "Mikaka Telework", 2));
        assert_eq!(l[1].raw, "");
        assert_eq!(l[2].raw, "a\\tb");
    }
}
