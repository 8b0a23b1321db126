//! `builder doctor` and `builder setup`: the external tools and Rust targets a
//! build needs, each with the exact command that installs it.

use crate::error::{Error, Result};
use std::process::Command;

/// What a prerequisite is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// `build --target windows`.
    Windows,
    /// `build --target linux` (cargo-zigbuild, zig and the musl targets).
    Linux,
    /// `--sign` and `new --self-signed-codesign`.
    Sign,
    /// Tests only (reading MSI files).
    Tests,
}

/// One prerequisite.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Prereq {
    /// Command or rustup target name.
    pub name: &'static str,
    /// Whether `name` is a rustup target rather than a command.
    pub rust_target: bool,
    /// Debian package providing it.
    pub apt: Option<&'static str>,
    /// The command that installs it when neither apt nor rustup does.
    pub other: Option<&'static str>,
    /// What needs it.
    pub need: Need,
}

/// The cargo-zigbuild the builder is tested with.
pub const CARGO_ZIGBUILD: &str = "cargo-zigbuild@0.24.0";
/// The ziglang (PyPI) the builder is tested with.
pub const ZIGLANG: &str = "ziglang==0.15.2";

/// Every prerequisite.
pub const PREREQS: [Prereq; 12] = [
    Prereq { name: "x86_64-pc-windows-gnu", rust_target: true, apt: None, other: None, need: Need::Windows },
    Prereq {
        name: "x86_64-w64-mingw32-gcc",
        rust_target: false,
        apt: Some("gcc-mingw-w64-x86-64"),
        other: None,
        need: Need::Windows,
    },
    Prereq {
        name: "x86_64-w64-mingw32-windres",
        rust_target: false,
        apt: Some("binutils-mingw-w64-x86-64"),
        other: None,
        need: Need::Windows,
    },
    Prereq { name: "makensis", rust_target: false, apt: Some("nsis"), other: None, need: Need::Windows },
    Prereq { name: "wixl", rust_target: false, apt: Some("wixl"), other: None, need: Need::Windows },
    Prereq { name: "x86_64-unknown-linux-musl", rust_target: true, apt: None, other: None, need: Need::Linux },
    Prereq { name: "aarch64-unknown-linux-musl", rust_target: true, apt: None, other: None, need: Need::Linux },
    Prereq {
        name: "cargo-zigbuild",
        rust_target: false,
        apt: None,
        other: Some("scripts/setup.sh (from PyPI, beside zig), or cargo install --locked cargo-zigbuild@0.24.0"),
        need: Need::Linux,
    },
    Prereq {
        name: "zig",
        rust_target: false,
        apt: None,
        other: Some("scripts/setup.sh (ziglang==0.15.2 from PyPI in a venv, its zig linked into ~/.cargo/bin)"),
        need: Need::Linux,
    },
    Prereq { name: "osslsigncode", rust_target: false, apt: Some("osslsigncode"), other: None, need: Need::Sign },
    Prereq { name: "openssl", rust_target: false, apt: Some("openssl"), other: None, need: Need::Sign },
    Prereq { name: "msiinfo", rust_target: false, apt: Some("msitools"), other: None, need: Need::Tests },
];

impl Prereq {
    /// The command that installs it.
    pub fn install_command(&self) -> String {
        match (self.other, self.apt) {
            (Some(cmd), _) => cmd.to_string(),
            (None, Some(p)) => format!("apt-get install -y {p}"),
            (None, None) => format!("rustup target add {}", self.name),
        }
    }

    /// Whether it is present.
    pub fn present(&self) -> bool {
        if self.rust_target {
            installed_targets().iter().any(|t| t == self.name)
        } else {
            which(self.name)
        }
    }
}

/// Whether a command is on PATH.
pub fn which(cmd: &str) -> bool {
    which::which(cmd).is_ok()
}

