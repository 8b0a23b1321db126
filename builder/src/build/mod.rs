//! `builder build`: check the brand, render the compiled brand, cross-compile,
//! package, optionally sign, and write checksums and a build manifest.

pub mod archive;
pub mod cargo;
pub mod compile;
pub mod compiled;
pub mod linux;
pub mod linux_apps;
pub mod number;
pub mod outputs;
pub mod progress;
pub mod sign;
pub mod windows;

use crate::check::BrandRef;
use crate::doctor::{self, Need};
use crate::error::{Error, IoContext, Result};
use linux::Arch;
use outputs::Output;
use std::path::PathBuf;

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Windows apps and installers.
    Windows,
    /// Linux gateway bundles and the x86_64 office-PC apps bundle.
    Linux,
    /// Both.
    All,
}

/// Windows toolchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Toolchain {
    /// x86_64-pc-windows-gnu with mingw-w64 (works on Linux).
    Gnu,
    /// x86_64-pc-windows-msvc (needs its linker and the Windows SDK).
    Msvc,
}

/// Arguments of `builder build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Brand folder [default: the only brand under brands/, else the embedded default brand].
    #[arg(long)]
    pub brand: Option<PathBuf>,
    /// What to build.
    #[arg(long, value_enum)]
    pub target: Target,
    /// Windows toolchain.
    #[arg(long, value_enum, default_value = "gnu")]
    pub toolchain: Toolchain,
    /// Output folder [default: dist/<AppId>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sign every exe, the setups and the MSIs with the brand's PKCS#12.
    #[arg(long)]
    pub sign: bool,
    /// Linux architectures of the gateway bundle.
    #[arg(long = "linux-arch", value_enum, value_delimiter = ',', default_values = ["x86_64", "aarch64"])]
    pub linux_arch: Vec<Arch>,
    /// Build number [default: the brand's last one plus one, kept in its build-number.toml].
    /// CI passes its run number; an old build's number rebuilds it byte for byte.
    #[arg(long, value_name = "N")]
    pub build_number: Option<u32>,
    /// Windows installers to make.
    #[arg(long, value_enum, default_value = "separate")]
    pub installers: windows::Installers,
    /// Cargo target folder for the builder's builds [default: $CARGO_TARGET_DIR/builder or target/builder].
    #[arg(long)]
    pub cargo_target_dir: Option<PathBuf>,
}

/// What a build made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// AppId.
    pub app_id: String,
    /// Version.
    pub version: String,
    /// Build number.
    pub build: u32,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Outputs with hashes.
    pub outputs: Vec<Output>,
    /// Digest of the compiled brand.
    pub brand_digest: String,
    /// Steps and seconds.
    pub steps: Vec<(String, f64)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "built {} {} build {} into {}:", self.app_id, self.version, self.build, self.out_dir.display())?;
        for o in &self.outputs {
            writeln!(f, "  {:<48} {:>10} bytes  sha256 {}", o.name, o.size, &o.sha256[..16])?;
        }
        write!(f, "  SHA256SUMS and build-manifest.json list them all")
    }
}

fn msvc_preflight() -> Result<()> {
    let mut missing = Vec::new();
    if !doctor::report().iter().any(|(p, _)| p.name == "x86_64-pc-windows-msvc") {
        let installed = std::process::Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("x86_64-pc-windows-msvc"))
            .unwrap_or(false);
        if !installed {
            missing.push("  rust target x86_64-pc-windows-msvc: rustup target add x86_64-pc-windows-msvc".to_string());
        }
    }
    if !doctor::which("lld-link") && !doctor::which("link.exe") {
        missing.push("  an MSVC linker (lld-link or link.exe): apt-get install lld (lld-link)".into());
    }
    let lib = std::env::var("LIB").unwrap_or_default();
    let has_sdk =
        std::env::split_paths(&lib).any(|d| d.join("kernel32.lib").is_file() || d.join("Kernel32.Lib").is_file());
    if !has_sdk {
        missing.push("  the Windows SDK and CRT import libraries (kernel32.lib, ucrt.lib, ...) on LIB: not available from Debian; use --toolchain gnu".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Missing(format!("--toolchain msvc needs:\n{}", missing.join("\n"))))
    }
}

