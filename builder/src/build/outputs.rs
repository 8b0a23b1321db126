//! `SHA256SUMS` and `build-manifest.json`.

use crate::error::{IoContext, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One output file.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// File name (inside the output folder).
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Hashes a file.
pub fn describe(path: &Path) -> Result<Output> {
    use sha2::{Digest, Sha256};
    let data = std::fs::read(path).at(path)?;
    Ok(Output {
        name: path.file_name().unwrap_or_default().to_string_lossy().into(),
        path: path.to_path_buf(),
        sha256: hex::encode(Sha256::digest(&data)),
        size: data.len() as u64,
    })
}

/// Writes `SHA256SUMS` (sha256sum format, sorted by name).
pub fn write_sums(out: &Path, outputs: &[Output]) -> Result<PathBuf> {
    let mut v: Vec<&Output> = outputs.iter().collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    let text: String = v.iter().map(|o| format!("{}  {}\n", o.sha256, o.name)).collect();
    let path = out.join("SHA256SUMS");
    std::fs::write(&path, text).at(&path)?;
    Ok(path)
}

/// Versions of the tools a build used.
pub fn tool_versions() -> serde_json::Value {
    use crate::doctor::tool_version as tv;
    serde_json::json!({
        "rustc": tv("rustc", &["--version"]),
        "cargo": tv("cargo", &["--version"]),
        "x86_64-w64-mingw32-gcc": tv("x86_64-w64-mingw32-gcc", &["--version"]),
        "cargo-zigbuild": tv("cargo-zigbuild", &["--version"]),
        "zig": tv("zig", &["version"]),
        "makensis": tv("makensis", &["-VERSION"]),
        "wixl": tv("wixl", &["--version"]),
        "osslsigncode": tv("osslsigncode", &["--version"]),
        "builder": env!("CARGO_PKG_VERSION"),
    })
}
