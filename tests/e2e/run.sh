#!/usr/bin/env bash
# End-to-end test of the web page: builds it with Trunk (with untrained test tags), serves it on
# 127.0.0.1, drives headless Chromium through ChromeDriver (selenium), predicts QED for 3 valid
# SMILES and 1 invalid one, and compares the page's numbers with the native CLI's.
# Artefacts: target/e2e/screenshot.png, target/e2e/metrics.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --web
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== e2e: native CLI and test tags"
cargo build --bin tagllm
cargo run --quiet --example make_test_tags -- target/e2e-tags

echo "== e2e: building the page (trunk, release)"
rm -rf target/e2e/dist
TAGLLM_WEB_TAGS=target/e2e-tags trunk build --release --dist target/e2e/dist

venv=target/e2e-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  echo "== e2e: selenium (PyPI) into $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==4.*"
fi

echo "== e2e: headless Chromium"
"$venv/bin/python" tests/e2e/test_page.py \
  --dist target/e2e/dist --tags target/e2e-tags --cli target/debug/tagllm --out target/e2e
