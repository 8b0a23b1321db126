//! Compiles the brand into the apps (the libraries `thin-tunnel` and `thin-ui` hold none, so a
//! rebrand recompiles only this small crate). `THIN_BRAND_DIR` (set by `builder build`)
//! points at a compiled brand folder: `brand.json`, `EntryPoint.dat`,
//! `strtable_{ja,en}.patch.stb`, `artwork/*.bmp` and `app.ico`. Without it the
//! default brand (`brand/default`) is used and no entry point is compiled in
//! (the apps then need `--entry-point`).
//!
//! Generates `$OUT_DIR/brand_gen.rs` (constants), copies the patches and artwork
//! into `$OUT_DIR` for `include_str!`/`include_bytes!`, and, for Windows targets,
//! compiles an icon and version resource into each app.
use std::path::{Path, PathBuf};

struct Brand {
    app_id: String,
    product: String,
    company: String,
    system: String,
    version: String,
    build: u32,
    rpc_port: u16,
    entry_point: Option<String>,
    dir: PathBuf,
}

fn read(path: &Path) -> Vec<u8> {
    println!("cargo:rerun-if-changed={}", path.display());
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load() -> Brand {
    let default_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../brand/default");
    let mut b = Brand {
        app_id: thin_brand::DEFAULT_APP_ID.into(),
        product: thin_brand::DEFAULT_PRODUCT_NAME.into(),
        company: thin_brand::DEFAULT_COMPANY.into(),
        system: thin_brand::DEFAULT_SYSTEM_NAME.into(),
        version: std::env::var("CARGO_PKG_VERSION").unwrap(),
        build: 0,
        rpc_port: thin_brand::DEFAULT_RPC_PORT,
        entry_point: None,
        dir: default_dir,
    };
    let Ok(dir) = std::env::var("THIN_BRAND_DIR") else { return b };
    let dir = PathBuf::from(dir);
    let bj = dir.join("brand.json");
    let v: serde_json::Value = serde_json::from_slice(&read(&bj)).unwrap_or_else(|e| panic!("{}: {e}", bj.display()));
    let s = |k: &str, d: &mut String| {
        if let Some(x) = v.get(k).and_then(|x| x.as_str()) {
            *d = x.to_string();
        }
    };
    s("app_id", &mut b.app_id);
    s("product_name", &mut b.product);
    s("company", &mut b.company);
    s("system_name", &mut b.system);
    s("version", &mut b.version);
    if let Some(n) = v.get("build").and_then(|x| x.as_u64()) {
        b.build = u32::try_from(n)
            .ok()
            .filter(|n| *n <= 65535)
            .unwrap_or_else(|| panic!("{}: build {n} does not fit a Windows version field (0-65535)", bj.display()));
    }
    if let Some(p) = v.get("rpc_port").and_then(|x| x.as_u64()) {
        b.rpc_port = u16::try_from(p).unwrap_or_else(|_| panic!("{}: rpc_port {p} is not a port", bj.display()));
    }
    let ep = dir.join("EntryPoint.dat");
    if ep.exists() {
        b.entry_point = Some(String::from_utf8(read(&ep)).unwrap_or_else(|e| panic!("{}: {e}", ep.display())));
    }
    b.dir = dir;
    b
}

/// Copies the patch tables and artwork into OUT_DIR under fixed names.
fn copy_assets(b: &Brand, out: &Path) {
    for name in ["strtable_ja.patch.stb", "strtable_en.patch.stb", "artwork/header.bmp", "artwork/icon.bmp"] {
        let data = read(&b.dir.join(name));
        let file = Path::new(name).file_name().unwrap();
        std::fs::write(out.join(file), data).unwrap();
    }
}

/// The version resource's version: `major.minor.patch.build`.
fn windows_resources(b: &Brand) {
    let nums: Vec<u64> =
        b.version.split('.').map(|p| p.parse().unwrap_or(0)).chain(std::iter::repeat(0)).take(3).collect();
    let packed = (nums[0] << 48) | (nums[1] << 32) | (nums[2] << 16) | u64::from(b.build);
    let version = format!("{}.{}.{}.{}", nums[0], nums[1], nums[2], b.build);
    let ico = b.dir.join("app.ico");
    for (bin, desc) in [("thinclient", "Client"), ("thinsvr", "Server")] {
        let mut res = winresource::WindowsResource::new();
        res.set("ProductName", &b.product)
            .set("CompanyName", &b.company)
            .set("FileDescription", &format!("{} {desc}", b.product))
            .set("ProductVersion", &version)
            .set("FileVersion", &version)
            .set("LegalCopyright", &b.company)
            .set("InternalName", bin)
            .set("OriginalFilename", &format!("{bin}.exe"))
            .set("Comments", &format!("AppId {}; {}", b.app_id, b.system))
            .set_version_info(winresource::VersionInfo::PRODUCTVERSION, packed)
            .set_version_info(winresource::VersionInfo::FILEVERSION, packed);
        if ico.exists() {
            println!("cargo:rerun-if-changed={}", ico.display());
            res.set_icon(ico.to_str().expect("UTF-8 path"));
        }
        if let Err(e) = res.compile_for(bin) {
            panic!("windows resource for {bin}: {e} (is x86_64-w64-mingw32-windres installed? apt-get install binutils-mingw-w64-x86-64)");
        }
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=THIN_BRAND_DIR");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let b = load();
    copy_assets(&b, &out);
    let asset = |name: &str| format!("concat!(env!(\"OUT_DIR\"), \"/{name}\")");
    let code = format!(
        "/// The brand compiled into this app (see build.rs).\n\
         pub static BRAND: thin_tunnel::brand::Brand = thin_tunnel::brand::Brand {{\n\
         app_id: {:?},\nproduct_name: {:?},\ncompany: {:?},\nsystem_name: {:?},\nversion: {:?},\nbuild: {},\n\
         rpc_port: {},\nentry_point: {:?},\npatch_ja: include_str!({}),\npatch_en: include_str!({}),\n\
         header_bmp: include_bytes!({}),\nicon_bmp: include_bytes!({}),\n}};\n",
        b.app_id,
        b.product,
        b.company,
        b.system,
        b.version,
        b.build,
        b.rpc_port,
        b.entry_point,
        asset("strtable_ja.patch.stb"),
        asset("strtable_en.patch.stb"),
        asset("header.bmp"),
        asset("icon.bmp"),
    );
    std::fs::write(out.join("brand_gen.rs"), code).unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        windows_resources(&b);
    }
}
