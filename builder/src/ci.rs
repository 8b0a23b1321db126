//! `builder ci init --github|--gitlab`: a pipeline for a brand repository
//! around one script, `ci/build-brand.sh`, that does the work: it takes the
//! keys from CI secrets (environment variables) into a private folder outside
//! the checkout, runs `builder check` and `builder build`, verifies
//! `SHA256SUMS` and keeps the outputs as artifacts; the keys are removed
//! however the script ends and never printed. The pipeline adds the
//! prerequisites, the builder (from its source at a fixed commit) and a cache of
//! the builder's cargo target folder.

use crate::check::BrandRef;
use crate::doctor::{Need, PREREQS};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use std::path::{Path, PathBuf};

/// Which CI system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ci {
    /// GitHub Actions: `.github/workflows/brand.yml`.
    Github,
    /// GitLab CI: `.gitlab-ci.yml`.
    Gitlab,
}

/// The script every pipeline runs, relative to the repository root.
pub const SCRIPT: &str = "ci/build-brand.sh";

/// Options of `builder ci init`.
#[derive(Debug, Clone)]
pub struct CiOptions {
    /// Which CI system.
    pub ci: Ci,
    /// The brand.
    pub brand: BrandRef,
    /// Root of the brand repository [default: the current folder].
    pub repo: PathBuf,
    /// Git URL of the builder's source.
    pub source_url: String,
    /// Commit (or tag) of the builder's source.
    pub source_ref: String,
}

/// What `ci init` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CiReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The secrets the pipeline reads, to set in the CI system.
    pub secrets: Vec<String>,
    /// Where the pipeline gets the builder: Git URL and commit.
    pub source: (String, String),
}

impl std::fmt::Display for CiReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.files {
            writeln!(f, "wrote {}", p.display())?;
        }
        writeln!(f, "set these secrets in the CI system (never commit the keys):")?;
        for s in &self.secrets {
            writeln!(f, "  {s}")?;
        }
        writeln!(
            f,
            "the pipeline builds the builder from {} at {} (THIN_SOURCE_URL and THIN_SOURCE_REF in the pipeline: point them at your copy)",
            self.source.0, self.source.1
        )?;
        write!(f, "the pipeline runs {SCRIPT}; run it yourself with the same variables to try it")
    }
}

fn rel(p: &Path, base: &Path) -> Result<String> {
    let r = p.strip_prefix(base).map_err(|_| {
        Error::Usage(format!(
            "{} is outside the brand folder {}; keep the brand's files inside it",
            p.display(),
            base.display()
        ))
    })?;
    let s = r.to_string_lossy().into_owned();
    if s.contains(['"', '\'', '`', '$', '\\', '\n', ' ']) {
        return Err(Error::Usage(format!("{s}: rename it without quotes, spaces, $ or backslashes")));
    }
    Ok(s)
}

/// Writes the script and the pipeline; never replaces an existing file.
pub fn init(o: &CiOptions) -> Result<CiReport> {
    for (what, v) in [("--source-url", &o.source_url), ("--source-ref", &o.source_ref)] {
        if v.is_empty() || v.contains(|c: char| c.is_whitespace() || "\"'`$\\".contains(c)) {
            return Err(Error::Usage(format!("{what} {v:?}: give a Git URL and a commit without spaces or quotes")));
        }
    }
    // The manifest only: a brand repository holds no keys (they are CI secrets).
    let (brand, problems) = o.brand.manifest();
    if !problems.is_empty() {
        return Err(Error::Invalid { dir: o.brand.dir.clone(), problems: crate::error::Problems(problems) });
    }
    if o.brand.is_default() {
        return Err(Error::Usage(
            "ci init needs your brand (the embedded default brand has no repository): make one with `builder new --app-id NAME`, then give --brand".into(),
        ));
    }
    let repo = std::path::absolute(&o.repo).map_err(|e| Error::Io { path: o.repo.clone(), source: e })?;
    let dir = std::path::absolute(&o.brand.dir).map_err(|e| Error::Io { path: o.brand.dir.clone(), source: e })?;
    let brand_dir = match dir.strip_prefix(&repo) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_string(),
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => {
            return Err(Error::Usage(format!(
                "the brand {} is not inside the repository {}; give --repo (the repository root) or --brand",
                dir.display(),
                repo.display()
            )))
        }
    };
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let c = &brand.certs;
    let codesign = brand.codesign.as_ref();
    let mut apt: Vec<&str> = PREREQS.iter().filter(|p| p.need != Need::Tests).filter_map(|p| p.apt).collect();
    // zig's venv (doctor's `zig`).
    apt.extend(["python3", "python3-venv"]);
    let targets: Vec<&str> = PREREQS.iter().filter(|p| p.rust_target).map(|p| p.name).collect();
    let data = serde_json::json!({
        "app_id": brand.app_id,
        "brand_dir": brand_dir,
        "gateway_key": rel(&abs(&c.gateway_key), &dir)?,
        "ca_key": rel(&abs(&c.ca_key), &dir)?,
        "ca_cert": rel(&abs(&c.ca_cert), &dir)?,
        "codesign": codesign.is_some(),
        "pkcs12": codesign.map(|cs| rel(&abs(&cs.pkcs12), &dir)).transpose()?.unwrap_or_default(),
        "password_env": codesign.map(|cs| cs.password_env.clone()).unwrap_or_default(),
        "source_url": o.source_url,
        "source_ref": o.source_ref,
        "apt_packages": apt.join(" "),
        "rust_targets": targets.join(" "),
    });
    let (pipeline, template) = match o.ci {
        Ci::Github => (repo.join(".github/workflows/brand.yml"), crate::render::CI_GITHUB),
        Ci::Gitlab => (repo.join(".gitlab-ci.yml"), crate::render::CI_GITLAB),
    };
    let script = repo.join(SCRIPT);
    let script_text = crate::render::render(crate::render::CI_SCRIPT, &data)?;
    // The script is shared by both pipelines: an identical one is kept.
    let same_script = std::fs::read(&script).ok().as_deref() == Some(script_text.as_bytes());
    for p in [&pipeline, &script] {
        if p.exists() && !(p == &script && same_script) {
            return Err(Error::Exists(p.clone()));
        }
    }
    let mut files = Vec::new();
    if !same_script {
        let ci_dir = script.parent().expect("ci/build-brand.sh has a folder");
        std::fs::create_dir_all(ci_dir).at(ci_dir)?;
        fsutil::write_atomic(&script, 0o755, false, |f| {
            use std::io::Write;
            f.write_all(script_text.as_bytes())
        })?;
        files.push(script);
    }
    fsutil::write_new(&pipeline, crate::render::render(template, &data)?.as_bytes())?;
    files.push(pipeline);
    let mut secrets = vec![
        format!("THIN_GATEWAY_KEY_BASE64: base64 -w0 {}", c.gateway_key.display()),
        format!("THIN_CA_KEY_BASE64 (optional): base64 -w0 {}", c.ca_key.display()),
    ];
    if let Some(cs) = codesign {
        secrets
            .push(format!("THIN_CODESIGN_P12_BASE64 (optional, signs the build): base64 -w0 {}", cs.pkcs12.display()));
        secrets.push(format!("{}: the PKCS#12 password", cs.password_env));
    }
    Ok(CiReport { files, secrets, source: (o.source_url.clone(), o.source_ref.clone()) })
}
