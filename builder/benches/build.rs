//! Build-time benchmark (issue 3, point 11): a cold `builder build --target all`
//! into an empty cargo target folder, then a warm rebrand: a second brand built
//! with `--target all` into the same folder. Prints the figures; run with
//! `cargo bench -p builder --bench build` (about 10 minutes on 2 cores).
//! `BENCH_TARGET_DIR` reuses a target folder (then the first build is not cold).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs the builder with `--json`; returns its wall time and prints the
/// build's steps (when it is a build).
fn builder(root: &Path, args: &[&str]) -> f64 {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_builder")).arg("--json").args(args).current_dir(root).output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "builder {args:?}:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    if let Some(steps) = summary["steps"].as_array() {
        println!("builder {}: {secs:.1} s", args.join(" "));
        for s in steps {
            println!("  {:7.1} s  {}", s[1].as_f64().unwrap_or(0.0), s[0].as_str().unwrap_or(""));
        }
    }
    secs
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let fresh = r.join("target");
    let target = std::env::var("BENCH_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or(fresh);
    let target = target.display().to_string();
    builder(r, &["new", "--app-id", "BenchA", "--dir", "a", "--rpc-port", "9931"]);
    builder(r, &["new", "--app-id", "BenchB", "--dir", "b", "--rpc-port", "9932", "--system-name", "Bench B"]);
    let cold =
        builder(r, &["build", "--brand", "a", "--target", "all", "--out", "out-a", "--cargo-target-dir", &target]);
    let warm =
        builder(r, &["build", "--brand", "b", "--target", "all", "--out", "out-b", "--cargo-target-dir", &target]);
    let again =
        builder(r, &["build", "--brand", "a", "--target", "all", "--out", "out-a2", "--cargo-target-dir", &target]);
    println!("builder build --target all, cold (empty target folder): {cold:7.1} s  (floor: under 900 s)");
    println!("builder build --target all, warm rebrand (second brand): {warm:7.1} s  (floor: under 60 s)");
    println!("builder build --target all, first brand again:          {again:7.1} s");
}
