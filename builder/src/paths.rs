//! Where things are: the workspace the builder compiles, the default brand, the
//! git-ignored cache holding the default brand's CA.

use std::path::{Path, PathBuf};

/// The workspace root: `THIN_WORKSPACE` if set, else the checkout the builder was
/// compiled from.
pub fn workspace_root() -> PathBuf {
    if let Some(p) = std::env::var_os("THIN_WORKSPACE") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("builder/ has a parent").to_path_buf()
}

/// The embedded default brand (`brand/default`, AppId `Private`).
pub fn default_brand_dir() -> PathBuf {
    workspace_root().join("brand").join("default")
}

/// The git-ignored folder where the default brand's CA, gateway certificate and
/// keys are created on first use (`.brand-cache/default/certs`).
pub fn default_brand_cert_dir() -> PathBuf {
    workspace_root().join(".brand-cache").join("default")
}

/// Whether `dir` is the embedded default brand.
pub fn is_default_brand(dir: &Path) -> bool {
    match (dir.canonicalize(), default_brand_dir().canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `path` relative to `base` when under it, else as given (for messages).
pub fn shown(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}
