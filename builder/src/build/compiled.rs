//! The "compiled brand" folder handed to the client crate's `build.rs` through
//! `THIN_BRAND_DIR`, and the variables every template sees.

use crate::error::{IoContext, Result};
use crate::manifest::{Brand, Lang};
use crate::render;
use serde::Serialize;
use std::path::{Path, PathBuf};
use thin_protocol::stb::StringTable;

/// Arguments the Windows service starts `thinsvr.exe` with.
pub const SERVICE_ARGS: &str = "service";

/// Template variables derived from a brand.
#[derive(Debug, Clone, Serialize)]
pub struct Vars {
    /// AppId.
    pub app_id: String,
    /// AppId in lower case (Linux file names).
    pub app_id_lower: String,
    /// Product name.
    pub product_name: String,
    /// Company.
    pub company: String,
    /// System name.
    pub system_name: String,
    /// `major.minor.patch`.
    pub version: String,
    /// Build number (see `super::number`).
    pub build: u32,
    /// `major.minor.patch.build`: Windows version resources and the NSIS setup.
    pub file_version: String,
    /// `major.minor.build`: the MSI ProductVersion (see `super::number::msi_version`).
    pub msi_version: String,
    /// RPC port.
    pub rpc_port: u16,
    /// Gateway URL.
    pub gateway_url: String,
    /// Gateway TCP port (ThinGate.ini `ListenPort`).
    pub listen_port: u16,
    /// Windows service name of ThinServer.
    pub service_name: String,
    /// Service arguments.
    pub service_args: &'static str,
    /// Client title (from the English string table, patch applied).
    pub client_title: String,
    /// Server title.
    pub server_title: String,
    /// Linux install folder of the gateway.
    pub install_dir: String,
    /// Linux system user (and group) the gateway runs as.
    pub gate_user: String,
    /// Linux state folder of the gateway (systemd `StateDirectory`, the machine database).
    pub gate_state_dir: String,
    /// Linux install folder of the office-PC apps.
    pub apps_dir: String,
    /// Linux config folder of the office-PC service (systemd `StateDirectory`).
    pub apps_state_dir: String,
    /// Linux system user (and group) the office-PC service runs as.
    pub apps_user: String,
    /// MSI UpgradeCode (UUIDv5 of the AppId).
    pub upgrade_code: String,
    /// MSI component GUIDs.
    pub guid_client: String,
    /// MSI component GUID.
    pub guid_server: String,
    /// MSI component GUID.
    pub guid_registry: String,
    /// MSI component GUID.
    pub guid_shortcuts: String,
}

/// A stable GUID for `what` of `app_id` (UUIDv5 in the builder's namespace).
pub fn brand_guid(app_id: &str, what: &str) -> String {
    let ns = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, b"builder.thintelework.invalid");
    uuid::Uuid::new_v5(&ns, format!("{what}:{app_id}").as_bytes()).to_string().to_uppercase()
}

/// The merged table of a language: the brand's patch, then the base table.
pub fn merged_table(brand: &Brand, lang: Lang) -> StringTable {
    let base = crate::strtables::base(lang);
    let patch = brand
        .strings
        .iter()
        .find(|(l, _)| *l == lang)
        .and_then(|(_, p)| std::fs::read_to_string(p).ok())
        .and_then(|t| StringTable::parse(&t, "patch").ok())
        .unwrap_or_default();
    StringTable::merged(&patch, &base)
}

