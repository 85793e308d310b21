#!/usr/bin/env python3
"""Combines tagllm's and llama.cpp's benchmark JSON into a Markdown report with ratios."""
import json, os, platform, subprocess, sys

stem, threads = sys.argv[1], sys.argv[2]
ours = json.load(open(stem + ".tagllm.json"))
theirs = json.load(open(stem + ".llama_cpp.json"))


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
# Our runs: the default (`tagllm bench`) and, where present, other `--weights` for comparison.
variants = [ours] + [json.load(open(f"{stem}.tagllm-{w}.json")) for w in ("f32", "int16")
                     if os.path.exists(f"{stem}.tagllm-{w}.json")]
variants = [v for i, v in enumerate(variants) if all(v["weights"] != u["weights"] for u in variants[:i])]


def figs(j):
    return [j["prefill"][0]["tokens_per_s"], j["prefill"][1]["tokens_per_s"], j["decode_tokens_per_s"],
            j["molecules_per_s"], j["molecules_per_s"], j["model_load_ms"], j["peak_rss_mb"]]


n = ours["molecules"]
# `tagllm generate` decodes with its own default weights (int16 where the integer kernels have SIMD).
gen = ours.get("generate_weights", ours["weights"])
decode_name = "decode (tokens/s)" + (f"; `tagllm generate` runs {gen}" if gen != ours["weights"] else "")
names = ["prefill 50 tokens (tokens/s)", "prefill 512 tokens (tokens/s)", decode_name,
         f"QED prompt, {n} SMILES (molecules/s); llama.cpp's prompt without the tags",
         f"QED prompt, {n} SMILES (molecules/s); llama.cpp with the tags' positions filled",
         "model load (ms, file in page cache)", "peak resident memory (MB)"]
higher = [True, True, True, True, True, False, False]
t = theirs
theirs_figs = [t["prefill"][0]["tokens_per_s"], t["prefill"][1]["tokens_per_s"], t["decode_tokens_per_s"],
               t["molecules_per_s"], t.get("molecules_per_s_tag_positions", float("nan")), t["model_load_ms"], t["peak_rss_mb"]]
print(f"# Speed: tagllm vs llama.cpp — {os.path.basename(stem)}\n")
print(f"Machine: {cpu()}, {os.cpu_count()} logical cores, {mem:.0f} GiB; {threads} threads for both; "
      f"model `SmolLM2-135M-Instruct.Q4_1.gguf` (same file).\n")
cols = [(f"tagllm {v['weights']}" + (" (default)" if i == 0 else ""), figs(v)) for i, v in enumerate(variants)]
print("| figure | " + " | ".join(c for c, _ in cols) + " | llama.cpp | " + " | ".join(f"{c.split(' (')[0]} / theirs" for c, _ in cols) + " | ahead? |")
print("| --- " * (3 + 2 * len(cols)) + "|")
for i, name in enumerate(names):
    b = theirs_figs[i]
    ratios = [c[i] / b if b else float("nan") for _, c in cols]
    best = max(ratios) if higher[i] else min(ratios)
    ahead = (best >= 1) if higher[i] else (best <= 1)
    print(f"| {name} | " + " | ".join(f"{c[i]:.1f}" for _, c in cols) + f" | {b:.1f} | "
          + " | ".join(f"{r:.2f}" for r in ratios) + f" | {'yes' if ahead else '**no**'} |")
about = {
    "amx": "`amx` (the default where the CPU has AMX) holds the same f32 values as two bf16 parts and multiplies them "
           "on AMX tiles, three bf16 products per f32 one (within ~1e-5 of f32: read-out states 9e-6, LogP 2e-4)",
    "f32": "`f32` runs the Q4_1 weights expanded to f32 once (exactly what the tags were trained on)",
    "compact": "`compact` (the default without AMX) holds the file's blocks and expands them to f32 a panel at a "
               "time inside each product: the same results as `f32` to the bit (one-row decoding products within "
               "rounding) in a fifth of the memory",
    "int16": "`int16` runs our integer kernels on the file's blocks with inputs rounded to 16 bits "
             "(predictions within ~5e-3 log units of f32 on LogP; what `tagllm generate` uses by default "
             "where the CPU has AVX2 or AVX-512 VNNI)",
}
print("\n" + "; ".join(about.get(v["weights"], f"`{v['weights']}`") for v in variants)
      + "; llama.cpp runs its quantised kernels with 8-bit inputs. Predictions run one batch of 8 molecules per "
      "thread. Our molecule prompt carries the <SMILES> (shared prefix) and <QED> "
      f"(each molecule) tags, {t.get('tag_positions', 10)} positions each: the second molecules row gives "
      "llama.cpp as many positions. Kernels (GFLOP/s of each of ours):\n")
print("| kernel | " + " | ".join(v["weights"] for v in variants) + " |\n" + "| --- " * (1 + len(variants)) + "|")
for i, k in enumerate(ours["kernels"]):
    print(f"| {k['name']} | " + " | ".join(f"{v['kernels'][i]['gflops']:.1f}" for v in variants) + " |")
print(f"\nRe-run: `scripts/bench.sh {threads}`.")