fn installed_targets() -> Vec<String> {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Every prerequisite with its state.
pub fn report() -> Vec<(Prereq, bool)> {
    let targets = installed_targets();
    PREREQS
        .iter()
        .map(|p| (*p, if p.rust_target { targets.iter().any(|t| t == p.name) } else { which(p.name) }))
        .collect()
}

/// The report as text.
pub fn render(rows: &[(Prereq, bool)]) -> String {
    let mut s = String::new();
    for (p, ok) in rows {
        let state = if *ok { "present".to_string() } else { format!("MISSING  install: {}", p.install_command()) };
        s.push_str(&format!("{:<28} {:<8} {}\n", p.name, format!("{:?}", p.need).to_lowercase(), state));
    }
    s
}

/// Stops before any work when something `needs` requires is missing.
pub fn require(needs: &[Need]) -> Result<()> {
    let missing: Vec<String> = report()
        .into_iter()
        .filter(|(p, ok)| !ok && needs.contains(&p.need))
        .map(|(p, _)| format!("  {}: {}", p.name, p.install_command()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Missing(format!("{}\n(or run `builder setup` as root)", missing.join("\n"))))
    }
}

/// Installs what is missing (apt and rustup); needs root for apt.
pub fn setup() -> Result<Vec<String>> {
    let rows = report();
    let apt: Vec<&str> = rows.iter().filter(|(p, ok)| !ok && p.apt.is_some()).filter_map(|(p, _)| p.apt).collect();
    let targets: Vec<&str> = rows.iter().filter(|(p, ok)| !ok && p.rust_target).map(|(p, _)| p.name).collect();
    let mut done = Vec::new();
    if !apt.is_empty() {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if uid != "0" {
            return Err(Error::Usage(format!(
                "`builder setup` installs Debian packages and must run as root; or run: apt-get install -y {}",
                apt.join(" ")
            )));
        }
        run("apt-get", &["update"])?;
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(&apt);
        run("apt-get", &args)?;
        done.push(format!("apt-get install -y {}", apt.join(" ")));
    }
    if !targets.is_empty() {
        let mut args = vec!["target", "add"];
        args.extend(&targets);
        run("rustup", &args)?;
        done.push(format!("rustup target add {}", targets.join(" ")));
    }
    for (p, _) in rows.iter().filter(|(p, ok)| !ok && p.other.is_some()) {
        done.push(format!("still missing {}: {}", p.name, p.install_command()));
    }
    Ok(done)
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let st = Command::new(cmd)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| Error::Tool { tool: cmd.into(), msg: e.to_string() })?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::Tool { tool: cmd.into(), msg: format!("`{cmd} {}` failed ({st})", args.join(" ")) })
    }
}

/// First line of `cmd args` output (for the build manifest), or `missing`.
pub fn tool_version(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
        }
        Err(_) => "missing".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scripts/setup.sh` (what CI and developers run) installs the versions
    /// the builder names.
    #[test]
    fn setup_script_pins_the_zig_tools_the_builder_names() {
        let setup = include_str!("../../scripts/setup.sh");
        let zigbuild = CARGO_ZIGBUILD.trim_start_matches("cargo-zigbuild@");
        assert!(setup.lines().any(|l| l == format!("ZIGBUILD={zigbuild}")), "ZIGBUILD={zigbuild} in scripts/setup.sh");
        let zig = ZIGLANG.trim_start_matches("ziglang==");
        assert!(setup.lines().any(|l| l == format!("ZIGLANG={zig}")), "ZIGLANG={zig} in scripts/setup.sh");
        let pinned = include_str!("../../scripts/zig-requirements.txt");
        for pin in [ZIGLANG.to_string(), CARGO_ZIGBUILD.replace('@', "==")] {
            assert!(pinned.lines().any(|l| l.starts_with(&format!("{pin} "))), "{pin} in scripts/zig-requirements.txt");
        }
        let other = |n: &str| PREREQS.iter().find(|p| p.name == n).and_then(|p| p.other).unwrap();
        assert!(other("cargo-zigbuild").ends_with(CARGO_ZIGBUILD));
        assert!(other("zig").contains(ZIGLANG));
    }
}