impl Vars {
    /// Variables of a checked brand at build number `build`.
    pub fn new(b: &Brand, build: u32) -> Self {
        let en = merged_table(b, Lang::En);
        let tokens =
            thin_brand::Tokens { product_name: &b.product_name, system_name: &b.system_name, app_id: &b.app_id };
        let title = |k: &str| tokens.substitute(en.get(k).unwrap_or(k)).into_owned();
        let g = |w: &str| brand_guid(&b.app_id, w);
        Vars {
            app_id: b.app_id.clone(),
            app_id_lower: b.app_id.to_ascii_lowercase(),
            product_name: b.product_name.clone(),
            company: b.company.clone(),
            system_name: b.system_name.clone(),
            version: b.version.clone(),
            build,
            file_version: super::number::file_version(b.version_parts, build),
            msi_version: super::number::msi_version(b.version_parts, build),
            rpc_port: b.rpc_port,
            gateway_url: b.gateway_url.clone(),
            listen_port: b.url.as_ref().map(|u| u.port).unwrap_or(443),
            service_name: thin_brand::service_name(&b.app_id),
            service_args: SERVICE_ARGS,
            client_title: title("APP_TITLE_CLIENT"),
            server_title: title("APP_TITLE_SERVER"),
            install_dir: format!("/opt/thingate-{}", b.app_id.to_ascii_lowercase()),
            gate_user: format!("thingate-{}", b.app_id.to_ascii_lowercase()),
            gate_state_dir: format!("/var/lib/thingate-{}", b.app_id.to_ascii_lowercase()),
            apps_dir: format!("/opt/thinapps-{}", b.app_id.to_ascii_lowercase()),
            apps_state_dir: format!("/var/lib/thinapps-{}", b.app_id.to_ascii_lowercase()),
            apps_user: format!("thinsvr-{}", b.app_id.to_ascii_lowercase()),
            upgrade_code: g("upgrade"),
            guid_client: g("client"),
            guid_server: g("server"),
            guid_registry: g("registry"),
            guid_shortcuts: g("shortcuts"),
        }
    }
}

/// Writes `data` unless the file already holds it (keeps mtimes, so cargo does
/// not rebuild the apps when nothing changed).
pub fn write_if_changed(path: &Path, data: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(data) {
        return Ok(());
    }
    crate::fsutil::write_generated(path, data)
}

/// Renders the compiled brand into `dir`; returns the rendered `EntryPoint.dat`.
pub fn write(b: &Brand, v: &Vars, dir: &Path) -> Result<String> {
    let ca_pem = std::fs::read_to_string(&b.certs.ca_cert).at(&b.certs.ca_cert)?;
    let data = serde_json::json!({
        "ca_pem": ca_pem.trim_end(), "gateway_url": b.gateway_url, "system_name": b.system_name,
        "product_name": b.product_name, "app_id": b.app_id,
    });
    let entry_point = render::render(render::ENTRY_POINT, &data)?;
    thin_protocol::entry_point::EntryPoint::parse(&entry_point, "EntryPoint.dat").map_err(|e| {
        crate::Error::Template { name: render::ENTRY_POINT.0.into(), msg: format!("rendered file does not parse: {e}") }
    })?;
    let json = serde_json::json!({
        "app_id": b.app_id, "product_name": b.product_name, "company": b.company,
        "system_name": b.system_name, "version": b.version, "build": v.build, "rpc_port": b.rpc_port,
        "service_name": v.service_name, "languages": b.languages,
    });
    write_if_changed(&dir.join("brand.json"), serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    write_if_changed(&dir.join("EntryPoint.dat"), entry_point.as_bytes())?;
    for lang in Lang::ALL {
        let path = b.strings.iter().find(|(l, _)| *l == lang).map(|(_, p)| p.clone());
        let text = match path {
            Some(p) if b.languages.contains(&lang) => std::fs::read(&p).at(&p)?,
            _ => Vec::new(),
        };
        write_if_changed(&dir.join(format!("strtable_{}.patch.stb", lang.code())), &text)?;
    }
    for slot in crate::artwork::SLOTS {
        let src = b.artwork_dir.join(slot.file);
        write_if_changed(&dir.join("artwork").join(slot.file), &std::fs::read(&src).at(&src)?)?;
    }
    write_if_changed(&dir.join("app.ico"), &crate::artwork::make_ico(&b.artwork_dir.join("icon.bmp"))?)?;
    Ok(entry_point)
}

/// Digest of the compiled brand (what the apps are built from).
pub fn digest(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for f in files {
        h.update(crate::paths::shown(&f, dir).as_bytes());
        h.update([0]);
        h.update(std::fs::read(&f).at(&f)?);
    }
    Ok(hex::encode(h.finalize()))
}
