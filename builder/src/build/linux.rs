//! `build --target linux`: `thingate` for x86_64 and aarch64 with its rendered
//! configuration, certificate, systemd unit, kernel settings and install script.
//!
//! The gateway is a static musl binary: it loads nothing from the host (no
//! libc, no `ld.so`), so one bundle runs on any Linux kernel since 3.2, from
//! the manual's Ubuntu 18.04 and RHEL 7 to today's. It needs no system
//! library at run time (TLS is rustls, DNS lookups read `/etc/hosts` and
//! `/etc/resolv.conf` through musl's resolver).

use super::archive;
use super::compiled::Vars;
use crate::error::{IoContext, Result};
use crate::manifest::Brand;
use crate::render;
use std::path::{Path, PathBuf};

/// A Linux architecture of the gateway bundle.
/// Ordered as declared: x86_64 first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86_64-unknown-linux-musl.
    #[value(name = "x86_64")]
    X86_64,
    /// aarch64-unknown-linux-musl.
    Aarch64,
}

impl Arch {
    /// Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// Name in file names.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// File name of a bundle.
pub fn bundle_name(b: &Brand, arch: Arch) -> String {
    format!("thingate-{}-{}-linux-{}", b.app_id, b.version, arch.name())
}

/// Builds one bundle into `out` from the compiled `thingate` in `bin_dir`;
/// `stage` is a scratch folder. Returns the archive.
pub fn build(b: &Brand, v: &Vars, bin_dir: &Path, arch: Arch, stage: &Path, out: &Path, epoch: i64) -> Result<PathBuf> {
    let lower = &v.app_id_lower;
    let unit = format!("thingate-{lower}.service");
    let conf = format!("90-thingate-{lower}.conf");
    let files: archive::Files = vec![
        ("thingate".into(), std::fs::read(bin_dir.join("thingate")).at(bin_dir.join("thingate"))?, 0o755),
        ("ThinGate.ini".into(), render::render(render::THINGATE_INI, v)?.into_bytes(), 0o644),
        (
            format!("sysusers.d/{}.conf", v.gate_user),
            sysusers(&v.gate_user, "ThinGate gateway", v, &v.gate_state_dir)?,
            0o644,
        ),
        ("ThinGate.cer".into(), std::fs::read(&b.certs.gateway_cert).at(&b.certs.gateway_cert)?, 0o644),
        ("ThinGate.key".into(), std::fs::read(&b.certs.gateway_key).at(&b.certs.gateway_key)?, 0o600),
        (unit, render::render(render::SYSTEMD_UNIT, v)?.into_bytes(), 0o644),
        (format!("sysctl.d/{conf}"), render::render(render::SYSCTL, v)?.into_bytes(), 0o644),
        (format!("limits.d/{conf}"), render::render(render::LIMITS, v)?.into_bytes(), 0o644),
        ("install.sh".into(), render::render(render::INSTALL_SH, v)?.into_bytes(), 0o755),
    ];
    // The bundle carries the gateway's private key.
    archive::bundle(&bundle_name(b, arch), files, stage, out, epoch, 0o600)
}

/// The `sysusers.d` file that makes the system user `user` of a service.
pub fn sysusers(user: &str, what: &str, v: &Vars, home: &str) -> Result<Vec<u8>> {
    let data = serde_json::json!({"user": user, "description": format!("{what}, AppId {}", v.app_id), "home": home});
    Ok(render::render(render::SYSUSERS, &data)?.into_bytes())
}
