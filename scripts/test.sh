#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup.sh) and runs every test:
#   native unit + integration tests on the real model and tokenizer, the CLI end to end,
#   and a wasm32 build of the core (the browser's inference engine).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== native tests (real model, real tokenizer, CLI end to end)"
cargo test --all-targets
echo "== the core builds for wasm32 (simd128)"
cargo build --lib --target wasm32-unknown-unknown --no-default-features
echo "== the web page end to end (trunk build, headless Chromium, numbers vs the CLI)"
tests/e2e/run.sh
echo "== data splits rebuild byte-identical from their sources"
tests/data/splits_reproduce.sh
echo "== all tests passed"
