//! The brand the running app carries. The apps (`client/apps`) compile their
//! brand in (`builder build` sets `THIN_BRAND_DIR` for their build script) and
//! hand it over with [`set`] first thing in `main`; the library itself holds no
//! brand, so a rebrand recompiles only the two small app crates. Without
//! [`set`] (tests, plain library use) the default brand (AppId `Private`, no
//! entry point) applies.

use std::sync::OnceLock;

use thin_brand as facts;

/// Everything a brand compiles into the apps.
#[derive(Debug)]
pub struct Brand {
    /// AppId (1-8 letters or digits).
    pub app_id: &'static str,
    /// Product name.
    pub product_name: &'static str,
    /// Company.
    pub company: &'static str,
    /// System name (`SYSTEM:` of the entry point).
    pub system_name: &'static str,
    /// Brand version.
    pub version: &'static str,
    /// Build number `builder build` gave this build (0 when built without the builder).
    pub build: u32,
    /// Local RPC (admin) port of the server app.
    pub rpc_port: u16,
    /// Compiled-in `EntryPoint.dat` text.
    pub entry_point: Option<&'static str>,
    /// Japanese string-table patch.
    pub patch_ja: &'static str,
    /// English string-table patch.
    pub patch_en: &'static str,
    /// Header artwork (BMP, 150x57).
    pub header_bmp: &'static [u8],
    /// Icon artwork (BMP, 32x32).
    pub icon_bmp: &'static [u8],
}

/// The default brand (`brand/default`), without an entry point.
pub static DEFAULT: Brand = Brand {
    app_id: facts::DEFAULT_APP_ID,
    product_name: facts::DEFAULT_PRODUCT_NAME,
    company: facts::DEFAULT_COMPANY,
    system_name: facts::DEFAULT_SYSTEM_NAME,
    version: env!("CARGO_PKG_VERSION"),
    build: 0,
    rpc_port: facts::DEFAULT_RPC_PORT,
    entry_point: None,
    patch_ja: include_str!("../../../brand/default/strtable_ja.patch.stb"),
    patch_en: include_str!("../../../brand/default/strtable_en.patch.stb"),
    header_bmp: include_bytes!("../../../brand/default/artwork/header.bmp"),
    icon_bmp: include_bytes!("../../../brand/default/artwork/icon.bmp"),
};

static CURRENT: OnceLock<&'static Brand> = OnceLock::new();

/// Makes `b` the brand of this process; call it before anything else. A second
/// call keeps the first brand and returns false.
pub fn set(b: &'static Brand) -> bool {
    CURRENT.set(b).is_ok()
}

/// The brand of this process.
pub fn get() -> &'static Brand {
    CURRENT.get().copied().unwrap_or(&DEFAULT)
}

/// Windows service name of ThinServer (the installers register it under this name).
pub fn service_name() -> String {
    facts::service_name(get().app_id)
}

/// Name of the per-user configuration folder (`%APPDATA%\<this>`, `~/.config/<this>`).
pub fn config_dir_name() -> String {
    facts::user_config_dir_name(get().app_id)
}

/// The brand's values for the tokens in string-table texts.
pub fn tokens() -> facts::Tokens<'static> {
    let b = get();
    facts::Tokens { product_name: b.product_name, system_name: b.system_name, app_id: b.app_id }
}
