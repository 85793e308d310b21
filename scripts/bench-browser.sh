#!/usr/bin/env bash
# The speed benchmark in the browser, on this machine: headless Chromium runs the page's `?bench`
# view (our inference worker: WebAssembly SIMD, one thread) and @wllama/wllama (llama.cpp in
# WebAssembly, npm) on the same GGUF file, from the same local server, with the same prompt tokens and
# SMILES; prefill, decode, molecules/s, model load (cold and from cache) and memory.
# Then the page's WebGPU path: `?bench&backend=gpu` again in a Chromium started with WebGPU offered
# (--enable-unsafe-webgpu: SwiftShader, a software rasteriser on the CPU, so it measures the WebGPU
# code path, not a GPU's speed): prefill and molecules/s on WebGPU and the adapter, against wllama;
# where WebGPU cannot be had, the results say why and the rest stands.
# Writes bench/results/DATE-HOST.browser.{json,md} with the machine described and our/their ratios.
#
#   scripts/bench-browser.sh [N] [GPU_N]
#     N: molecules (default: all 100 of tests/fixtures/bench_smiles.txt);
#     GPU_N: molecules of the WebGPU run, the first of those N (default 10: on SwiftShader each
#     takes ~30 s; on a real GPU pass N)
#
# The native half (tagllm vs llama.cpp): scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
gpu_n=${2:-10}
scripts/setup.sh --web >/dev/null
export PATH="$PWD/node_modules/.bin:$PATH"
# The browsers' profiles (~200 MB each) go to one temporary folder, removed at the end.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/tagllm-bench.XXXXXX"); export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

version=3.13.0
prefix=target/bench-wllama
pkg=$prefix/node_modules/@wllama/wllama
if [ "$(node -p "require('./$pkg/package.json').version" 2>/dev/null)" != "$version" ]; then
  echo "== npm: @wllama/wllama $version into $prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund "@wllama/wllama@$version" >/dev/null
fi

echo "== building the page (trunk, release) into target/bench/dist"
rm -rf target/bench/dist
nice -n 10 trunk build --release --dist target/bench/dist

venv=target/e2e-venv
tests/e2e/venv.sh "$venv"

out=bench/results; mkdir -p "$out"
stamp="$(date -u +%Y-%m-%d)-$(hostname -s)"
nice -n 10 "$venv/bin/python" scripts/bench/browser_bench.py \
  --dist target/bench/dist --wllama "$pkg" --version "$version" --n "$n" --gpu-n "$gpu_n" --out "$out/$stamp"
python3 scripts/bench/browser_report.py "$out/$stamp" | tee "$out/$stamp.browser.md"
