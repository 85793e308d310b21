#!/usr/bin/env bash
# Side-by-side speed benchmark on this machine, same GGUF file, same prompts, same threads:
# `tagllm bench` (ours, native CPU) against llama.cpp (llama-cpp-python from PyPI, built here).
# Writes bench/results/DATE-HOST.{json,md} with the machine described and our/their ratios.
#
#   scripts/bench.sh [THREADS]      # default: all cores
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
threads=${1:-$(nproc)}
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
venv=target/bench-venv
if ! "$venv/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  echo "== llama-cpp-python 0.3.16 into $venv (builds llama.cpp from source: minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "llama-cpp-python==0.3.16" numpy
fi
cargo build --release --quiet --bin tagllm
out=bench/results; mkdir -p "$out"
stamp="$(date -u +%Y-%m-%d)-$(hostname -s)"
# Fewer threads than cores: a results file of its own.
[ "$threads" = "$(nproc)" ] || stamp="$stamp-${threads}t"
echo "== tagllm bench ($threads threads, default weights)"
RAYON_NUM_THREADS=$threads target/release/tagllm bench --json > "$out/$stamp.tagllm.json"
for w in f32 int16; do
  echo "== tagllm --weights $w bench ($threads threads)"
  RAYON_NUM_THREADS=$threads target/release/tagllm --weights $w bench --json > "$out/$stamp.tagllm-$w.json"
done
echo "== llama.cpp ($threads threads)"
"$venv/bin/python" scripts/bench/llamacpp_bench.py "$model" "$threads" tests/fixtures/bench_smiles.txt \
  "$(target/release/tagllm tags show QED | python3 -c 'import json, sys; print(json.load(sys.stdin)["p"])')" > "$out/$stamp.llama_cpp.json"
python3 scripts/bench/report.py "$out/$stamp" "$threads" | tee "$out/$stamp.md"
