//! `builder import DIR`: a brand folder from an original `IPA-DNP-ThinApps-Private`
//! customisation: the AppId and RPC port of `Vars/Vars.h` (cross-checked with
//! `Vars.cs`, `Vars.props` and the patches' `$APP_ID_PREFIX$`), product and
//! company names, the gateway URL, system name and CA of `bin/EntryPoint.dat`,
//! the gateway's `bin/ThinGate.cer`/`ThinGate.key`, the window titles of the two
//! `bin/hamcore/strtable_*.patch.stb` and the client's banner BMP. What has no
//! place in a brand is listed. The folder is made beside its destination,
//! checked with `builder check`, and only then moved into place: bad input or a
//! brand that would not pass changes nothing.

pub mod originals;

use crate::certs::issue::{self, KeyType};
use crate::check::BrandRef;
use crate::error::{Error, IoContext, Problem, Problems, Result};
use crate::fsutil;
use crate::manifest::{fields, CertPaths, Lang, MANIFEST};
use originals::{At, StbLine};
use std::path::{Path, PathBuf};

/// Options of `builder import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The original source tree (the folder holding `src/`, or `src/` itself).
    pub from: PathBuf,
    /// Brand folder to make [default: brands/<app id in lower case>].
    pub dir: Option<PathBuf>,
    /// Make a new CA and gateway certificate instead of carrying the original's.
    pub new_ca: bool,
    /// Key type of a new CA (with `new_ca`).
    pub key_type: KeyType,
}

/// What `import` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// Brand folder.
    pub dir: PathBuf,
    /// AppId.
    pub app_id: String,
    /// RPC port.
    pub rpc_port: u16,
    /// System name.
    pub system_name: String,
    /// Gateway URL.
    pub gateway_url: String,
    /// What was carried over, and from where.
    pub carried: Vec<String>,
    /// What could not be carried over, and why.
    pub not_carried: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "made the brand folder {} (AppId {}, RPC port {}); it passes `builder check`.",
            self.dir.display(),
            self.app_id,
            self.rpc_port
        )?;
        writeln!(f, "carried over:")?;
        for c in &self.carried {
            writeln!(f, "  {c}")?;
        }
        writeln!(f, "not carried over:")?;
        for c in &self.not_carried {
            writeln!(f, "  {c}")?;
        }
        write!(f, "next: `builder check --brand {0}`, `builder build --brand {0} --target all`", self.dir.display())
    }
}

/// The tokens of the original patches that name a text of the apps.
const TITLE_TOKENS: [(&str, &str); 2] =
    [("$APPSHORT_CLIENT$", "APP_TITLE_CLIENT"), ("$APPSHORT_SERVER$", "APP_TITLE_SERVER")];

/// Where the original tree keeps its files.
struct Tree {
    src: PathBuf,
}

impl Tree {
    fn find(from: &Path) -> Result<Self> {
        for src in [from.join("src"), from.to_path_buf()] {
            if src.join("Vars").is_dir() || src.join("bin").is_dir() {
                return Ok(Self { src });
            }
        }
        Err(Error::Usage(format!(
            "{}: neither it nor its src/ holds Vars/ or bin/; give the folder of the original source tree (IPA-DNP-ThinApps-Private, the one holding src/Vars and src/bin)",
            from.display()
        )))
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.src.join(rel)
    }
}

/// The brand's texts gathered from the originals, before anything is written.
struct Gathered {
    app_id: String,
    rpc_port: u16,
    product_name: String,
    company: String,
    system_name: String,
    gateway_url: String,
    ca_pem: Option<String>,
    patches: Vec<(Lang, Vec<(String, String)>)>,
    banner: Option<(PathBuf, image::DynamicImage)>,
    carried: Vec<String>,
    not_carried: Vec<String>,
}

fn bad(file: &str, at: Option<&At>, what: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem::file(file, what, fix).at_line(at.map(|a| a.line))
}

