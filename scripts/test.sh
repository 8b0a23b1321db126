#!/usr/bin/env bash
# Runs the test suite.
#
#   scripts/test.sh           the whole suite (what CI runs): installs the
#                             prerequisites, builds every binary and test once,
#                             then runs every test of the workspace, including
#                             the builder's real cold build, the Windows apps
#                             under Wine and the windows' screenshots; then the
#                             supply-chain check (cargo deny: licences, bans,
#                             sources) and the fuzz smoke (fuzz/run.sh --smoke:
#                             every fuzz target built once, at the lowest
#                             priority while the tests run, then run on its
#                             seeds and on mutations: 50,000 executions each).
#                             The two checks' tools also compile while the
#                             tests run (scripts/setup.sh --checks-only).
#   scripts/test.sh --quick   the quick tier, for a developer after a warm
#                             build: the supply-chain check (when cargo-deny
#                             is installed; about a second), unit tests and the
#                             in-process loopback tests (no builder build, no
#                             Wine, no Xvfb, no fuzzing).
#
# Both build with one feature resolution (`--bins --tests` over the whole
# workspace): `cargo build --bins` alone resolves dependencies without the
# dev-dependencies' features and would compile much of the tree twice.
#
# The windows' screenshots (Linux build and Windows build under Wine) end up in
# target/screenshots/; with CI_ARTIFACTS_DIR set they are copied there too,
# also when a test failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The quick tier's test binaries (besides every crate's unit tests).
QUICK_TESTS=(config_files module_graph registry loopback proxy cli check_fixtures shipped_gateway_ini cert_policy import ci gui_windows)

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

if [ "$quick" = 1 ]; then
    args=(--lib --bins)
    for t in "${QUICK_TESTS[@]}"; do args+=(--test "$t"); done
    if command -v cargo-deny >/dev/null 2>&1; then
        cargo deny --locked check --hide-inclusion-graph licenses bans sources
    else
        echo "test.sh: cargo-deny is not installed (scripts/setup.sh installs it): supply-chain check skipped"
    fi
    cargo build --workspace --bins --tests --locked
    exec cargo test --workspace --locked --no-fail-fast "${args[@]}"
fi

start=$(date +%s)
./scripts/setup.sh --defer-checks
echo "test.sh: setup took $(( $(date +%s) - start )) s"
status=0
cargo build --workspace --bins --tests --locked
echo "test.sh: setup and build took $(( $(date +%s) - start )) s"
# The checks' tools (cargo-fuzz, cargo-deny) and the fuzz targets compile
# beside the tests at the lowest CPU priority: the tests spend much of their
# time waiting (Wine, Xvfb, installers), and the tests' own compiles (the
# builder's) take the CPU first.
fuzz_start=$(date +%s)
fuzz_log=target/fuzz-build.log
mkdir -p target
nice -n 19 bash -c './scripts/setup.sh --checks-only && ./fuzz/run.sh --build-only' >"$fuzz_log" 2>&1 &
fuzz_build=$!
cargo test --workspace --locked --no-fail-fast || status=$?
echo "test.sh: setup, build and tests took $(( $(date +%s) - start )) s"
if [ -f target/builder-timings.log ]; then
    echo "test.sh: the builder test's own builds (builder/tests/outputs/built.rs):"
    cat target/builder-timings.log
fi
fuzz_ok=1
wait "$fuzz_build" || fuzz_ok=0
grep -v '^ *\(Compiling\|Downloaded\|Downloading\|Installing\|Updating\|Locking\|Adding\) ' "$fuzz_log" || true
echo "test.sh: check tools and fuzz build finished $(( $(date +%s) - fuzz_start )) s after they started (beside the tests)"
# Licences, banned crates and sources of the dependency tree (deny.toml);
# offline. `cargo deny check advisories` needs a network database: README.md.
cargo deny --locked check --hide-inclusion-graph licenses bans sources || status=$?
if [ "$fuzz_ok" = 0 ] || ! ./fuzz/run.sh --smoke --no-build; then
    status=1
    if [ -n "${CI_ARTIFACTS_DIR:-}" ]; then
        mkdir -p "$CI_ARTIFACTS_DIR"
        cp -r fuzz/artifacts "$CI_ARTIFACTS_DIR/fuzz-artifacts"
        echo "fuzz crash inputs copied to $CI_ARTIFACTS_DIR/fuzz-artifacts"
    fi
fi
echo "test.sh: fuzz smoke (build and runs) took $(( $(date +%s) - fuzz_start )) s"
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
