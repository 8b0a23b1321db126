//! The brand compiled into this build (see `build.rs`): `builder build` sets
//! `THIN_BRAND_DIR`; plain `cargo build` gets the default brand (AppId `Private`)
//! without an entry point.
include!(concat!(env!("OUT_DIR"), "/brand_gen.rs"));

/// Windows service name of ThinServer (the installers register it under this name).
pub fn service_name() -> String {
    format!("{APP_ID}ThinServer")
}

/// Registry key of the brand under `HKLM` (install folder, version, RPC port).
pub fn registry_key() -> String {
    format!("Software\\{APP_ID}")
}

/// Name of the per-user/per-machine configuration folder (`%APPDATA%\<this>`, `~/.config/<this>`).
pub fn config_dir_name() -> String {
    format!("ThinTelework-{APP_ID}")
}

/// Name of a named mutex or lock for `what` (`client`, `server`), unique per brand.
pub fn mutex_name(what: &str) -> String {
    format!("Local\\ThinTelework_{APP_ID}_{what}")
}

/// Installer header artwork (BMP, 150x57).
pub const HEADER_BMP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/header.bmp"));

/// App icon artwork (BMP, 32x32).
pub const ICON_BMP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/icon.bmp"));
