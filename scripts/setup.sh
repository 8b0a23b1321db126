#!/usr/bin/env bash
# Installs every prerequisite of the build and the tests (Debian/Ubuntu, as root
# or with sudo). Idempotent: does nothing when everything is present.
#
#   scripts/setup.sh                 everything
#   scripts/setup.sh --defer-checks  everything but the tools of the checks that
#                                    run after the tests (cargo-fuzz, cargo-deny):
#                                    scripts/test.sh compiles those at the lowest
#                                    priority while the tests run
#   scripts/setup.sh --checks-only   only those tools
#   scripts/setup.sh --host-build    only what `cargo build --workspace --bins
#                                    --tests` needs on this machine (a few apt
#                                    packages): scripts/test.sh installs the
#                                    rest (Wine, Chromium, NSIS, the Rust
#                                    targets, zig...) while that build runs
set -euo pipefail

mode=all
case "${1:-}" in
  --defer-checks) mode=defer ;;
  --checks-only) mode=checks ;;
  --host-build) mode=host ;;
  "") ;;
  *) echo "usage: $0 [--defer-checks | --checks-only | --host-build]" >&2; exit 2 ;;
esac

# What the host build itself needs: a C compiler (ring, psm), pkg-config and
# zlib (libz-sys, through libprotobuf-dev), protoc (etcd-client's build script).
# Everything else is for the cross builds and the tests.
HOST_BUILD_APT_PACKAGES=(build-essential pkg-config ca-certificates protobuf-compiler libprotobuf-dev)
APT_PACKAGES=(
  "${HOST_BUILD_APT_PACKAGES[@]}" curl openssl python3 python3-venv
  gcc-mingw-w64-x86-64
  nsis wixl msitools osslsigncode
  tinyproxy python3-aiosmtpd systemd
  etcd-server
  wine wine64
  chromium
  xvfb xauth imagemagick xdotool xclip x11-utils tesseract-ocr tesseract-ocr-eng xterm freerdp2-x11 libgl1-mesa-dri libegl1 libegl-mesa0 libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6
)
RUST_TARGETS=(x86_64-pc-windows-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
# cargo-zigbuild links the Linux gateway (static musl) and apps (glibc 2.17
# baseline) with zig; both come from PyPI (upstream's own wheels: a static
# cargo-zigbuild binary and zig's release, hash-pinned in
# scripts/zig-requirements.txt), into one venv, linked into cargo's bin
# folder. Keep the versions in step with that file and builder/src/doctor.rs.
ZIGBUILD=0.24.0
# The checks after the tests: the fuzz smoke and the supply-chain check.
CHECK_TOOLS=(cargo-fuzz@0.13.2 cargo-deny@0.20.2)
ZIGLANG=0.15.2

install_tools() {
  local tool name
  for tool in "$@"; do
    name=${tool%@*}
    command -v "$name" >/dev/null 2>&1 || cargo install --locked "$tool"
  done
}

if [ "$mode" = checks ]; then
  install_tools "${CHECK_TOOLS[@]}"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

wanted=("${APT_PACKAGES[@]}")
if [ "$mode" = host ]; then wanted=("${HOST_BUILD_APT_PACKAGES[@]}"); fi
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Do not start daemons (tinyproxy) on install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing; install it with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi
if [ "$mode" = host ]; then
  echo "setup: the host build's prerequisites present"
  exit 0
fi
installed=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
# Fuzzing (fuzz/README.md) and the supply-chain check (deny.toml). The fuzz
# targets prefer nightly (sanitizers) and build on stable without one.
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal ||
    echo "setup: no nightly toolchain to be had; the fuzz targets build on stable, without a sanitizer" >&2
fi
[ "$mode" = defer ] || install_tools "${CHECK_TOOLS[@]}"
# zig and cargo-zigbuild from PyPI, in a venv of their own (not into the
# system's Python), linked into cargo's bin folder, which is on PATH wherever
# cargo is. (The wheel takes seconds; `cargo install cargo-zigbuild` took
# minutes of both cores on a fresh machine.)
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ "$("$bin/zig" version 2>/dev/null)" != "$ZIGLANG" ] ||
  [ "$("$bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $ZIGBUILD" ]; then
  venv="${XDG_DATA_HOME:-$HOME/.local/share}/thin-telework/zig-$ZIGLANG-zigbuild-$ZIGBUILD"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
    -r "$(dirname "$0")/zig-requirements.txt"
  zig_dir=$("$venv/bin/python3" -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')
  ln -sfn "$zig_dir/zig" "$bin/zig"
  ln -sfn "$venv/bin/cargo-zigbuild" "$bin/cargo-zigbuild"
  echo "setup: zig $("$bin/zig" version) and $("$bin/cargo-zigbuild" --version) linked into $bin"
fi
echo "setup: all prerequisites present"
