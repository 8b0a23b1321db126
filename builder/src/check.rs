//! `builder check`: every problem of a brand at once.

use crate::error::{Error, Problem, Problems, Result};
use crate::manifest::{self, Brand};
use crate::paths;
use std::path::{Path, PathBuf};

/// Which brand to work on.
#[derive(Debug, Clone)]
pub struct BrandRef {
    /// Brand folder.
    pub dir: PathBuf,
    /// Where its certificates live, when not in the brand folder (the default brand).
    pub cert_dir: Option<PathBuf>,
}

impl BrandRef {
    /// `--brand DIR`, or the embedded default brand with its certificates in
    /// `.brand-cache/default/`.
    pub fn from_arg(dir: Option<&Path>) -> Self {
        match dir {
            Some(d) if !paths::is_default_brand(d) => Self { dir: d.to_path_buf(), cert_dir: None },
            _ => Self { dir: paths::default_brand_dir(), cert_dir: Some(paths::default_brand_cert_dir()) },
        }
    }

    /// Whether this is the embedded default brand.
    pub fn is_default(&self) -> bool {
        self.cert_dir.is_some()
    }

    /// Loads the manifest only (no file checks).
    pub fn manifest(&self) -> (Brand, Vec<Problem>) {
        manifest::load(&self.dir, self.cert_dir.as_deref())
    }
}

/// Creates the default brand's CA and gateway certificate on first use.
pub fn ensure_default_certs(b: &BrandRef) -> Result<Option<PathBuf>> {
    if !b.is_default() {
        return Ok(None);
    }
    let (brand, _) = b.manifest();
    if brand.certs.ca_cert.exists() {
        return Ok(None);
    }
    let host = brand.url.as_ref().map(|u| u.host.clone()).unwrap_or_else(|| "127.0.0.1".into());
    let mut hosts = vec![host];
    for extra in ["localhost", "127.0.0.1"] {
        if !hosts.iter().any(|h| h == extra) {
            hosts.push(extra.into());
        }
    }
    crate::certs::issue::write_new_ca(&brand.certs, &brand.system_name, &hosts, Default::default())?;
    Ok(b.cert_dir.clone())
}

/// Runs every check; returns the brand when there is no problem.
pub fn check(b: &BrandRef) -> Result<Brand> {
    ensure_default_certs(b)?;
    let (brand, mut problems) = b.manifest();
    // A manifest that cannot be read or parsed: its own problem is the only one worth showing.
    if problems.iter().any(|p| p.file == manifest::MANIFEST && p.field.is_none()) {
        return Err(Error::Invalid { dir: b.dir.clone(), problems: Problems(problems) });
    }
    let base = b.cert_dir.as_deref().unwrap_or(&b.dir);
    let host = brand.url.as_ref().map(|u| u.host.as_str());
    problems.extend(crate::certs::check::check(&brand.certs, host, base));
    for (lang, path) in &brand.strings {
        if brand.languages.contains(lang) {
            let shown = shown(path, &b.dir);
            problems.extend(crate::strtables::check_patch(*lang, path, &shown));
        }
    }
    problems.extend(crate::artwork::check(&brand.artwork_dir, &shown(&brand.artwork_dir, &b.dir)));
    if let Some(cs) = &brand.codesign {
        if !cs.pkcs12.is_file() {
            problems.push(Problem::field(&shown(&cs.pkcs12, &b.dir), "codesign.pkcs12", "the PKCS#12 file does not exist", "give the path of your code-signing .p12, or make a test identity with `builder new --self-signed-codesign`"));
        }
    }
    if problems.is_empty() {
        Ok(brand)
    } else {
        Err(Error::Invalid { dir: b.dir.clone(), problems: Problems(problems) })
    }
}

/// A path as shown in messages: relative to the brand folder, or to the
/// workspace for the default brand's files.
fn shown(p: &Path, brand_dir: &Path) -> String {
    if p.starts_with(brand_dir) {
        return paths::shown(p, brand_dir);
    }
    paths::shown(p, &paths::workspace_root())
}
