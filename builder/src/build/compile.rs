//! The cargo runs of one build. The Windows apps compile in one cargo target
//! folder and the Linux binaries in another, at the same time: one cargo run
//! leaves a core idle for long stretches (one big crate alone, a build script,
//! a link), and the other run fills them. The x86_64 gateway and the Linux
//! apps are one cargo run, so their common dependencies (tokio, rustls, ring,
//! ...) get one feature resolution and are compiled once.

use super::cargo::CargoEnv;
use super::linux::Arch;
use super::progress::Progress;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to compile.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Windows triple of the apps, if Windows is built.
    pub windows: Option<&'static str>,
    /// Architectures of the gateway; the Linux apps come with x86_64.
    pub linux: Vec<Arch>,
}

/// Folders holding the compiled binaries.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// `thinclient.exe` and `thinsvr.exe`.
    pub windows: Option<PathBuf>,
    /// `thingate` per architecture.
    pub gateway: Vec<(Arch, PathBuf)>,
    /// `thinsvr` and `thinclient` for Linux.
    pub linux_apps: Option<PathBuf>,
}

/// The cargo target folders under the builder's folder `root`.
pub fn target_dirs(root: &Path) -> (PathBuf, PathBuf) {
    (root.join("cargo-windows"), root.join("cargo-linux"))
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    f().map(|v| (v, t.elapsed().as_secs_f64()))
}

/// Runs the plan: Windows and Linux at the same time. `cargo` carries the
/// builder's folder as its target folder; `brand_dir` is the compiled brand.
pub fn run(cargo: &CargoEnv, plan: &Plan, brand_dir: &Path, p: &mut Progress) -> Result<Compiled> {
    let (win_dir, lin_dir) = target_dirs(&cargo.target_dir);
    let (win_cargo, lin_cargo) = (cargo.with_target_dir(win_dir), cargo.with_target_dir(lin_dir));
    let brand = [("THIN_BRAND_DIR", brand_dir)];
    let windows = |triple: &str| timed(|| win_cargo.build(&["thin-apps"], triple, &["--bins"], &brand));
    let linux = || {
        timed(|| {
            let mut c = Compiled::default();
            for &arch in &plan.linux {
                let dir = if arch == Arch::X86_64 {
                    let d = lin_cargo.build(&["thingate", "thin-apps"], arch.triple(), &["--bins"], &brand)?;
                    c.linux_apps = Some(d.clone());
                    d
                } else {
                    lin_cargo.build(&["thingate"], arch.triple(), &["--bin", "thingate"], &[])?
                };
                c.gateway.push((arch, dir));
            }
            Ok(c)
        })
    };
    let mut names = Vec::new();
    if let Some(t) = plan.windows {
        names.push(format!("thinclient.exe and thinsvr.exe ({t})"));
    }
    if !plan.linux.is_empty() {
        let archs: Vec<&str> = plan.linux.iter().map(|a| a.name()).collect();
        let apps = if plan.linux.contains(&Arch::X86_64) { " and the Linux apps" } else { "" };
        names.push(format!("thingate ({}){apps}", archs.join(", ")));
    }
    let (win, lin) = p.step(&format!("compile {}", names.join(" | ")), || {
        std::thread::scope(|s| {
            let lin = (!plan.linux.is_empty()).then(|| s.spawn(linux));
            let win = plan.windows.map(windows).transpose();
            let lin = lin.map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).transpose();
            Ok::<_, crate::error::Error>((win?, lin?))
        })
    })?;
    let mut c = Compiled::default();
    if let Some((dir, secs)) = win {
        p.record(&format!("  of which Windows: {}", names[0]), secs);
        c.windows = Some(dir);
    }
    if let Some((lc, secs)) = lin {
        p.record(&format!("  of which Linux: {}", names[names.len() - 1]), secs);
        c.gateway = lc.gateway;
        c.linux_apps = lc.linux_apps;
    }
    Ok(c)
}
