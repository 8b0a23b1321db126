//! `build --target windows`: the two apps with the brand compiled in, then an
//! NSIS setup, a wixl MSI and a portable zip.

use super::archive::{self, Entry};
use super::compiled::{write_if_changed, Vars};
use super::progress::Progress;
use crate::error::{Error, IoContext, Result};
use crate::manifest::Brand;
use crate::render;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The apps, in install order.
pub const APPS: [&str; 2] = ["thinclient.exe", "thinsvr.exe"];

/// Copies the apps compiled with the brand (in `bin`), its icon and its
/// header into `stage`.
pub fn stage_apps(bin: &Path, brand_dir: &Path, stage: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for app in APPS {
        let data = std::fs::read(bin.join(app)).at(bin.join(app))?;
        let dest = stage.join(app);
        write_if_changed(&dest, &data)?;
        out.push(dest);
    }
    let ico = std::fs::read(brand_dir.join("app.ico")).at(brand_dir.join("app.ico"))?;
    write_if_changed(&stage.join("app.ico"), &ico)?;
    let header = brand_dir.join("artwork/header.bmp");
    write_if_changed(&stage.join("header.bmp"), &std::fs::read(&header).at(&header)?)?;
    Ok(out)
}

/// Sets every staged file's mtime to the epoch (installers record file times).
pub fn pin_mtimes(stage: &Path, epoch: i64) -> Result<()> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64);
    for e in std::fs::read_dir(stage).at(stage)? {
        let p = e.at(stage)?.path();
        if p.is_file() {
            std::fs::File::options().write(true).open(&p).at(&p)?.set_modified(when).at(&p)?;
        }
    }
    Ok(())
}

fn run(tool: &str, cmd: &mut Command, hint: &str) -> Result<()> {
    let out = cmd.output().map_err(|e| Error::Tool { tool: tool.into(), msg: format!("cannot run ({e}); {hint}") })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    Err(Error::Tool { tool: tool.into(), msg: format!("failed ({}):\n{}", out.status, tail.join("\n")) })
}

/// Which installers a build makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Installers {
    /// A ThinClient setup and MSI (per user, no service) and a ThinServer setup and MSI (the service), as the original ships them.
    Separate,
    /// One setup and one MSI holding both apps and the service.
    Combined,
    /// Both of the above.
    Both,
}

impl Installers {
    /// The packages, in output order.
    pub fn packages(self) -> &'static [Package] {
        match self {
            Installers::Separate => &[Package::Client, Package::Server],
            Installers::Combined => &[Package::Combined],
            Installers::Both => &[Package::Client, Package::Server, Package::Combined],
        }
    }
}

/// One installed product: its setup and its MSI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// ThinClient for the home PC: installed per user (no admin rights), no service.
    Client,
    /// ThinServer for the office PC: for all users, with the service.
    Server,
    /// Both apps and the service. The same product as [`Package::Server`]
    /// (install folder, registry key, MSI UpgradeCode): either replaces the other.
    Combined,
}

impl Package {
    fn suffix(self) -> &'static str {
        match self {
            Package::Client => "-client",
            Package::Server => "-server",
            Package::Combined => "",
        }
    }

    /// The setup's and the MSI's file names.
    pub fn names(self, b: &Brand) -> (String, String) {
        let base = format!("{}-{}{}", b.app_id, b.version, self.suffix());
        (format!("{base}-setup.exe"), format!("{base}.msi"))
    }

    fn has_client(self) -> bool {
        self != Package::Server
    }

    fn has_server(self) -> bool {
        self != Package::Client
    }

    /// The template variables of this package.
    fn data(self, v: &Vars) -> serde_json::Value {
        let per_user = self == Package::Client;
        let (display_name, uninstall_key, upgrade) = match self {
            Package::Client => (v.client_title.clone(), format!("{}ThinClient", v.app_id), "upgrade-client"),
            Package::Server => (v.server_title.clone(), v.app_id.clone(), "upgrade"),
            Package::Combined => (v.product_name.clone(), v.app_id.clone(), "upgrade"),
        };
        let g = |w: &str| super::compiled::brand_guid(&v.app_id, w);
        let mut data = serde_json::to_value(v).expect("vars");
        let extra = serde_json::json!({
            "package": format!("{self:?}").to_lowercase(),
            "display_name": display_name,
            "uninstall_key": uninstall_key,
            "per_user": per_user,
            "has_client": self.has_client(),
            "has_server": self.has_server(),
            "reg_root": if per_user { "HKCU" } else { "HKLM" },
            "upgrade_code": g(upgrade),
        });
        for (k, x) in extra.as_object().expect("object") {
            data[k] = x.clone();
        }
        match self {
            // Other files in another folder: components of their own.
            Package::Client => {
                data["guid_client"] = g("client-per-user").into();
                data["guid_registry"] = g("registry-client").into();
                data["guid_shortcuts"] = g("shortcuts-client").into();
            }
            Package::Server => data["guid_shortcuts"] = g("shortcuts-server").into(),
            Package::Combined => {}
        }
        data
    }
}

/// File name of the portable zip.
pub fn zip_name(b: &Brand) -> String {
    format!("{}-{}-portable.zip", b.app_id, b.version)
}

