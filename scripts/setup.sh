#!/usr/bin/env bash
# Installs what tagllm needs and is missing; quick when everything is there.
#   scripts/setup.sh          the core: Rust wasm target, the model file (verified)
#   scripts/setup.sh --web    also: Chromium + ChromeDriver, Trunk, wasm-bindgen-cli, wasm-opt
# Only package registries are used (crates.io, PyPI, npm, Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

web=0
for arg in "$@"; do
  case "$arg" in
    --web) web=1 ;;
    *) echo "usage: scripts/setup.sh [--web]" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || apt_install python3 python3-pip
command -v unzip >/dev/null || apt_install unzip
# Software Vulkan (lavapipe): the GPU backend's parity tests run on it where there is no GPU.
apt_install mesa-vulkan-drivers

if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  say "rustup: adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

scripts/fetch-model.sh

if [ "$web" = 1 ]; then
  apt_install chromium chromium-driver
  if ! command -v trunk >/dev/null || ! trunk --version | grep -q "0.21.14"; then
    say "cargo: installing trunk 0.21.14 (takes ~10 minutes once)"
    cargo install --locked trunk@0.21.14
  fi
  if ! command -v wasm-bindgen >/dev/null || ! wasm-bindgen --version | grep -q "0.2.130"; then
    say "cargo: installing wasm-bindgen-cli 0.2.130"
    # Not --locked: a locked dependency version is not served by the registry.
    cargo install wasm-bindgen-cli@0.2.130
  fi
  # Trunk builds offline (Trunk.toml): the crates that only the wasm32 build needs (Leptos's
  # among them) must be in cargo's cache first; a no-op when they are.
  cargo fetch --locked --quiet
  if [ ! -x node_modules/.bin/wasm-opt ]; then
    say "npm: installing binaryen 132 (wasm-opt; Debian's 108 breaks candle modules)"
    npm install --no-save --no-audit --no-fund binaryen@132.0.0 >/dev/null
  fi
fi
say "ready"
