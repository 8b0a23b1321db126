#!/usr/bin/env bash
# Runs the whole test suite: installs prerequisites, builds every binary once,
# then runs every test of the workspace. The windows' screenshots (Linux build
# and Windows build under Wine) end up in target/screenshots/; with
# CI_ARTIFACTS_DIR set they are copied there too, also when a test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --workspace --bins --locked
status=0
cargo test --workspace --locked --no-fail-fast || status=$?
shots="${THIN_SCREENSHOT_DIR:-target/screenshots}"
if [ -d "$shots" ]; then
    echo "screenshots in $shots:"
    ls -l "$shots"
    if [ -n "${CI_ARTIFACTS_DIR:-}" ]; then
        mkdir -p "$CI_ARTIFACTS_DIR"
        cp -r "$shots" "$CI_ARTIFACTS_DIR/"
        echo "copied to $CI_ARTIFACTS_DIR/$(basename "$shots")"
    fi
else
    echo "no screenshots ($shots missing)"
fi
exit "$status"
