#!/usr/bin/env bash
# Installs every prerequisite of the build and the tests (Debian/Ubuntu, as root
# or with sudo). Idempotent: does nothing when everything is present.
set -euo pipefail

APT_PACKAGES=(
  build-essential pkg-config ca-certificates curl openssl python3
  gcc-mingw-w64-x86-64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  nsis wixl msitools osslsigncode
  tinyproxy python3-aiosmtpd systemd
  protobuf-compiler libprotobuf-dev etcd-server
  wine wine64
  chromium
  xvfb xauth imagemagick xdotool tesseract-ocr tesseract-ocr-eng libgl1-mesa-dri libegl1 libegl-mesa0 libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6
)
RUST_TARGETS=(x86_64-pc-windows-gnu aarch64-unknown-linux-gnu)
CARGO_TOOLS=(cargo-fuzz@0.13.2 cargo-deny@0.20.2)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
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
for tool in "${CARGO_TOOLS[@]}"; do
  name=${tool%@*}
  command -v "$name" >/dev/null 2>&1 || cargo install --locked "$tool"
done
echo "setup: all prerequisites present"
