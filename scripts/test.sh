#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup.sh) and runs every test:
#   native unit + integration tests on the real model and tokenizer, the CLI end to end,
#   the WebGPU kernels and model against the CPU path (natively on lavapipe, in headless
#   Chromium on SwiftShader), a wasm32 type-check of the core without the GPU backend, a short
#   fuzz run of every parser, and the web page end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# One feature set for the native tests and the e2e test's CLI (tests/e2e/run.sh), so their builds
# share every compiled crate: with `gpu`, tests/gpu_parity.rs runs the WebGPU kernels against the
# CPU path (wgpu on Vulkan: lavapipe without a GPU).
echo "== native tests (real model, real tokenizer, CLI end to end, WebGPU kernels vs CPU on Vulkan)"
XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" cargo test --all-targets --features gpu
echo "== the core type-checks for wasm32 without the GPU backend (the page builds it with it, below)"
cargo check --lib --target wasm32-unknown-unknown --no-default-features
echo "== fuzzing: GGUF, tag files, inputs, tokenizer, 60 s each (cargo-fuzz, stable; fuzz/README.md)"
scripts/fuzz.sh 60
echo "== the web page end to end (trunk build, headless Chromium, numbers vs the CLI)"
tests/e2e/run.sh
echo "== the GPU kernels against the CPU path in headless Chromium (WebGPU on SwiftShader; tests/gpu_web.rs)"
CHROMEDRIVER=/usr/bin/chromedriver cargo test --target wasm32-unknown-unknown --no-default-features --features gpu --test gpu_web
echo "== data splits rebuild byte-identical from their sources"
tests/data/splits_reproduce.sh
echo "== all tests passed"
