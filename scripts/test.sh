#!/usr/bin/env bash
# Runs the whole test suite: installs prerequisites, builds every binary once,
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast
