#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) on the same GGUF and the same prompts as `tagllm bench`.

    python3 scripts/bench/llamacpp_bench.py MODEL.gguf THREADS SMILES_FILE  → one JSON object

Prefill: one evaluation of the first N tokens of the same text `tagllm bench` uses (median of 3
after a warm-up). Decode: 32 greedy single-token evaluations after a 16-token prompt. Molecules:
the QED prompt of `tags/QED`, the shared prefix evaluated once and reused for every molecule, as
ours does — twice: with its tags removed (llama.cpp cannot splice tag vectors), and with each tag's
P positions (P: 4th argument, default 10) filled by a placeholder token, so that llama.cpp
evaluates as many positions per molecule as we do (the <SMILES> tag's in the shared prefix, the
<QED> tag's after each molecule).
"""
import json, resource, statistics, sys, time

from llama_cpp import Llama

model_path, threads, smiles_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tag_p = int(sys.argv[4]) if len(sys.argv) > 4 else 10
t = time.perf_counter()
llm = Llama(model_path=model_path, n_threads=threads, n_threads_batch=threads, n_ctx=2048, n_batch=512,
            verbose=False)
load_ms = (time.perf_counter() - t) * 1000
text = "# # Input: The SMILES of the molecule is CC(=O)Oc1ccccc1C(=O)O. " * 80


def tokens(n):
    return llm.tokenize(text.encode(), add_bos=False, special=False)[:n]


def prefill(n):
    ids = tokens(n)
    times = []
    for i in range(4):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        if i:
            times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1000
    return {"tokens": n, "ms": ms, "tokens_per_s": n * 1000 / ms}


def decode(n):
    llm.reset()
    llm.eval(tokens(16))
    t = time.perf_counter()
    for _ in range(n):
        nxt = int(llm.scores[llm.n_tokens - 1].argmax())
        llm.eval([nxt])
    return n / (time.perf_counter() - t)


def molecules(smiles, p):
    head = "# # Input: The SMILES of the molecule is"
    filler = llm.tokenize(b" X", add_bos=False, special=False)[-1:] * p  # a tag's positions
    prefix = llm.tokenize(head.encode(), add_bos=False, special=False) + filler
    tail = ". \n# # Output: the quantitative estimate of druglikeness score is"
    llm.reset()
    llm.eval(prefix)
    t = time.perf_counter()
    for s in smiles:
        llm.n_tokens = len(prefix)  # keep the prefix's keys/values, drop the rest
        rest = llm.tokenize(f" {s}{tail}".encode(), add_bos=False, special=False) + filler
        llm.eval(rest)
    return len(smiles) / (time.perf_counter() - t)


smiles = [l.strip() for l in open(smiles_file) if l.strip()]
out = {
    "engine": "llama.cpp via llama-cpp-python",
    "threads": threads,
    "model_load_ms": load_ms,
    "prefill": [prefill(50), prefill(512)],
    "decode_tokens": 32,
    "decode_tokens_per_s": decode(32),
    "molecules": len(smiles),
    "molecules_per_s": molecules(smiles, 0),
    "tag_positions": tag_p,
    "molecules_per_s_tag_positions": molecules(smiles, tag_p),
}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out, indent=1))
