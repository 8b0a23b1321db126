//! Which brand a command works on when `--brand` is not given: the only brand
//! under `brands/` (where `builder new` puts them), else the embedded default
//! brand when there is none; with several, the command asks for `--brand`.

use crate::check::BrandRef;
use crate::error::{Error, Result};
use crate::manifest::MANIFEST;
use std::path::{Path, PathBuf};

/// The folder under the current directory that `builder new` writes brands to.
pub const BRANDS: &str = "brands";

/// A brand chosen for a command, and the sentence that says why.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The brand.
    pub brand: BrandRef,
    /// Why this one (printed on standard error), when `--brand` was not given.
    pub note: Option<String>,
}

/// The brand folders under `cwd/brands/`: sub-folders holding a `brand.toml`, sorted.
pub fn brands_under(cwd: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(cwd.join(BRANDS)) else { return Vec::new() };
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join(MANIFEST).is_file())
        .map(|p| Path::new(BRANDS).join(p.file_name().expect("a folder entry has a name")))
        .collect();
    found.sort();
    found
}

/// `--brand DIR` as given; without it, the only brand under `cwd/brands/`, or
/// the embedded default brand when there is none. Several brands: an error
/// that lists them.
pub fn choose(arg: Option<&Path>, cwd: &Path) -> Result<Choice> {
    if let Some(dir) = arg {
        return Ok(Choice { brand: BrandRef::from_arg(Some(dir)), note: None });
    }
    let found = brands_under(cwd);
    match found.as_slice() {
        [] => Ok(Choice {
            brand: BrandRef::from_arg(None),
            note: Some(format!(
                "no brand under {BRANDS}/: using the embedded default brand (AppId Private); make yours with `builder new --app-id NAME`"
            )),
        }),
        [one] => Ok(Choice {
            brand: BrandRef::from_arg(Some(&cwd.join(one))),
            note: Some(format!("using the brand in {} (the only one under {BRANDS}/)", one.display())),
        }),
        several => {
            let list: Vec<String> = several.iter().map(|p| p.display().to_string()).collect();
            Err(Error::Usage(format!(
                "there are {} brands under {BRANDS}/: {}; say which with --brand, e.g. --brand {}",
                several.len(),
                list.join(", "),
                list[0]
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand(root: &Path, name: &str) {
        std::fs::create_dir_all(root.join(BRANDS).join(name)).unwrap();
        std::fs::write(root.join(BRANDS).join(name).join(MANIFEST), "app_id = \"X\"\n").unwrap();
    }

    #[test]
    fn none_one_several() {
        let d = tempfile::tempdir().unwrap();
        let c = choose(None, d.path()).unwrap();
        assert!(c.brand.is_default() && c.note.unwrap().contains("embedded default"));
        // A folder without a manifest is not a brand.
        std::fs::create_dir_all(d.path().join("brands/empty")).unwrap();
        assert!(choose(None, d.path()).unwrap().brand.is_default());
        brand(d.path(), "mikaka");
        let c = choose(None, d.path()).unwrap();
        assert_eq!(c.brand.dir, d.path().join("brands/mikaka"));
        assert!(c.note.unwrap().contains("brands/mikaka (the only one"));
        brand(d.path(), "acme");
        let e = choose(None, d.path()).unwrap_err().to_string();
        assert!(e.contains("brands/acme, brands/mikaka") && e.contains("--brand"), "{e}");
        let given = choose(Some(Path::new("brands/acme")), d.path()).unwrap();
        assert_eq!(given.brand.dir, Path::new("brands/acme"));
        assert!(given.note.is_none());
    }
}
