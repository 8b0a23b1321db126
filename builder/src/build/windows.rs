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

/// File names of the Windows outputs.
pub fn names(b: &Brand) -> (String, String, String) {
    let base = format!("{}-{}", b.app_id, b.version);
    (format!("{base}-setup.exe"), format!("{base}.msi"), format!("{base}-portable.zip"))
}

/// Makes the NSIS setup from the staged (and, with `--sign`, signed) apps.
pub fn nsis(b: &Brand, v: &Vars, stage: &Path, out: &Path, sign: Option<&super::sign::Signer>) -> Result<PathBuf> {
    let setup = out.join(names(b).0);
    let langs: Vec<&str> = b
        .languages
        .iter()
        .map(|l| match l {
            crate::manifest::Lang::Ja => "Japanese",
            crate::manifest::Lang::En => "English",
        })
        .collect();
    let mut data = serde_json::to_value(v).expect("vars");
    data["out_file"] = setup.display().to_string().into();
    data["stage"] = stage.display().to_string().into();
    data["icon"] = stage.join("app.ico").display().to_string().into();
    data["header_bmp"] = stage.join("header.bmp").display().to_string().into();
    data["nsis_languages"] = serde_json::json!(langs);
    data["uninstaller_sign"] = sign.map(|s| s.nsis_finalize_command()).unwrap_or_default().into();
    let script = stage.join("setup.nsi");
    write_if_changed(&script, render::render(render::NSIS, &data)?.as_bytes())?;
    run(
        "makensis",
        Command::new("makensis").args(["-V2", "-INPUTCHARSET", "UTF8"]).arg(&script),
        "install it with `apt-get install nsis`",
    )?;
    Ok(setup)
}

/// Makes the MSI with wixl (run inside the stage: wixl takes relative sources only).
pub fn msi(b: &Brand, v: &Vars, stage: &Path, out: &Path) -> Result<PathBuf> {
    let msi = out.join(names(b).1);
    let x = |s: &str| render::xml(s);
    let mut data = serde_json::to_value(v).expect("vars");
    for k in ["product_name", "company", "system_name", "client_title", "server_title"] {
        data[k] = x(data[k].as_str().unwrap_or_default()).into();
    }
    let wxs = stage.join("product.wxs");
    write_if_changed(&wxs, render::render(render::WIX, &data)?.as_bytes())?;
    run(
        "wixl",
        Command::new("wixl")
            .current_dir(stage)
            .args(["-a", "x64", "-o"])
            .arg(std::path::absolute(&msi).at(&msi)?)
            .arg("product.wxs"),
        "install it with `apt-get install wixl`",
    )?;
    Ok(msi)
}

/// Makes the portable zip (`<AppId>/thinclient.exe`, ...).
pub fn portable_zip(b: &Brand, stage: &Path, out: &Path, epoch: i64) -> Result<PathBuf> {
    let zip = out.join(names(b).2);
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
    // makensis compresses on one core for most of this step: wixl and the zip
    // run beside it.
    let (setup, msi, zip) = p.step("NSIS setup, MSI (wixl) and portable zip", || {
        std::thread::scope(|scope| {
            let setup = scope.spawn(|| nsis(b, v, stage, out, sign));
            let msi = msi(b, v, stage, out);
            let zip = portable_zip(b, stage, out, epoch);
            let setup = setup.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            Ok::<_, Error>((setup?, msi?, zip?))
        })
    })?;
    if let Some(s) = sign {
        p.step("sign the setup and the MSI", || [&setup, &msi].into_iter().try_for_each(|f| s.sign(f)))?;
    }
    let mut made = vec![setup, msi, zip];
    for app in APPS {
        let dest = out.join(app);
        std::fs::copy(stage.join(app), &dest).at(&dest)?;
        made.push(dest);
    }
    Ok(made)
}