/// Runs a build.
pub fn run(a: &BuildArgs, json: bool) -> Result<Summary> {
    let (win, lin) = (a.target != Target::Linux, a.target != Target::Windows);
    // Preflight: stop before any work when something is missing.
    if win && a.toolchain == Toolchain::Msvc {
        msvc_preflight()?;
    }
    let mut needs = Vec::new();
    if win && a.toolchain == Toolchain::Gnu {
        needs.push(Need::Windows);
    }
    if lin {
        needs.push(Need::Linux);
    }
    if a.sign {
        needs.push(Need::Sign);
    }
    doctor::require(&needs)?;
    let bref = BrandRef::from_arg(a.brand.as_deref());
    let brand = crate::check::check(&bref)?;
    let workspace = crate::paths::workspace_root();
    let target_dir = a.cargo_target_dir.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"))
            .join("builder")
    });
    let cargo = cargo::CargoEnv {
        epoch: cargo::source_date_epoch(&workspace),
        workspace: workspace.clone(),
        target_dir: target_dir.clone(),
    };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("dist").join(&brand.app_id));
    std::fs::create_dir_all(&out).at(&out)?;
    let out = std::path::absolute(&out).at(&out)?;
    let stage = target_dir.join("stage").join(&brand.app_id);
    let brand_dir = target_dir.join("brands").join(&brand.app_id);
    let state_dir = bref.cert_dir.clone().unwrap_or_else(|| bref.dir.clone());
    let reserved = number::reserve(&state_dir, a.build_number)?;
    if a.build_number.is_some() && reserved.number <= reserved.last {
        eprintln!(
            "warning: build number {} is not above the brand's last one ({}): its MSIs do not replace an installed build {}",
            reserved.number,
            reserved.last,
            reserved.last
        );
    }
    let vars = compiled::Vars::new(&brand, reserved.number);
    let mut p = progress::Progress::new(json);
    p.step("render the compiled brand", || compiled::write(&brand, &vars, &brand_dir))?;
    let signer = if a.sign && win { Some(sign::Signer::new(&brand, &target_dir)?) } else { None };
    let windows_triple = match a.toolchain {
        Toolchain::Gnu => "x86_64-pc-windows-gnu",
        Toolchain::Msvc => "x86_64-pc-windows-msvc",
    };
    let plan = compile::Plan {
        windows: win.then_some(windows_triple),
        linux: if lin {
            let mut archs = a.linux_arch.clone();
            archs.sort();
            archs.dedup();
            archs
        } else {
            Vec::new()
        },
    };
    let bins = compile::run(&cargo, &plan, &brand_dir, &mut p)?;
    let mut made = Vec::new();
    for (arch, dir) in &bins.gateway {
        let st = stage.join("linux");
        made.push(p.step(&format!("gateway bundle ({})", arch.triple()), || {
            linux::build(&brand, &vars, dir, *arch, &st, &out, cargo.epoch)
        })?);
    }
    if let Some(dir) = &bins.linux_apps {
        let st = stage.join("linux");
        made.push(p.step(&format!("apps bundle ({})", linux_apps::TRIPLE), || {
            linux_apps::build(&brand, &vars, dir, &st, &out, cargo.epoch)
        })?);
    }
    if let Some(dir) = &bins.windows {
        let st = stage.join("windows");
        std::fs::create_dir_all(&st).at(&st)?;
        made.extend(windows::build(
            &brand,
            &vars,
            a.installers,
            cargo.epoch,
            dir,
            &brand_dir,
            &st,
            &out,
            signer.as_ref(),
            &mut p,
        )?);
    }
    let outputs: Vec<Output> = made.iter().map(|m| outputs::describe(m)).collect::<Result<_>>()?;
    outputs::write_sums(&out, &outputs)?;
    let brand_digest = compiled::digest(&brand_dir)?;
    let manifest = serde_json::json!({
        "app_id": brand.app_id, "version": brand.version, "build": vars.build,
        "file_version": vars.file_version, "msi_product_version": vars.msi_version, "brand_digest": brand_digest,
        "source_date_epoch": cargo.epoch, "git_commit": cargo::git_commit(&workspace),
        "target": a.target, "toolchain": a.toolchain, "signed": a.sign,
        "installers": if win { Some(a.installers) } else { None },
        "tools": outputs::tool_versions(),
        "outputs": outputs.iter().map(|o| serde_json::json!({"name": o.name, "sha256": o.sha256, "size": o.size})).collect::<Vec<_>>(),
    });
    let mpath = out.join("build-manifest.json");
    std::fs::write(&mpath, serde_json::to_string_pretty(&manifest).expect("json")).at(&mpath)?;
    Ok(Summary {
        app_id: brand.app_id,
        version: brand.version,
        build: vars.build,
        out_dir: out,
        outputs,
        brand_digest,
        steps: p.steps,
    })
}
