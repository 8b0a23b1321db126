//! Every user-facing text of the apps, from the string tables (`.stb`).
//!
//! The base tables (`brand/default/strtable_{ja,en}.stb`) hold every key; the
//! brand's patches (compiled into the apps, see [`thin_tunnel::brand`]) are read first and override only
//! the keys they name. The language follows the user's locale: `LC_ALL`,
//! `LC_MESSAGES`, `LANG` on Unix, the UI language on Windows; `THIN_LANG=ja|en`
//! overrides both. `%PRODUCT%`, `%SYSTEM%` and `%APPID%` in a text are replaced
//! by the brand's values; `{0}`, `{1}`... by [`fmt`]'s arguments.

use std::borrow::Cow;
use std::sync::OnceLock;
use thin_protocol::stb::StringTable;
use thin_tunnel::brand;

pub use thin_brand::Lang;

const BASE_JA: &str = include_str!("../../../brand/default/strtable_ja.stb");
const BASE_EN: &str = include_str!("../../../brand/default/strtable_en.stb");

fn system_locale() -> Option<String> {
    #[cfg(windows)]
    {
        sys_locale::get_locale()
    }
    #[cfg(not(windows))]
    {
        ["LC_ALL", "LC_MESSAGES", "LANG"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }
}

/// The user's language (computed once).
pub fn language() -> Lang {
    static LANG: OnceLock<Lang> = OnceLock::new();
    *LANG.get_or_init(|| {
        let explicit = std::env::var("THIN_LANG").ok().filter(|v| !v.is_empty());
        Lang::of_locale(&explicit.or_else(system_locale).unwrap_or_default())
    })
}

fn build(patch: &str, base: &str) -> StringTable {
    // The builder validated both; a broken table must not stop the app, so a bad
    // patch falls back to the base table alone.
    let base = StringTable::parse(base, "base").unwrap_or_default();
    let patch = StringTable::parse(patch, "patch").unwrap_or_default();
    StringTable::merged(&patch, &base)
}

/// The merged table (patch, then base) of a language.
pub fn table(lang: Lang) -> &'static StringTable {
    static JA: OnceLock<StringTable> = OnceLock::new();
    static EN: OnceLock<StringTable> = OnceLock::new();
    match lang {
        Lang::Ja => JA.get_or_init(|| build(brand::get().patch_ja, BASE_JA)),
        Lang::En => EN.get_or_init(|| build(brand::get().patch_en, BASE_EN)),
    }
}

/// The text of `key` in `lang` (English if that language lacks it, the key itself
/// if no table has it).
pub fn text_in(lang: Lang, key: &str) -> Cow<'static, str> {
    lookup_in(lang, key).unwrap_or_else(|| Cow::Owned(key.to_string()))
}

/// The text of `key` in `lang` (English if that language lacks it), `None` if
/// no table has it.
pub fn lookup_in(lang: Lang, key: &str) -> Option<Cow<'static, str>> {
    table(lang).get(key).or_else(|| table(Lang::En).get(key)).map(|t| brand::tokens().substitute(t))
}

/// The text of `key` in the user's language.
pub fn text(key: &str) -> Cow<'static, str> {
    text_in(language(), key)
}

/// The text of `key` with `{0}`, `{1}`... replaced by `args`.
pub fn fmt(key: &str, args: &[&dyn std::fmt::Display]) -> String {
    fmt_in(language(), key, args)
}

/// [`fmt`] in `lang`.
pub fn fmt_in(lang: Lang, key: &str, args: &[&dyn std::fmt::Display]) -> String {
    fill(&text_in(lang, key), args)
}

/// Replaces `{0}`, `{1}`... in `template`.
pub fn fill(template: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut s = template.to_string();
    for (i, a) in args.iter().enumerate() {
        s = s.replace(&format!("{{{i}}}"), &a.to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_keys_the_apps_use() {
        for key in [
            "THINCLIENT_CONNECTING",
            "ERR_WRONG_PASSWORD",
            "ERR_SERVER_OFFLINE",
            "ERR_UNKNOWN_PCID",
            "ERR_GATEWAY_UNREACHABLE",
            "ERR_CERT_UNTRUSTED",
            "ERR_CERT_EXPIRED",
            "ERR_LOCKED_OUT",
            "ERR_PCID_TAKEN",
            "ERR_REGISTER_DISABLED",
            "OTP_PROMPT",
            "PASSWORD_PROMPT",
            "LISTENING_ON",
        ] {
            assert!(table(Lang::Ja).get(key).is_some(), "ja {key}");
            assert!(table(Lang::En).get(key).is_some(), "en {key}");
        }
        assert_eq!(table(Lang::Ja).len(), table(Lang::En).len());
    }

    #[test]
    fn locale_brand_tokens_and_arguments() {
        assert_eq!(Lang::of_locale("ja_JP.UTF-8"), Lang::Ja);
        assert_eq!(Lang::of_locale("ja-JP"), Lang::Ja);
        assert_eq!(Lang::of_locale("C"), Lang::En);
        assert_eq!(fill(&text_in(Lang::En, "LISTENING_ON"), &[&"127.0.0.1:3500"]), "listening on 127.0.0.1:3500");
        assert!(text_in(Lang::En, "APP_TITLE_CLIENT").contains(brand::get().product_name));
        assert_eq!(text_in(Lang::En, "NO_SUCH_KEY"), "NO_SUCH_KEY");
        assert!(text_in(Lang::Ja, "ERR_WRONG_PASSWORD").contains("パスワード"));
    }

    #[test]
    fn the_patch_overrides_only_its_keys() {
        // The default brand's patch names APP_WELCOME only.
        let base = StringTable::parse(BASE_EN, "base").unwrap();
        let patch = StringTable::parse(brand::get().patch_en, "patch").unwrap();
        for key in patch.keys() {
            assert_eq!(table(Lang::En).get(key), patch.get(key));
        }
        assert_eq!(table(Lang::En).get("BUTTON_OK"), base.get("BUTTON_OK"));
    }
}
