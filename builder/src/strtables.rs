//! Checks of a brand's string-table patches against the apps' base tables
//! (`brand/default/strtable_*.stb`, compiled into the builder).

use crate::error::Problem;
use crate::manifest::Lang;
use std::path::Path;
use thin_protocol::stb::StringTable;

/// The apps' base table of a language (every key the apps know).
pub fn base_text(lang: Lang) -> &'static str {
    match lang {
        Lang::Ja => include_str!("../../brand/default/strtable_ja.stb"),
        Lang::En => include_str!("../../brand/default/strtable_en.stb"),
    }
}

/// The parsed base table.
pub fn base(lang: Lang) -> StringTable {
    StringTable::parse(base_text(lang), "base").expect("the base string tables parse (tested)")
}

/// Checks one patch file: it parses, and names only keys of the base table.
pub fn check_patch(lang: Lang, path: &Path, shown: &str) -> Vec<Problem> {
    let text = match std::fs::read(path) {
        Err(e) => {
            return vec![Problem::file(
                shown,
                format!("cannot read the string-table patch: {e}"),
                format!("create it (it may hold only comments) or fix strings.{} in brand.toml", lang.code()),
            )]
        }
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(e) => {
                return vec![Problem::file(
                    shown,
                    format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                    "save the file as UTF-8",
                )]
            }
        },
    };
    let patch = match StringTable::parse(&text, shown) {
        Ok(p) => p,
        Err(errs) => {
            return errs
                .into_iter()
                .map(|e| {
                    Problem::file(shown, e.msg, "write `KEY<tab>text`; start comments with # or //")
                        .at_line(Some(e.line))
                })
                .collect()
        }
    };
    let base = base(lang);
    patch
        .unknown_keys(&base)
        .into_iter()
        .map(|(k, line)| {
            Problem::file(
                shown,
                format!("key {k} is not a key of the apps"),
                format!(
                    "use a key listed in brand/default/strtable_{}.stb (check the spelling) or delete the line",
                    lang.code()
                ),
            )
            .at_line(Some(line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_tables_parse_and_have_the_same_keys() {
        let ja = base(Lang::Ja);
        let en = base(Lang::En);
        assert!(ja.len() > 40);
        assert_eq!(ja.keys().collect::<Vec<_>>(), en.keys().collect::<Vec<_>>());
        for k in [
            "THINCLIENT_CONNECTING",
            "ERR_WRONG_PASSWORD",
            "ERR_SERVER_OFFLINE",
            "ERR_CERT_EXPIRED",
            "OTP_PROMPT",
            "LISTENING_ON",
        ] {
            assert!(ja.get(k).is_some() && en.get(k).is_some(), "{k}");
        }
    }
}
