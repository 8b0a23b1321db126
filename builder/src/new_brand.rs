//! `builder new`: a new brand folder with its own CA and gateway certificate.

use crate::certs::issue;
use crate::error::{Error, IoContext, Problem, Problems, Result};
use crate::fsutil;
use crate::manifest::{fields, CertPaths, MANIFEST};
use std::path::{Path, PathBuf};

/// Options of `builder new`.
#[derive(Debug, Clone, Default)]
pub struct NewOptions {
    /// AppId (required).
    pub app_id: String,
    /// Folder; default `brands/<app id in lower case>`.
    pub dir: Option<PathBuf>,
    /// System name; default `<AppId> Telework System`.
    pub system_name: Option<String>,
    /// Gateway URL; default `https://gateway.example.org/thingate/`.
    pub gateway_url: Option<String>,
    /// RPC port; default derived from the AppId (10000-29999).
    pub rpc_port: Option<i64>,
    /// Also make a self-signed code-signing identity.
    pub self_signed_codesign: bool,
    /// Key type of the CA and gateway certificate.
    pub key_type: issue::KeyType,
}

/// What `new` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewReport {
    /// Brand folder.
    pub dir: PathBuf,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Chosen RPC port.
    pub rpc_port: u16,
    /// Environment variable and file of the test signing password, if made.
    pub codesign_password: Option<(String, PathBuf)>,
}

/// A port from 10000 to 29999 derived from the AppId, so brands rarely collide.
pub fn derived_port(app_id: &str) -> u16 {
    let h = app_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    10000 + (h % 20000) as u16
}

/// Makes the brand folder; refuses to touch an existing one.
pub fn run(o: &NewOptions) -> Result<NewReport> {
    let mut problems = Vec::new();
    let mut bad =
        |field: &str, (what, fix): fields::Bad| problems.push(Problem::field("command line", field, what, fix));
    let app_id = fields::app_id(&o.app_id).map_err(|b| bad("--app-id", b)).unwrap_or_default();
    let url_text = o.gateway_url.clone().unwrap_or_else(|| "https://gateway.example.org/thingate/".into());
    let url = fields::gateway_url(&url_text).map_err(|b| bad("--gateway-url", b)).ok();
    let rpc_port = match o.rpc_port {
        Some(p) => fields::rpc_port(p).map_err(|b| bad("--rpc-port", b)).unwrap_or_default(),
        None => derived_port(&o.app_id),
    };
    let system_name = o.system_name.clone().unwrap_or_else(|| format!("{} Telework System", o.app_id));
    let system_name =
        fields::display_text("--system-name", &system_name).map_err(|b| bad("--system-name", b)).unwrap_or_default();
    let dir = o.dir.clone().unwrap_or_else(|| Path::new("brands").join(o.app_id.to_ascii_lowercase()));
    if !problems.is_empty() {
        return Err(Error::Invalid { dir, problems: Problems(problems) });
    }
    if dir.join(MANIFEST).exists() || std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(Error::Exists(dir));
    }
    let url = url.expect("checked above");
    let default = crate::paths::default_brand_dir();
    let codesign_env = format!("THIN_CODESIGN_PASSWORD_{}", app_id.to_ascii_uppercase());
    let data = serde_json::json!({
        "app_id": app_id, "product_name": format!("{app_id} Telework"), "company": app_id,
        "system_name": system_name, "gateway_url": url_text, "rpc_port": rpc_port,
        "dir": dir.display().to_string(), "codesign": o.self_signed_codesign, "codesign_env": codesign_env,
    });
    let mut files = Vec::new();
    let manifest = dir.join(MANIFEST);
    fsutil::write_new(&manifest, crate::render::render(crate::render::BRAND_TOML, &data)?.as_bytes())?;
    files.push(manifest);
    for name in ["strtable_ja.patch.stb", "strtable_en.patch.stb"] {
        let data = std::fs::read(default.join(name)).at(default.join(name))?;
        fsutil::write_new(&dir.join(name), &data)?;
        files.push(dir.join(name));
    }
    files.extend(fsutil::copy_tree_new(&default.join("artwork"), &dir.join("artwork"))?);
    let certs = CertPaths {
        ca_cert: dir.join("certs/ca.cer"),
        ca_key: dir.join("certs/ca.key"),
        gateway_cert: dir.join("certs/ThinGate.cer"),
        gateway_key: dir.join("certs/ThinGate.key"),
    };
    files.extend(issue::write_new_ca(&certs, &system_name, std::slice::from_ref(&url.host), o.key_type)?.0);
    let codesign_password = if o.self_signed_codesign {
        let (made, pw_file) = crate::ca::make_codesign_identity(&dir.join("certs"), &app_id)?;
        files.extend(made);
        Some((codesign_env, pw_file))
    } else {
        None
    };
    Ok(NewReport { dir, files, rpc_port, codesign_password })
}

impl std::fmt::Display for NewReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "made the brand folder {}:", self.dir.display())?;
        for p in &self.files {
            writeln!(f, "  {}", p.display())?;
        }
        writeln!(
            f,
            "RPC port of the server app: {} (change rpc_port in brand.toml if another brand uses it)",
            self.rpc_port
        )?;
        if let Some((env, file)) = &self.codesign_password {
            writeln!(
                f,
                "test code-signing identity: before `build --sign`, run: export {env}=\"$(cat {})\"",
                file.display()
            )?;
        }
        writeln!(f, "next: edit {}/brand.toml (product_name, company, gateway_url), the string-table patches and artwork/*.bmp;", self.dir.display())?;
        writeln!(
            f,
            "      then `builder check --brand {0}` and `builder build --brand {0} --target all`.",
            self.dir.display()
        )?;
        write!(f, "keep certs/*.key private: they are written 0600 and must never be committed.")
    }
}
