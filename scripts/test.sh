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
#                             priority beside the build and the tests, then
#                             run on its seeds and on mutations: 50,000
#                             executions each). The two checks' tools compile
#                             in that lane too (scripts/setup.sh --checks-only).
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
# The host build needs only a few apt packages. The rest of the setup (Wine,
# Chromium and the other test tools from apt, the Rust targets, nightly,
# cargo-zigbuild, zig: minutes of downloading and unpacking on a fresh
# machine) runs in a second lane while the build compiles; the tests wait for
# it. Once it is done, the same lane compiles the checks' tools (cargo-fuzz,
# cargo-deny) and the fuzz targets at the lowest CPU priority, beside the build
# and then the tests: they take only what the build and the tests leave idle
# (the tests spend much of their time waiting on Wine, Xvfb and installers).
./scripts/setup.sh --host-build
echo "test.sh: the host build's setup took $(( $(date +%s) - start )) s"
mkdir -p target
setup_log=target/setup.log
setup_status=target/setup.status
fuzz_log=target/fuzz-build.log
rm -f "$setup_status"
(
    if ./scripts/setup.sh --defer-checks >"$setup_log" 2>&1; then
        echo "ok $(( $(date +%s) - start ))" >"$setup_status"
        nice -n 19 bash -c './scripts/setup.sh --checks-only && ./fuzz/run.sh --build-only' >"$fuzz_log" 2>&1
    else
        echo "failed $(( $(date +%s) - start ))" >"$setup_status"
        exit 1
    fi
) &
lane=$!
status=0
build_ok=1
cargo build --workspace --bins --tests --locked || build_ok=0
echo "test.sh: setup and build took $(( $(date +%s) - start )) s"
while [ ! -s "$setup_status" ] && kill -0 "$lane" 2>/dev/null; do sleep 2; done
grep -v '^ *\(Compiling\|Downloaded\|Downloading\|Installing\|Updating\|Locking\|Adding\) ' "$setup_log" || true
read -r setup_result setup_secs <"$setup_status" 2>/dev/null || setup_result=missing
echo "test.sh: the rest of the setup, beside the build: $setup_result, ${setup_secs:-?} s after the start; now $(( $(date +%s) - start )) s"
if [ "$setup_result" != ok ]; then
    echo "test.sh: scripts/setup.sh --defer-checks failed (its output above)" >&2
    exit 1
fi
[ "$build_ok" = 1 ] || exit 1
cargo test --workspace --locked --no-fail-fast || status=$?
echo "test.sh: setup, build and tests took $(( $(date +%s) - start )) s"
if [ -f target/builder-timings.log ]; then
    echo "test.sh: the builder test's own builds (builder/tests/outputs/built.rs):"
    cat target/builder-timings.log
fi
fuzz_ok=1
wait "$lane" || fuzz_ok=0
grep -v '^ *\(Compiling\|Downloaded\|Downloading\|Installing\|Updating\|Locking\|Adding\) ' "$fuzz_log" || true
echo "test.sh: check tools and fuzz build (beside the build and the tests) done $(( $(date +%s) - start )) s after the start"
fuzz_start=$(date +%s)
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
echo "test.sh: cargo deny and the fuzz runs took $(( $(date +%s) - fuzz_start )) s"
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
