//! Running cargo for the apps and the gateway, reproducibly: fixed
//! `SOURCE_DATE_EPOCH`, paths remapped out of the binaries, no PE timestamp.
//!
//! Linux targets go through `cargo zigbuild`: zig is their linker and C
//! compiler (ring's C code), which links static musl binaries for any
//! architecture and glibc binaries against an old glibc baseline
//! (`x86_64-unknown-linux-gnu.2.17`: only symbols glibc 2.17 has), without a
//! cross gcc or an old sysroot on the build machine.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How cargo is run.
#[derive(Debug, Clone)]
pub struct CargoEnv {
    /// Workspace root (holds `Cargo.toml`).
    pub workspace: PathBuf,
    /// Target folder used by the builder's builds.
    pub target_dir: PathBuf,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: i64,
}

/// `SOURCE_DATE_EPOCH` from the environment, else the last commit's time, else
/// 1980-01-02 (the earliest time a zip file can carry in every time zone).
pub fn source_date_epoch(workspace: &Path) -> i64 {
    if let Some(v) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok()) {
        return v;
    }
    Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(workspace)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(315_619_200)
}

/// The commit the build is made from, if the workspace is a git checkout.
pub fn git_commit(workspace: &Path) -> Option<String> {
    let o = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(workspace).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"))
}

impl CargoEnv {
    /// Rust flags that strip local paths (and, for Windows, the PE timestamp).
    fn rustflags(&self, triple: &str) -> String {
        let mut f = vec![
            format!("--remap-path-prefix={}=/build", self.workspace.display()),
            format!("--remap-path-prefix={}=/cargo", cargo_home().display()),
            format!("--remap-path-prefix={}=/target", self.target_dir_of(triple).display()),
        ];
        if triple.contains("windows-gnu") {
            f.push("-Clink-arg=-Wl,--no-insert-timestamp".into());
        }
        f.join("\x1f")
    }

    /// `cargo build --profile dist -p PACKAGE... --target TRIPLE <extra>` with
    /// `envs` (`cargo zigbuild` for Linux, see [`uses_zig`]); returns the
    /// folder holding the binaries. Packages built by one call share one
    /// feature resolution, so their common dependencies are compiled once.
    /// Output is shown only on failure.
    pub fn build(&self, packages: &[&str], triple: &str, extra: &[&str], envs: &[(&str, &Path)]) -> Result<PathBuf> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&self.workspace)
            .arg(if uses_zig(triple) { "zigbuild" } else { "build" })
            .args(["--profile", "dist", "--manifest-path"])
            .arg(self.workspace.join("Cargo.toml"))
            .args(packages.iter().flat_map(|p| ["-p", p]))
            .args(["--target", triple])
            .args(extra)
            .env("CARGO_TARGET_DIR", self.target_dir_of(triple))
            .env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .env("CARGO_ENCODED_RUSTFLAGS", self.rustflags(triple))
            .env_remove("RUSTFLAGS")
            .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER", "x86_64-w64-mingw32-gcc")
            .env("CC_x86_64_pc_windows_gnu", "x86_64-w64-mingw32-gcc");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().map_err(|e| Error::Tool { tool: cargo.clone(), msg: format!("cannot run: {e}") })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
            let verb = if uses_zig(triple) { "zigbuild" } else { "build" };
            return Err(Error::Tool {
                tool: format!("cargo {verb} -p {} --target {triple}", packages.join(" -p ")),
                msg: format!("failed ({}):\n{}", out.status, tail.join("\n")),
            });
        }
        Ok(self.target_dir_of(triple).join(rust_triple(triple)).join("dist"))
    }

    /// The cargo target folder of `triple`. A glibc-baseline triple
    /// (`x86_64-unknown-linux-gnu.2.17`) is the build machine's own triple,
    /// so `cargo zigbuild` makes zig the linker of the build scripts and
    /// proc-macros as well: in a folder shared with the other runs, each
    /// switch between them would recompile those and every crate that uses
    /// them. It gets a folder of its own, `glibc/` inside the builder's.
    pub fn target_dir_of(&self, triple: &str) -> PathBuf {
        if triple != rust_triple(triple) {
            self.target_dir.join("glibc")
        } else {
            self.target_dir.clone()
        }
    }
}

/// Whether `triple` is compiled with `cargo zigbuild` (every Linux target).
pub fn uses_zig(triple: &str) -> bool {
    triple.contains("-linux-")
}

/// The Rust triple of a zigbuild target: `x86_64-unknown-linux-gnu.2.17`
/// (glibc baseline 2.17) is `x86_64-unknown-linux-gnu`.
pub fn rust_triple(triple: &str) -> &str {
    triple.split_once('.').map_or(triple, |(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_triples_go_through_zig_and_lose_their_glibc_suffix() {
        assert!(uses_zig("x86_64-unknown-linux-gnu.2.17") && uses_zig("aarch64-unknown-linux-musl"));
        assert!(!uses_zig("x86_64-pc-windows-gnu"));
        assert_eq!(rust_triple("x86_64-unknown-linux-gnu.2.17"), "x86_64-unknown-linux-gnu");
        assert_eq!(rust_triple("x86_64-unknown-linux-musl"), "x86_64-unknown-linux-musl");
        let env = CargoEnv { workspace: "/w".into(), target_dir: "/t".into(), epoch: 0 };
        assert_eq!(env.target_dir_of("x86_64-unknown-linux-gnu.2.17"), Path::new("/t/glibc"));
        assert_eq!(env.target_dir_of("x86_64-unknown-linux-musl"), Path::new("/t"));
        assert_eq!(env.target_dir_of("x86_64-pc-windows-gnu"), Path::new("/t"));
    }
}
