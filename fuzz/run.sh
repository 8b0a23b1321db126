#!/usr/bin/env bash
# Builds the fuzz targets once, then runs each, one after the other, on one
# core: its committed seeds (seeds/TARGET) plus what it finds (a scratch
# corpus under target/corpus, not committed). A crash stops the run; its input
# is in artifacts/TARGET/.
#
#   fuzz/run.sh --smoke [TARGET...]      the CI smoke (scripts/test.sh): every
#                                        seed, then 50,000 executions each
#   fuzz/run.sh --time S [TARGET...]     S seconds each
#   fuzz/run.sh --runs N [TARGET...]     N executions each (the figures in BENCHMARKS.md);
#                                        with --time too, whichever comes first
#   fuzz/run.sh --no-build ...           reuse the last build
#   fuzz/run.sh --build-only             build, run nothing (scripts/test.sh
#                                        builds while the tests run)
#   fuzz/run.sh --list                   the targets
#
# Needs cargo-fuzz (scripts/setup.sh installs it) and builds with the nightly
# toolchain when there is one, else with stable (no sanitizer needs nightly's
# -Z flags; FUZZ_SANITIZER=address needs nightly). FUZZ_TARGET_DIR moves the
# build (default fuzz/target). Prints one line per target: executions,
# seconds, executions per second.
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(frame messages http_head proxy_protocol thingate_ini policy_ini machine_db stb brand_toml entry_point auth records)
limit=()
build=1
run=1
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) limit+=(-runs=50000); shift ;;
        --time) limit+=(-max_total_time="$2"); shift 2 ;;
        --runs) limit+=(-runs="$2"); shift 2 ;;
        --no-build) build=0; shift ;;
        --build-only) run=0; shift ;;
        --list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
        -*) echo "usage: $0 [--no-build] [--smoke | --time S | --runs N] [TARGET...]" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] && TARGETS=("$@")
[ ${#limit[@]} -gt 0 ] || limit=(-runs=50000)

# Release with debug assertions and overflow checks, the whole crate once.
# Without AddressSanitizer: the parsers are safe Rust (#![forbid(unsafe_code)]),
# and ASan took half again the build's CPU time (530 s against 353 s) and ran
# the targets 2-3 times slower; the targets bound allocations themselves
# (thin_fuzz::Budget, MALLOC_LIMIT).
# FUZZ_SANITIZER=address builds with it (then -malloc_limit_mb works too).
toolchain=stable
if rustup toolchain list | grep -q '^nightly'; then toolchain=nightly; fi
tdir="${FUZZ_TARGET_DIR:-target}"
start=$(date +%s)
if [ "$build" = 1 ]; then
    cargo "+$toolchain" fuzz build --target-dir "$tdir" --debug-assertions --sanitizer "${FUZZ_SANITIZER:-none}"
    echo "fuzz: build ($toolchain) took $(( $(date +%s) - start )) s"
fi
[ "$run" = 1 ] || exit 0
bin="$tdir/x86_64-unknown-linux-gnu/release"

for t in "${TARGETS[@]}"; do
    corpus="$tdir/corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    log="$tdir/corpus/$t.log"
    t0=$(date +%s.%N)
    status=0
    # One process, one job (no -jobs/-workers, which would fork workers that
    # log to files of their own): the machine is shared. -rss_limit_mb bounds
    # the process, -malloc_limit_mb one allocation (under a sanitizer); the
    # targets also bound what one input may hold at once (thin_fuzz::Budget).
    "$bin/$t" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 "${limit[@]}" \
        "$corpus" "seeds/$t" >"$log" 2>&1 || status=$?
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    runs=${runs:-0}
    rate=$(echo "scale=0; $runs / $secs" | bc)
    printf 'fuzz: %-15s %10s runs in %6.1f s (%s exec/s)\n' "$t" "$runs" "$secs" "$rate"
    if [ "$status" != 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz: $t FAILED (exit $status); the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: all ${#TARGETS[@]} targets passed in $(( $(date +%s) - start )) s"
