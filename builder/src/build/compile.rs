//! The cargo runs of one build, one after the other in one cargo target
//! folder: the Windows apps, the Linux apps (glibc 2.17 baseline, see
//! `super::linux_apps`), then the gateway for each architecture (static musl,
//! see `super::linux`). The x86_64 gateway is a run of its own since it is
//! another Rust target than the Linux apps; that costs a compile of the
//! gateway's dependencies for musl (tokio, rustls, ring, ...). The Linux apps
//! compile in a target folder of their own (see `CargoEnv::target_dir_of`).
//! (Running the Windows and the Linux compiles at the
//! same time, in two target folders, was measured slower on 2 cores: 957 s
//! against 934 s cold, since each cargo run already keeps both cores busy and
//! the build scripts and proc-macros were compiled twice.)

use super::cargo::CargoEnv;
use super::linux::Arch;
use super::progress::Progress;
use crate::error::Result;
use std::path::{Path, PathBuf};

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

/// Runs the plan; `brand_dir` is the compiled brand.
pub fn run(cargo: &CargoEnv, plan: &Plan, brand_dir: &Path, p: &mut Progress) -> Result<Compiled> {
    let brand = [("THIN_BRAND_DIR", brand_dir)];
    let mut c = Compiled::default();
    if let Some(triple) = plan.windows {
        let name = format!("compile thinclient.exe and thinsvr.exe ({triple})");
        c.windows = Some(p.step(&name, || cargo.build(&["thin-apps"], triple, &["--bins"], &brand))?);
    }
    if plan.linux.contains(&Arch::X86_64) {
        let triple = super::linux_apps::TRIPLE;
        let name = format!("compile the Linux apps ({triple})");
        c.linux_apps = Some(p.step(&name, || cargo.build(&["thin-apps"], triple, &["--bins"], &brand))?);
    }
    for &arch in &plan.linux {
        let triple = arch.triple();
        let name = format!("compile thingate ({triple})");
        let dir = p.step(&name, || cargo.build(&["thingate"], triple, &["--bin", "thingate"], &[]))?;
        c.gateway.push((arch, dir));
    }
    Ok(c)
}