/// Makes the NSIS setup of `pkg` from the staged (and, with `--sign`, signed) apps.
pub fn nsis(
    b: &Brand,
    v: &Vars,
    pkg: Package,
    stage: &Path,
    out: &Path,
    sign: Option<&super::sign::Signer>,
) -> Result<PathBuf> {
    let setup = out.join(pkg.names(b).0);
    let langs: Vec<&str> = b
        .languages
        .iter()
        .map(|l| match l {
            crate::manifest::Lang::Ja => "Japanese",
            crate::manifest::Lang::En => "English",
        })
        .collect();
    let mut data = pkg.data(v);
    data["out_file"] = setup.display().to_string().into();
    data["stage"] = stage.display().to_string().into();
    data["icon"] = stage.join("app.ico").display().to_string().into();
    data["header_bmp"] = stage.join("header.bmp").display().to_string().into();
    data["nsis_languages"] = serde_json::json!(langs);
    data["uninstaller_sign"] = sign.map(|s| s.nsis_finalize_command()).unwrap_or_default().into();
    let script = stage.join(format!("setup{}.nsi", pkg.suffix()));
    write_if_changed(&script, render::render(render::NSIS, &data)?.as_bytes())?;
    run(
        "makensis",
        Command::new("makensis").args(["-V2", "-INPUTCHARSET", "UTF8"]).arg(&script),
        "install it with `apt-get install nsis`",
    )?;
    Ok(setup)
}

/// Makes the MSI of `pkg` with wixl (run inside the stage: wixl takes relative sources only).
pub fn msi(b: &Brand, v: &Vars, pkg: Package, stage: &Path, out: &Path) -> Result<PathBuf> {
    let msi = out.join(pkg.names(b).1);
    let x = |s: &str| render::xml(s);
    let mut data = pkg.data(v);
    for k in ["product_name", "company", "system_name", "client_title", "server_title", "display_name"] {
        data[k] = x(data[k].as_str().unwrap_or_default()).into();
    }
    let wxs = stage.join(format!("product{}.wxs", pkg.suffix()));
    write_if_changed(&wxs, render::render(render::WIX, &data)?.as_bytes())?;
    run(
        "wixl",
        Command::new("wixl")
            .current_dir(stage)
            .args(["-a", "x64", "-o"])
            .arg(std::path::absolute(&msi).at(&msi)?)
            .arg(wxs.file_name().expect("file name")),
        "install it with `apt-get install wixl`",
    )?;
    Ok(msi)
}

/// Makes the portable zip (`<AppId>/thinclient.exe`, ...).
pub fn portable_zip(b: &Brand, stage: &Path, out: &Path, epoch: i64) -> Result<PathBuf> {
    let zip = out.join(zip_name(b));
    let entries: Vec<Entry> = APPS
        .iter()
        .chain(["app.ico"].iter())
        .map(|f| Entry {
            name: format!("{}/{f}", b.app_id),
            source: archive::Source::File(stage.join(f)),
            mode: if f.ends_with(".exe") { 0o755 } else { 0o644 },
        })
        .collect();
    archive::zip(&zip, &entries, epoch)?;
    Ok(zip)
}

/// Everything for Windows; `sign` signs the staged apps before packaging and the
/// packages after.
#[allow(clippy::too_many_arguments)] // one call site, each argument a different role
pub fn build(
    b: &Brand,
    v: &Vars,
    installers: Installers,
    epoch: i64,
    bin: &Path,
    brand_dir: &Path,
    stage: &Path,
    out: &Path,
    sign: Option<&super::sign::Signer>,
    p: &mut Progress,
) -> Result<Vec<PathBuf>> {
    let apps = stage_apps(bin, brand_dir, stage)?;
    if let Some(s) = sign {
        p.step("sign the apps", || apps.iter().try_for_each(|a| s.sign(a)))?;
    }
    pin_mtimes(stage, epoch)?;
    // makensis compresses on one core for most of its run: the setups run
    // beside each other, and the MSIs (wixl) and the zip beside them.
    let packages = installers.packages();
    let (setups, msis, zip) = p.step("NSIS setups, MSIs (wixl) and portable zip", || {
        std::thread::scope(|scope| {
            let setups: Vec<_> =
                packages.iter().map(|&pkg| scope.spawn(move || nsis(b, v, pkg, stage, out, sign))).collect();
            let msis = packages.iter().map(|&pkg| msi(b, v, pkg, stage, out)).collect::<Result<Vec<_>>>();
            let zip = portable_zip(b, stage, out, epoch);
            let setups: Vec<Result<PathBuf>> =
                setups.into_iter().map(|s| s.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
            Ok::<_, Error>((setups.into_iter().collect::<Result<Vec<_>>>()?, msis?, zip?))
        })
    })?;
    if let Some(s) = sign {
        p.step("sign the setups and the MSIs", || setups.iter().chain(&msis).try_for_each(|f| s.sign(f)))?;
    }
    let mut made: Vec<PathBuf> = setups.into_iter().chain(msis).collect();
    made.push(zip);
    for app in APPS {
        let dest = out.join(app);
        std::fs::copy(stage.join(app), &dest).at(&dest)?;
        made.push(dest);
    }
    Ok(made)
}
