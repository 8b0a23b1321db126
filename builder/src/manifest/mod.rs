//! The brand manifest (`brand.toml`): [`raw`] as written, [`Brand`] as checked.
//! Every field but `app_id` defaults to the value in `brand/default/brand.toml`.

pub mod fields;
pub mod raw;

use crate::error::Problem;
use raw::{line_of, Field, RawManifest};
use std::path::{Path, PathBuf};
use thin_protocol::entry_point::GatewayUrl;

/// File name of the manifest inside a brand folder.
pub const MANIFEST: &str = "brand.toml";

pub use thin_brand::Lang;

/// Certificate and key files of a brand.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertPaths {
    /// CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// CA key (PEM, 0600).
    pub ca_key: PathBuf,
    /// Gateway certificate (PEM).
    pub gateway_cert: PathBuf,
    /// Gateway key (PEM, 0600).
    pub gateway_key: PathBuf,
}

/// A code-signing identity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Codesign {
    /// PKCS#12 file.
    pub pkcs12: PathBuf,
    /// Environment variable holding its password.
    pub password_env: String,
    /// Certificate to verify against (PEM), if given.
    pub cert: Option<PathBuf>,
}

/// A resolved brand: every field present and individually valid.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Brand {
    /// Brand folder.
    pub dir: PathBuf,
    /// AppId.
    pub app_id: String,
    /// Product name.
    pub product_name: String,
    /// Company.
    pub company: String,
    /// System name.
    pub system_name: String,
    /// Version text and numbers.
    pub version: String,
    /// Version as numbers.
    pub version_parts: [u16; 3],
    /// Gateway URL as written.
    pub gateway_url: String,
    /// Parsed gateway URL.
    #[serde(skip)]
    pub url: Option<GatewayUrl>,
    /// Local RPC port of the server app.
    pub rpc_port: u16,
    /// Languages.
    pub languages: Vec<Lang>,
    /// Patch file per language.
    pub strings: Vec<(Lang, PathBuf)>,
    /// Artwork folder.
    pub artwork_dir: PathBuf,
    /// Certificates.
    pub certs: CertPaths,
    /// Code signing, if configured.
    pub codesign: Option<Codesign>,
}

/// Reads `brand.toml` of `dir`; `cert_dir` overrides where certificates live
/// (the default brand keeps them in `.brand-cache/`). Returns the brand (with
/// defaults standing in for bad fields) and every problem found.
pub fn load(dir: &Path, cert_dir: Option<&Path>) -> (Brand, Vec<Problem>) {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, dir, cert_dir),
        Err(e) => {
            // When the file cannot be read, that is the only problem reported.
            let problem = Problem::file(
                MANIFEST,
                format!("cannot read {}: {e}", path.display()),
                "run `builder new --app-id ID` to make a brand folder, or pass --brand DIR",
            );
            (parse("", dir, cert_dir).0, vec![problem])
        }
    }
}

/// Checks the text of the `brand.toml` of the brand folder `dir`, as [`load`]
/// does after reading it (brand-relative files are looked up, not read).
pub fn parse(text: &str, dir: &Path, cert_dir: Option<&Path>) -> (Brand, Vec<Problem>) {
    let default_dir = crate::paths::default_brand_dir();
    let default_text = std::fs::read_to_string(default_dir.join(MANIFEST)).unwrap_or_default();
    let default: RawManifest = toml::from_str(&default_text).unwrap_or_default();
    let mut problems = Vec::new();
    let raw: RawManifest = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            let msg = e.message().trim().replace('\n', "; ");
            problems.push(
                Problem::file(
                    MANIFEST,
                    format!("not valid TOML: {msg}"),
                    "fix the syntax; keys are listed in brand/default/brand.toml",
                )
                .at_line(line),
            );
            RawManifest::default()
        }
    };
    // When the file cannot be parsed, that is the only problem reported.
    let unreadable = problems.len();
    let r = Resolver { text, problems: &mut problems };
    let brand = resolve(r, &raw, &default, dir, &default_dir, cert_dir);
    if unreadable > 0 {
        problems.truncate(unreadable);
    }
    (brand, problems)
}

struct Resolver<'a> {
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Resolver<'_> {
    /// Applies `check` to the user's value (or the default), reporting problems
    /// at the user's line; falls back to `fallback` when the value is bad.
    fn field<T: Clone, U>(
        &mut self,
        name: &str,
        v: &Field<T>,
        d: &Field<T>,
        fallback: U,
        check: impl Fn(&T) -> Result<U, fields::Bad>,
    ) -> U {
        let (val, line) = match (v, d) {
            (Some(s), _) => (s.get_ref().clone(), Some(line_of(self.text, s.span().start))),
            (None, Some(s)) => (s.get_ref().clone(), None),
            (None, None) => return fallback,
        };
        match check(&val) {
            Ok(u) => u,
            Err((what, fix)) => {
                self.problems.push(Problem::field(MANIFEST, name, what, fix).at_line(line));
                fallback
            }
        }
    }
}

