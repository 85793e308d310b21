#!/usr/bin/env bash
# f32 vs int8 vs int16 weights, back to back in one script (the machine may be shared: alternate the two,
# ROUNDS times, and compare medians as ratios).
#
#   scripts/bench-weights.sh [THREADS] [ROUNDS] [TAG]
#
# Needs a built binary: BIN (default target/release/tagllm).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-2}
tag=${3:-QED}
bin=${BIN:-target/release/tagllm}
out=$(mktemp -d)
echo "runs in $out" >&2
for r in $(seq "$rounds"); do
  for w in f32 int8 int16; do
    RAYON_NUM_THREADS=$threads "$bin" --weights "$w" bench --tag "$tag" --json > "$out/$w.$r.json"
  done
done
python3 - "$out" "$rounds" "$threads" <<'EOF'
import json, statistics, sys
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = {w: [json.load(open(f"{out}/{w}.{r}.json")) for r in range(1, rounds + 1)] for w in ("f32", "int8", "int16")}
def med(w, f):
    return statistics.median(f(j) for j in runs[w])
rows = [(k["name"] + " GFLOP/s", (lambda i: lambda j: j["kernels"][i]["gflops"])(i)) for i, k in enumerate(runs["f32"][0]["kernels"])]
rows += [(f"prefill {p['tokens']} tokens/s", (lambda i: lambda j: j["prefill"][i]["tokens_per_s"])(i)) for i, p in enumerate(runs["f32"][0]["prefill"])]
rows += [("decode tokens/s", lambda j: j["decode_tokens_per_s"]), (runs["f32"][0]["molecules_tag"] + " molecules/s", lambda j: j["molecules_per_s"]),
         ("model load ms", lambda j: j["model_load_ms"]), ("peak RSS MB", lambda j: j["peak_rss_mb"])]
print(f"{threads} threads, {rounds} round(s) each, medians; kernel path {runs['int8'][0].get('kernel_path')}")
print(f"| figure | f32 | int8 | int16 | int8 / f32 | int16 / f32 |\n| --- | --- | --- | --- | --- | --- |")
for name, f in rows:
    a, b, c = med("f32", f), med("int8", f), med("int16", f)
    print(f"| {name} | {a:.1f} | {b:.1f} | {c:.1f} | {b / a:.2f} | {c / a:.2f} |")
EOF
