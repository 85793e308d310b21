#!/usr/bin/env bash
# End-to-end test of the web page: builds it with Trunk (with untrained test tags and a test model
# card), serves it on 127.0.0.1, drives headless Chromium through ChromeDriver (selenium) and checks
# every feature of the page (tests/e2e/test_page.py), comparing its numbers with the native CLI's,
# down to a reload with the server stopped.
# Artefacts: target/e2e/screenshot*.png, target/e2e/metrics.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --web
export PATH="$PWD/node_modules/.bin:$PATH"
# The browsers' profiles (~200 MB each, some reused across a test's restarts) and every other
# temporary file of the run go to one folder, removed at the end however the run ends.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/tagllm-e2e.XXXXXX"); export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

echo "== e2e: native CLI and test tags"
# The features and targets of scripts/test.sh's native tests (dev-dependencies included), so that
# after them only tagllm itself compiles here.
cargo build --features gpu --bin tagllm --example make_test_tags
target/debug/examples/make_test_tags target/e2e-tags
# A model card for the inspector to render (the test tags are untrained: it says so).
cat > target/e2e-tags/QED.md <<'CARD'
# `<QED>` — test card

An **untrained** tag made by `examples/make_test_tags.rs` for the page's end-to-end test: its
numbers are *not* drug-likeness estimates.

## Test metrics

| model | n | R² |
| --- | --- | --- |
| `<QED>` (untrained) | — | not measured |
CARD

echo "== e2e: building the page (trunk, release)"
rm -rf target/e2e/dist
TAGLLM_WEB_TAGS=target/e2e-tags trunk build --release --dist target/e2e/dist

venv=target/e2e-venv
tests/e2e/venv.sh "$venv"

echo "== e2e: headless Chromium"
"$venv/bin/python" tests/e2e/test_page.py \
  --dist target/e2e/dist --tags target/e2e-tags --cli target/debug/tagllm --out target/e2e \
  --model models/SmolLM2-135M-Instruct.Q4_1.gguf
"$venv/bin/python" tests/e2e/test_security.py --dist target/e2e/dist --tags target/e2e-tags --out target/e2e  # SECURITY.md
"$venv/bin/python" tests/e2e/test_bench.py --dist target/e2e/dist --out target/e2e  # the ?bench view, 5 molecules
# A download that breaks off, a truncated and a corrupted cached model: fetched again.
"$venv/bin/python" tests/e2e/test_faults.py --dist target/e2e/dist --model models/SmolLM2-135M-Instruct.Q4_1.gguf --out target/e2e
# 10,000 lines pasted, validated and run with the page responsive (cancelled after 24 values;
# --compute 0 runs it to the end: the README's figure).
"$venv/bin/python" tests/e2e/test_batch.py --dist target/e2e/dist --tags target/e2e-tags --out target/e2e
# WebGPU on SwiftShader: parity with the CLI and the page's CPU backend, the switch, a lost device.
"$venv/bin/python" tests/e2e/test_webgpu.py --dist target/e2e/dist --tags target/e2e-tags --cli target/debug/tagllm --out target/e2e
