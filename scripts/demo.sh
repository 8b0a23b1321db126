#!/usr/bin/env bash
# The main job: build the default brand's installers and gateway bundle
# (dist/Private/), then show the system working on loopback with that bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --workspace --bins --locked
./target/release/builder build --target all
ls -l dist/*/
exec ./scripts/show-system.sh ./target/release
