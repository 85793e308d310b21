#!/usr/bin/env bash
# f32 vs int8 vs int16 vs amx weights (amx where the CPU has it), back to back in one script (the
# machine may be shared: alternate them,
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
  for w in f32 int8 int16 amx; do
    # amx only where the CPU has AMX: elsewhere the command refuses and its column is left out.
    RAYON_NUM_THREADS=$threads "$bin" --weights "$w" bench --tag "$tag" --json > "$out/$w.$r.json" \
      || { [ "$w" = amx ] || exit 1; rm -f "$out/$w.$r.json"; }
  done
done
python3 - "$out" "$rounds" "$threads" <<'EOF'
import json, statistics, sys
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import os
kinds = [w for w in ("f32", "int8", "int16", "amx") if os.path.exists(f"{out}/{w}.1.json")]
runs = {w: [json.load(open(f"{out}/{w}.{r}.json")) for r in range(1, rounds + 1)] for w in kinds}
def med(w, f):
    return statistics.median(f(j) for j in runs[w])
rows = [(k["name"] + " GFLOP/s", (lambda i: lambda j: j["kernels"][i]["gflops"])(i)) for i, k in enumerate(runs["f32"][0]["kernels"])]
rows += [(f"prefill {p['tokens']} tokens/s", (lambda i: lambda j: j["prefill"][i]["tokens_per_s"])(i)) for i, p in enumerate(runs["f32"][0]["prefill"])]
rows += [("decode tokens/s", lambda j: j["decode_tokens_per_s"]), (runs["f32"][0]["molecules_tag"] + " molecules/s", lambda j: j["molecules_per_s"]),
         ("model load ms", lambda j: j["model_load_ms"]), ("peak RSS MB", lambda j: j["peak_rss_mb"])]
print(f"{threads} threads, {rounds} round(s) each, medians; kernel path {runs['int8'][0].get('kernel_path')}")
others = kinds[1:]
print("| figure | " + " | ".join(kinds) + " | " + " | ".join(f"{w} / f32" for w in others) + " |")
print("| --- " * (1 + len(kinds) + len(others)) + "|")
for name, f in rows:
    base = med("f32", f)
    vals = [med(w, f) for w in kinds]
    print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + " | " + " | ".join(f"{v / base:.2f}" for v in vals[1:]) + " |")
EOF