fn gather(t: &Tree, new_ca: bool, problems: &mut Vec<Problem>) -> Option<Gathered> {
    let mut carried = Vec::new();
    let mut not_carried = Vec::new();
    let read = |rel: &str, problems: &mut Vec<Problem>| {
        originals::read_text(&t.path(rel), rel).map_err(|p| problems.push(p)).ok()
    };
    let rename_fix = "replace \"Private\" with the same AppId in Vars.h, Vars.cs, Vars.props and both strtable_*.patch.stb (manual 5-2), then import again";

    // AppId and RPC port: Vars.h is what the original apps compile in.
    let vars_h = read("Vars/Vars.h", problems)?;
    let app_id_at = originals::define(&vars_h, "APP_ID_PREFIX");
    let app_id = match &app_id_at {
        None => {
            problems.push(bad(
                "Vars/Vars.h",
                None,
                "no #define APP_ID_PREFIX",
                "restore the line #define APP_ID_PREFIX \"YourId\"",
            ));
            String::new()
        }
        Some(a) => match fields::app_id(&a.value) {
            Ok(v) => v,
            Err((what, _)) => {
                problems.push(bad(
                    "Vars/Vars.h",
                    Some(a),
                    format!("APP_ID_PREFIX: {what}"),
                    "use 1 to 8 ASCII letters or digits, as the manual (5-2) asks",
                ));
                String::new()
            }
        },
    };
    let port_at = originals::define(&vars_h, "DS_RPC_PORT");
    let rpc_port = match &port_at {
        None => {
            problems.push(bad(
                "Vars/Vars.h",
                None,
                "no #define DS_RPC_PORT",
                "restore the line #define DS_RPC_PORT 9826 (any port from 9826 up)",
            ));
            0
        }
        Some(a) => match a
            .value
            .parse::<i64>()
            .map_err(|_| (format!("{:?} is not a number", a.value), String::new()))
            .and_then(fields::rpc_port)
        {
            Ok(p) => p,
            Err((what, _)) => {
                problems.push(bad(
                    "Vars/Vars.h",
                    Some(a),
                    format!("DS_RPC_PORT: {what}"),
                    "choose a port from 9826 to 65535 other than 3389 and 3459 (manual 5-2)",
                ));
                0
            }
        },
    };
    if let Some(u) = originals::define(&vars_h, "DS_URDP_PORT").filter(|u| u.value != "3459") {
        not_carried.push(format!("Vars/Vars.h:{}: DS_URDP_PORT {} (the URDP port is fixed at 3459)", u.line, u.value));
    }
    carried.push(format!("AppId {app_id} and RPC port {rpc_port} from Vars/Vars.h"));

    // The other files that carry the AppId must agree with Vars.h.
    let same = |file: &str, at: Option<At>, problems: &mut Vec<Problem>| {
        if let Some(a) = at.filter(|a| !a.value.is_empty() && !app_id.is_empty() && a.value != app_id) {
            problems.push(bad(
                file,
                Some(&a),
                format!("AppId {:?} differs from {:?} in Vars/Vars.h", a.value, app_id),
                rename_fix,
            ));
        }
    };
    let vars_cs = t.path("Vars/Vars.cs").is_file().then(|| read("Vars/Vars.cs", problems)).flatten();
    if let Some(cs) = &vars_cs {
        same("Vars/Vars.cs", originals::cs_string(cs, "APP_ID_PREFIX"), problems);
    } else {
        not_carried.push("Vars/Vars.cs: not found (product and company names taken from elsewhere)".into());
    }
    if t.path("Vars/Vars.props").is_file() {
        if let Some(props) = read("Vars/Vars.props", problems) {
            same("Vars/Vars.props", originals::xml_element(&props, "APP_ID_PREFIX"), problems);
        }
    }

    // String tables.
    let mut patches = Vec::new();
    let mut en_short = None;
    for lang in [Lang::Ja, Lang::En] {
        let rel = format!("bin/hamcore/strtable_{}.patch.stb", lang.code());
        if !t.path(&rel).is_file() {
            not_carried.push(format!("{rel}: not found (the apps' own texts are used)"));
            patches.push((lang, Vec::new()));
            continue;
        }
        let Some(text) = read(&rel, problems) else { continue };
        let lines = originals::stb_lines(&text);
        let base = crate::strtables::base(lang);
        let mut keep = Vec::new();
        for StbLine { key, raw, line } in &lines {
            if key == "$APP_ID_PREFIX$" {
                same(&rel, Some(At { value: raw.clone(), line: *line }), problems);
            } else if let Some((_, ours)) = TITLE_TOKENS.iter().find(|(k, _)| k == key) {
                if !raw.is_empty() {
                    keep.push((ours.to_string(), raw.clone()));
                    carried.push(format!("{key} of {rel} as {ours}"));
                }
            } else if key == "$APPSHORT$" && lang == Lang::En {
                en_short = Some(At { value: raw.clone(), line: *line });
            } else if base.get(key).is_some() {
                keep.push((key.clone(), raw.clone()));
                carried.push(format!("{key} of {rel}"));
            } else {
                not_carried.push(format!("{rel}:{line}: {key} (no such text in these apps)"));
            }
        }
        patches.push((lang, keep));
    }

    // Names: $APPSHORT$ (English) is the product as the original's windows show it.
    let product = en_short
        .as_ref()
        .filter(|a| !a.value.is_empty())
        .map(|a| ("bin/hamcore/strtable_en.patch.stb", a.clone()))
        .or_else(|| {
            vars_cs.as_deref().and_then(|cs| originals::cs_string(cs, "ProductName")).map(|a| ("Vars/Vars.cs", a))
        })
        .or_else(|| originals::define(&vars_h, "DESK_PRODUCT_NAME_SUITE").map(|a| ("Vars/Vars.h", a)));
    let product_name = match product {
        Some((file, a)) => match fields::display_text("product_name", &a.value) {
            Ok(v) => {
                carried.push(format!("product name {v:?} from {file}:{}", a.line));
                v
            }
            Err((what, fix)) => {
                problems.push(bad(file, Some(&a), what, fix));
                String::new()
            }
        },
        None => format!("{app_id} Telework"),
    };
    let company = vars_cs
        .as_deref()
        .and_then(|cs| originals::cs_string(cs, "CompanyName").map(|a| ("Vars/Vars.cs", a)))
        .or_else(|| originals::define(&vars_h, "DESK_PUBLISHER_NAME_ANSI").map(|a| ("Vars/Vars.h", a)));
    let company = match company {
        Some((file, a)) => match fields::display_text("company", &a.value) {
            Ok(v) => {
                carried.push(format!("company {v:?} from {file}:{}", a.line));
                v
            }
            Err((what, fix)) => {
                problems.push(bad(file, Some(&a), what, fix));
                String::new()
            }
        },
        None => app_id.clone(),
    };

    // EntryPoint.dat: CA, gateway URL, system name.
    let ep_rel = "bin/EntryPoint.dat";
    let mut gateway_url = String::new();
    let mut system_name = format!("{app_id} Telework System");
    let mut ca_pem = None;
    if let Some(text) = read(ep_rel, problems) {
        let url_line = text.lines().enumerate().find(|(_, l)| {
            let l = l.trim().to_ascii_lowercase();
            l.starts_with("https://") || l.starts_with("http://")
        });
        match url_line {
            None => problems.push(Problem::file(
                ep_rel,
                "no gateway URL line",
                "add the gateway's URL, e.g. https://gw.example.org/thingate/ (manual 4-4)",
            )),
            Some((i, l)) => match fields::gateway_url(l.trim()) {
                Ok(_) => {
                    gateway_url = l.trim().to_string();
                    carried.push(format!("gateway URL {gateway_url} from {ep_rel}:{}", i + 1));
                }
                Err((what, fix)) => problems.push(Problem::file(ep_rel, what, fix).at_line(Some(i + 1))),
            },
        }
        match text.lines().enumerate().find_map(|(i, l)| l.trim().strip_prefix("SYSTEM:").map(|s| (i, s.trim()))) {
            Some((i, s)) if !s.is_empty() => match fields::display_text("system_name", s) {
                Ok(v) => {
                    carried.push(format!("system name {v:?} from {ep_rel}:{}", i + 1));
                    system_name = v;
                }
                Err((what, fix)) => {
                    problems.push(Problem::file(ep_rel, format!("SYSTEM: {what}"), fix).at_line(Some(i + 1)))
                }
            },
            _ => not_carried.push(format!("{ep_rel}: no SYSTEM: line (system name {system_name:?} chosen)")),
        }
        let pems = pem_blocks(&text);
        if new_ca {
            // The CA is made new: the original's is neither needed nor checked.
        } else if pems.is_empty() {
            problems.push(Problem::file(
                ep_rel,
                "no CA certificate (-----BEGIN CERTIFICATE----- block)",
                "put the CA's PEM block at the top (manual 5-7), or import with --new-ca to make a new CA",
            ));
        } else {
            match thin_protocol::entry_point::EntryPoint::parse(&text, ep_rel) {
                Ok(_) => ca_pem = Some(pems.join("\n")),
                Err(e) => {
                    let msg = e.to_string();
                    let msg = msg.strip_prefix(&format!("{ep_rel}: ")).unwrap_or(&msg).to_string();
                    problems.push(Problem::file(ep_rel, msg, "fix the file as the manual (4-4, 5-7) describes: the CA's PEM block, then the https:// URL and a SYSTEM: line"));
                }
            }
        }
    }

    // Artwork: the client's banner becomes header.bmp.
    let hamcore = t.path("bin/hamcore");
    let mut bmps: Vec<PathBuf> = std::fs::read_dir(&hamcore)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("bmp")))
                .collect()
        })
        .unwrap_or_default();
    bmps.sort();
    let pick = ["deskclient.bmp", "deskserver.bmp"].iter().map(|n| hamcore.join(n)).find(|p| p.is_file());
    let mut banner = None;
    if let Some(p) = &pick {
        let rel = format!("bin/hamcore/{}", p.file_name().unwrap_or_default().to_string_lossy());
        match image::open(p) {
            Ok(img) => banner = Some((p.clone(), img)),
            Err(e) => problems.push(Problem::file(
                &rel,
                format!("BMP does not decode: {e}"),
                "save it again as a 24-bit BMP and import again",
            )),
        }
    }
    for b in &bmps {
        if Some(b) != pick.as_ref() {
            not_carried.push(format!(
                "bin/hamcore/{}: no such picture in these apps",
                b.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    if pick.is_none() {
        not_carried.push("bin/hamcore/deskclient.bmp: not found (the default header.bmp is used)".into());
    }
    not_carried.push("the icon: the original keeps it in its .ico resources, not in hamcore; artwork/icon.bmp (32x32) is the default one".into());

    Some(Gathered {
        app_id,
        rpc_port,
        product_name,
        company,
        system_name,
        gateway_url,
        ca_pem,
        patches,
        banner,
        carried,
        not_carried,
    })
}

/// The PEM `CERTIFICATE` blocks of a text (marker lines on their own), as written.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<Vec<&str>> = None;
    for l in text.lines().map(str::trim) {
        match (&mut cur, l) {
            (None, "-----BEGIN CERTIFICATE-----") => cur = Some(vec![l]),
            (Some(b), "-----END CERTIFICATE-----") => {
                b.push(l);
                out.push(b.join("\n"));
                cur = None;
            }
            (Some(b), _) => b.push(l),
            _ => {}
        }
    }
    out
}

/// `image` fitted into `w`x`h` (aspect kept), on the colour of its top-left pixel.
fn fit(img: &image::DynamicImage, w: u32, h: u32) -> image::RgbImage {
    let src = img.to_rgb8();
    let bg = *src.get_pixel(0, 0);
    let scale = f64::min(w as f64 / src.width() as f64, h as f64 / src.height() as f64);
    let (sw, sh) = (
        ((src.width() as f64 * scale).round() as u32).clamp(1, w),
        ((src.height() as f64 * scale).round() as u32).clamp(1, h),
    );
    let scaled = image::imageops::resize(&src, sw, sh, image::imageops::FilterType::Triangle);
    let mut out = image::RgbImage::from_pixel(w, h, bg);
    image::imageops::overlay(&mut out, &scaled, ((w - sw) / 2) as i64, ((h - sh) / 2) as i64);
    out
}

fn patch_text(lang: Lang, entries: &[(String, String)]) -> String {
    let mut s = format!(
        "# Brand patch ({}), imported from the original's strtable_{}.patch.stb by `builder import`.\n# Keys must exist in brand/default/strtable_{}.stb; the first definition wins.\n\n",
        lang.code(),
        lang.code(),
        lang.code()
    );
    for (k, v) in entries {
        s.push_str(&format!("{k}\t{v}\n"));
    }
    s
}

/// Runs the import; nothing is written unless the brand passes `check`.
pub fn run(o: &ImportOptions) -> Result<ImportReport> {
    let tree = Tree::find(&o.from)?;
    let mut problems = Vec::new();
    let g = gather(&tree, o.new_ca, &mut problems);
    let Some(mut g) = g.filter(|_| problems.is_empty()) else {
        return Err(Error::Import { dir: tree.src.clone(), problems: Problems(problems) });
    };
    let dir =
        o.dir.clone().unwrap_or_else(|| Path::new(crate::brand_choice::BRANDS).join(g.app_id.to_ascii_lowercase()));
    if std::fs::symlink_metadata(&dir).is_ok() {
        return Err(Error::Exists(dir));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).at(parent)?;
    let stage = tempfile::Builder::new().prefix(".import-").tempdir_in(parent).at(parent)?;
    let s = stage.path();

    let data = serde_json::json!({
        "app_id": g.app_id, "product_name": g.product_name, "company": g.company,
        "system_name": g.system_name, "gateway_url": g.gateway_url, "rpc_port": g.rpc_port,
        "dir": dir.display().to_string(), "codesign": false, "codesign_env": "",
    });
    fsutil::write_new(&s.join(MANIFEST), crate::render::render(crate::render::BRAND_TOML, &data)?.as_bytes())?;
    for (lang, entries) in &g.patches {
        fsutil::write_new(
            &s.join(format!("strtable_{}.patch.stb", lang.code())),
            patch_text(*lang, entries).as_bytes(),
        )?;
    }
    let default = crate::paths::default_brand_dir();
    fsutil::copy_tree_new(&default.join("artwork"), &s.join("artwork"))?;
    if let Some((from, img)) = &g.banner {
        let slot = crate::artwork::SLOTS[0];
        let fitted = fit(img, slot.size.0, slot.size.1);
        let mut bmp = Vec::new();
        fitted
            .write_to(&mut std::io::Cursor::new(&mut bmp), image::ImageFormat::Bmp)
            .map_err(|e| Error::Tool { tool: "image".into(), msg: e.to_string() })?;
        fsutil::write_generated(&s.join("artwork").join(slot.file), &bmp)?;
        let name = from.file_name().unwrap_or_default().to_string_lossy();
        g.carried.push(format!(
            "bin/hamcore/{name} ({}x{}) as artwork/{} (fitted into {}x{})",
            img.width(),
            img.height(),
            slot.file,
            slot.size.0,
            slot.size.1
        ));
    }

    let certs = CertPaths {
        ca_cert: s.join("certs/ca.cer"),
        ca_key: s.join("certs/ca.key"),
        gateway_cert: s.join("certs/ThinGate.cer"),
        gateway_key: s.join("certs/ThinGate.key"),
    };
    if o.new_ca {
        let host = fields::gateway_url(&g.gateway_url).map(|u| u.host).unwrap_or_default();
        issue::write_new_ca(&certs, &g.system_name, &[host], o.key_type)?;
        g.not_carried.push("the original CA (EntryPoint.dat) and bin/ThinGate.cer/.key: replaced by a new CA and gateway certificate (--new-ca); install the new certs/ThinGate.cer and .key on the gateway".into());
    } else {
        fsutil::create_private_dir(&s.join("certs"))?;
        fsutil::write_new(&certs.ca_cert, format!("{}\n", g.ca_pem.clone().unwrap_or_default()).as_bytes())?;
        g.carried.push("the CA certificate from bin/EntryPoint.dat as certs/ca.cer".into());
        for (name, dest, secret) in
            [("ThinGate.cer", &certs.gateway_cert, false), ("ThinGate.key", &certs.gateway_key, true)]
        {
            let from = tree.path("bin").join(name);
            match std::fs::read(&from) {
                Ok(data) if secret => fsutil::write_secret(dest, &data)?,
                Ok(data) => fsutil::write_new(dest, &data)?,
                Err(e) => {
                    return Err(Error::Import {
                        dir: tree.src.clone(),
                        problems: Problems(vec![Problem::file(&format!("bin/{name}"), format!("cannot read: {e}"), "put the gateway's certificate and key there (manual 5-7), or import with --new-ca to make new ones")]),
                    })
                }
            }
            g.carried.push(format!("bin/{name} as certs/{name}"));
        }
        g.not_carried.push("certs/ca.key: the original keeps no CA key in its tree; put yours there (mode 0600) to use `builder ca gateway-cert`, or make a new CA with `builder ca regen`".into());
    }

    // The brand must pass the check before it is moved into place.
    if let Err(e) = crate::check::check(&BrandRef { dir: s.to_path_buf(), cert_dir: None }) {
        return Err(match e {
            Error::Invalid { problems, .. } => {
                let mut p = problems.0;
                if !o.new_ca && p.iter().any(|p| p.file.starts_with("certs/")) {
                    p.push(Problem::file(
                        "bin/ThinGate.cer",
                        "the original's certificates do not pass (the original apps checked less)",
                        "fix them as listed, or import with --new-ca to make a new CA and gateway certificate",
                    ));
                }
                Error::Invalid { dir: dir.clone(), problems: Problems(p) }
            }
            other => other,
        });
    }
    let stage = stage.keep();
    std::fs::rename(&stage, &dir).at(&dir)?;
    Ok(ImportReport {
        dir,
        app_id: g.app_id,
        rpc_port: g.rpc_port,
        system_name: g.system_name,
        gateway_url: g.gateway_url,
        carried: g.carried,
        not_carried: g.not_carried,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fit_keeps_the_aspect_on_the_corner_colour() {
        let mut img = image::RgbImage::from_pixel(300, 60, image::Rgb([10, 20, 30]));
        img.put_pixel(150, 30, image::Rgb([200, 0, 0]));
        let out = super::fit(&image::DynamicImage::ImageRgb8(img), 150, 57);
        assert_eq!(out.dimensions(), (150, 57));
        // 300x60 scales to 150x30, centred: rows 0-12 and 43-56 are the corner colour.
        assert_eq!(*out.get_pixel(0, 0), image::Rgb([10, 20, 30]));
        assert_eq!(*out.get_pixel(75, 5), image::Rgb([10, 20, 30]));
    }
}
