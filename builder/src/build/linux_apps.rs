//! `build --target linux` (x86_64): the office-PC apps for Linux with the brand
//! compiled in, `thinsvr`'s systemd unit and an install script.

use super::archive;
use super::compiled::Vars;
use crate::error::{IoContext, Result};
use crate::manifest::Brand;
use crate::render;
use std::path::{Path, PathBuf};

/// The oldest glibc the Linux apps run on: they are linked (`cargo zigbuild`)
/// against glibc 2.17's symbols only (CentOS/RHEL 7, Ubuntu 14.04, Debian 8
/// and everything newer). Not static musl: their windows load the system's
/// OpenGL, EGL and X libraries at run time (`dlopen`), which only a glibc
/// process can do.
pub const GLIBC_BASELINE: &str = "2.17";

/// The only triple the apps bundle is made for, with its glibc baseline
/// (`cargo zigbuild`'s `TRIPLE.GLIBC` form).
pub const TRIPLE: &str = "x86_64-unknown-linux-gnu.2.17";

/// File name of the apps bundle (without `.tar.gz`).
pub fn bundle_name(b: &Brand) -> String {
    format!("thinapps-{}-{}-linux-x86_64", b.app_id, b.version)
}

/// Builds the bundle into `out` from the apps compiled with the brand in
/// `bin_dir`; `stage` is a scratch folder. Returns the archive.
pub fn build(b: &Brand, v: &Vars, bin_dir: &Path, stage: &Path, out: &Path, epoch: i64) -> Result<PathBuf> {
    let bin = |f: &str| std::fs::read(bin_dir.join(f)).at(bin_dir.join(f));
    let files: archive::Files = vec![
        ("thinsvr".into(), bin("thinsvr")?, 0o755),
        ("thinclient".into(), bin("thinclient")?, 0o755),
        (
            format!("thinsvr-{}.service", v.app_id_lower),
            render::render(render::APPS_SYSTEMD_UNIT, v)?.into_bytes(),
            0o644,
        ),
        ("install.sh".into(), render::render(render::APPS_INSTALL_SH, v)?.into_bytes(), 0o755),
        (
            format!("sysusers.d/{}.conf", v.apps_user),
            super::linux::sysusers(&v.apps_user, "ThinServer office PC service", v, &v.apps_state_dir)?,
            0o644,
        ),
    ];
    // No key inside: readable like any other download.
    archive::bundle(&bundle_name(b), files, stage, out, epoch, 0o644)
}

#[cfg(test)]
mod tests {
    use crate::render;

    fn vars() -> serde_json::Value {
        serde_json::json!({"app_id": "Mikaka", "app_id_lower": "mikaka", "system_name": "Mikaka Remote",
            "version": "1.2.3", "apps_dir": "/opt/thinapps-mikaka", "apps_state_dir": "/var/lib/thinapps-mikaka",
            "service_args": "service", "apps_user": "thinsvr-mikaka"})
    }

    #[test]
    fn unit_runs_the_service_with_its_state_directory() {
        let unit = render::render(render::APPS_SYSTEMD_UNIT, &vars()).unwrap();
        for line in [
            "Description=Mikaka Remote office PC service (thinsvr, AppId Mikaka)",
            "ExecStart=/opt/thinapps-mikaka/thinsvr --config-dir /var/lib/thinapps-mikaka service",
            "User=thinsvr-mikaka",
            "Group=thinsvr-mikaka",
            "StateDirectory=thinapps-mikaka",
            "StateDirectoryMode=0700",
            "CapabilityBoundingSet=",
            "AmbientCapabilities=",
            "PrivateUsers=yes",
            "Restart=always",
            "After=network-online.target",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
        }
    }

    #[test]
    fn install_script_names_the_brands_files() {
        let sh = render::render(render::APPS_INSTALL_SH, &vars()).unwrap();
        assert!(sh.starts_with("#!/bin/bash\n"), "{sh}");
        assert!(sh.contains("set -euo pipefail"));
        assert!(sh.contains(r#"dest="$root/opt/thinapps-mikaka""#), "{sh}");
        assert!(sh.contains("unit=thinsvr-mikaka.service"), "{sh}");
        assert!(sh.contains("user=thinsvr-mikaka"), "{sh}");
        assert!(!sh.contains("{{"), "{sh}");
    }
}