fn text(v: &Field<String>) -> Option<String> {
    v.as_ref().map(|s| s.get_ref().clone())
}

/// A brand-relative file: the user's value, else the default name in the
/// brand folder, else the default brand's file.
fn brand_file(dir: &Path, default_dir: &Path, v: &Field<String>, d: &Field<String>, name: &str) -> PathBuf {
    if let Some(p) = text(v) {
        return dir.join(p);
    }
    let rel = text(d).unwrap_or_else(|| name.to_string());
    let own = dir.join(&rel);
    if own.exists() {
        own
    } else {
        default_dir.join(rel)
    }
}

fn resolve(
    mut r: Resolver,
    raw: &RawManifest,
    d: &RawManifest,
    dir: &Path,
    default_dir: &Path,
    cert_dir: Option<&Path>,
) -> Brand {
    let app_id = match &raw.app_id {
        Some(_) => r.field("app_id", &raw.app_id, &None, "Invalid".to_string(), |v| fields::app_id(v)),
        None => {
            r.problems.push(Problem::field(
                MANIFEST,
                "app_id",
                "app_id is missing (it has no default)",
                "add app_id = \"YourId\" (1 to 8 ASCII letters or digits)",
            ));
            "Invalid".to_string()
        }
    };
    let product_name =
        r.field("product_name", &raw.product_name, &d.product_name, thin_brand::DEFAULT_PRODUCT_NAME.into(), |v| {
            fields::display_text("product_name", v)
        });
    let company =
        r.field("company", &raw.company, &d.company, "Company".into(), |v| fields::display_text("company", v));
    let system_name =
        r.field("system_name", &raw.system_name, &d.system_name, thin_brand::DEFAULT_SYSTEM_NAME.into(), |v| {
            fields::display_text("system_name", v)
        });
    let version_parts = r.field("version", &raw.version, &d.version, [1, 0, 0], |v| fields::version(v));
    let url = r.field("gateway_url", &raw.gateway_url, &d.gateway_url, None, |v| {
        fields::gateway_url(v).map(|u| Some((u, v.clone())))
    });
    let rpc_port =
        r.field("rpc_port", &raw.rpc_port, &d.rpc_port, thin_brand::DEFAULT_RPC_PORT, |v| fields::rpc_port(*v));
    let languages = r.field("languages", &raw.languages, &d.languages, Lang::ALL.to_vec(), |v| fields::languages(v));
    let strings = Lang::ALL
        .into_iter()
        .map(|l| {
            let (v, dv) = match l {
                Lang::Ja => (&raw.strings.ja, &d.strings.ja),
                Lang::En => (&raw.strings.en, &d.strings.en),
            };
            (l, brand_file(dir, default_dir, v, dv, &format!("strtable_{}.patch.stb", l.code())))
        })
        .collect();
    let artwork_dir = brand_file(dir, default_dir, &raw.artwork.dir, &d.artwork.dir, "artwork");
    let cbase = cert_dir.unwrap_or(dir);
    let cert = |v: &Field<String>, dv: &Field<String>, name: &str| {
        cbase.join(text(v).or_else(|| text(dv)).unwrap_or_else(|| name.into()))
    };
    let c = &raw.certs;
    let certs = CertPaths {
        ca_cert: cert(&c.ca_cert, &d.certs.ca_cert, "certs/ca.cer"),
        ca_key: cert(&c.ca_key, &d.certs.ca_key, "certs/ca.key"),
        gateway_cert: cert(&c.gateway_cert, &d.certs.gateway_cert, "certs/ThinGate.cer"),
        gateway_key: cert(&c.gateway_key, &d.certs.gateway_key, "certs/ThinGate.key"),
    };
    let codesign = raw.codesign.as_ref().map(|cs| Codesign {
        pkcs12: dir.join(text(&cs.pkcs12).unwrap_or_else(|| "certs/codesign.p12".into())),
        password_env: r.field("codesign.password_env", &cs.password_env, &None, "THIN_CODESIGN_PASSWORD".into(), |v| {
            fields::env_name(v)
        }),
        cert: text(&cs.cert).map(|p| dir.join(p)),
    });
    let version = format!("{}.{}.{}", version_parts[0], version_parts[1], version_parts[2]);
    let (url, gateway_url) = match url {
        Some((u, text)) => (Some(u), text),
        None => (None, String::new()),
    };
    if url.is_none() && raw.gateway_url.is_none() && d.gateway_url.is_none() {
        r.problems.push(Problem::field(
            MANIFEST,
            "gateway_url",
            "gateway_url is missing",
            "add gateway_url = \"https://gw.example.org/thingate/\"",
        ));
    }
    Brand {
        dir: dir.to_path_buf(),
        app_id,
        product_name,
        company,
        system_name,
        version,
        version_parts,
        gateway_url,
        url,
        rpc_port,
        languages,
        strings,
        artwork_dir,
        certs,
        codesign,
    }
}
