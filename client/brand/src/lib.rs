//! Brand facts every crate agrees on: the default brand (`brand/default`),
//! the names derived from an AppId (Windows service, config folders), the
//! languages of the string tables and the brand tokens in their texts. The
//! builder writes them into installers and units; the apps use them at run
//! time (their build script too); both read them from here. No dependencies,
//! so a build script can use it cheaply.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// AppId of the default brand.
pub const DEFAULT_APP_ID: &str = "Private";
/// Product name of the default brand.
pub const DEFAULT_PRODUCT_NAME: &str = "Thin Telework";
/// Company of the default brand.
pub const DEFAULT_COMPANY: &str = "Thin Telework Project";
/// System name (`SYSTEM:` of the entry point) of the default brand.
pub const DEFAULT_SYSTEM_NAME: &str = "Thin Telework System";
/// Local RPC (admin) port of the default brand's server app.
pub const DEFAULT_RPC_PORT: u16 = 9826;

/// Windows service name of ThinServer for `app_id` (the installers register it
/// under this name, the app reports to the service manager under it).
pub fn service_name(app_id: &str) -> String {
    format!("{app_id}ThinServer")
}

/// Name of the per-user configuration folder of the apps
/// (`%APPDATA%\<this>`, `~/.config/<this>`).
pub fn user_config_dir_name(app_id: &str) -> String {
    format!("ThinTelework-{app_id}")
}

/// ThinServer's config folder on Windows, below `program_data`
/// (`C:\ProgramData\<AppId>\ThinServer`).
pub fn server_config_dir_windows(program_data: &Path, app_id: &str) -> PathBuf {
    program_data.join(app_id).join("ThinServer")
}

/// ThinServer's config folder elsewhere, below the home folder
/// (`~/.config/<appid>/thinsvr`).
pub fn server_config_dir_unix(home: &Path, app_id: &str) -> PathBuf {
    home.join(".config").join(app_id.to_lowercase()).join("thinsvr")
}

/// A language of the string tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Lang {
    /// Japanese.
    Ja,
    /// English.
    En,
}

impl Lang {
    /// Both languages, in table order.
    pub const ALL: [Lang; 2] = [Lang::Ja, Lang::En];

    /// `ja` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// Parses `ja` / `en`.
    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == s)
    }

    /// Maps a locale name (`ja_JP.UTF-8`, `ja-JP`, `en_US`, `C`) to a language.
    pub fn of_locale(locale: &str) -> Lang {
        if locale.trim().to_ascii_lowercase().starts_with("ja") {
            Lang::Ja
        } else {
            Lang::En
        }
    }
}

/// The brand's values for the tokens `%PRODUCT%`, `%SYSTEM%` and `%APPID%` in
/// a string-table text.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    /// `%PRODUCT%`.
    pub product_name: &'a str,
    /// `%SYSTEM%`.
    pub system_name: &'a str,
    /// `%APPID%`.
    pub app_id: &'a str,
}

impl Tokens<'_> {
    /// `text` with the brand tokens replaced (borrowed when it has none).
    pub fn substitute<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if !text.contains('%') {
            return Cow::Borrowed(text);
        }
        Cow::Owned(
            text.replace("%PRODUCT%", self.product_name)
                .replace("%SYSTEM%", self.system_name)
                .replace("%APPID%", self.app_id),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_languages_and_tokens() {
        assert_eq!(service_name("Mikaka"), "MikakaThinServer");
        assert_eq!(user_config_dir_name("Mikaka"), "ThinTelework-Mikaka");
        assert_eq!(server_config_dir_unix(Path::new("/h"), "Mikaka"), Path::new("/h/.config/mikaka/thinsvr"));
        assert_eq!(Lang::of_locale("ja_JP.UTF-8"), Lang::Ja);
        assert_eq!(Lang::of_locale("C"), Lang::En);
        assert_eq!(Lang::from_code("en"), Some(Lang::En));
        let t = Tokens { product_name: "P", system_name: "S", app_id: "A" };
        assert_eq!(t.substitute("%PRODUCT% on %SYSTEM% (%APPID%)"), "P on S (A)");
        assert!(matches!(t.substitute("plain"), Cow::Borrowed("plain")));
    }
}
