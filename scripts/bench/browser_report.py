#!/usr/bin/env python3
"""STEM.browser.json (scripts/bench/browser_bench.py) → a Markdown report with our/their ratios.

    browser_report.py bench/results/STEM > bench/results/STEM.browser.md

wllama's rates are timed two ways: wall-clock from its page around each call (as ours is timed
around each call, in our worker) and llama.cpp's own `timings`; the ratio uses whichever is better
for wllama, so that a ratio >= 1 is never flattered by message overhead on their side.

The page's WebGPU path (`ours_webgpu`: our `?bench` view again, WebGPU offered by Chromium on
SwiftShader and chosen) gets a table of its own: prefill, molecules/s and model load against
wllama's one-thread figures, beside the CPU path's figures of that same run; or the reason it
could not be measured.
"""
import json
import sys

stem = sys.argv[1]
r = json.load(open(stem + ".browser.json"))
ours, theirs, mt = r["ours"], r["wllama_1_thread"], r.get("wllama_all_threads")


def best(*xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return max(xs) if xs else None


def rates(e):
    """(name, value) of the figures where higher is better; wllama: the better of its two timings."""
    if e is None:
        return {}
    out = {}
    for p in e["prefill"]:
        out[f"prefill {p['tokens']} tokens (tokens/s)"] = best(p["tokens_per_s"], p.get("engine_tokens_per_s"))
    out["decode (tokens/s)"] = best(e["decode_tokens_per_s"], e.get("decode", {}).get("engine_tokens_per_s"))
    out[f"QED prompt, {r['molecules']} SMILES (molecules/s)"] = best(
        e["molecules_per_s"], e.get("molecules_detail", {}).get("engine_molecules_per_s"))
    return out


def costs(e):
    """Figures where lower is better."""
    if e is None:
        return {}
    rss = e.get("renderer_peak_rss_mb") or []
    return {
        "model load, cold: network, fresh profile (ms)": e["load_cold"]["ms"],
        "model load, warm: from the browser's storage (ms)": e["load_warm"]["ms"],
        "renderer process peak RSS, VmHWM (MB)": rss[0] if rss else None,
    }


def page_memory(e):
    """measureUserAgentSpecificMemory: the total and what Chromium attributed to a worker."""
    mem = (e or {}).get("page_memory") or {}
    if not mem.get("available"):
        return f"not measured ({mem.get('why', '—')})"
    workers = sum(b["mb"] for b in mem.get("breakdown", [])
                  if any(a.get("scope") == "DedicatedWorkerGlobalScope" for a in b.get("attribution", [])))
    return f"{mem['mb']:.0f} MB, of which {workers:.0f} MB attributed to a worker"


def compare(a, b, higher):
    """Ours / theirs and whether we are ahead (higher is better for rates, lower for costs)."""
    if a is None or b is None or not b:
        return None, "—"
    ratio = a / b
    return ratio, "yes" if (ratio >= 1 if higher else ratio <= 1) else "**no**"


def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


m = r["machine"]
threads = theirs.get("threads", 1)
mt_threads = mt.get("threads") if mt else None
print(f"# Speed in the browser: tagllm page vs wllama — {stem.split('/')[-1]}\n")
print(f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['memory_gib']} GiB, {m['os']}; "
      f"headless Chromium {m['chromium']}; model `SmolLM2-135M-Instruct.Q4_1.gguf` (same file, same URL); "
      f"`{theirs['engine']}` (llama.cpp {theirs.get('libllama')}). Load average (1/5/15 min) before: "
      f"{', '.join(f'{x:.1f}' for x in r['load_average_1_5_15']['before'])}; after: "
      f"{', '.join(f'{x:.1f}' for x in r['load_average_1_5_15']['after'])}.\n")
print(f"Ours: the page's inference worker, {ours.get('weights')} weights, WebAssembly SIMD, 1 thread. "
      f"wllama: {threads} thread (the fair default) and, for reference only, {mt_threads or '—'} threads "
      f"(cross-origin isolated). Both pages served cross-origin isolated by the same local server.\n")
print(f"| figure | tagllm page | wllama, {threads} thread | ours / theirs | ahead? | wllama, {mt_threads or '—'} threads |")
print("| --- | --- | --- | --- | --- | --- |")
for higher, (a_all, b_all, c_all) in ((True, (rates(ours), rates(theirs), rates(mt))),
                                      (False, (costs(ours), costs(theirs), costs(mt)))):
    for name, a in a_all.items():
        b, c = b_all.get(name), c_all.get(name)
        ratio, ahead = compare(a, b, higher)
        digits = 0 if not higher else (2 if "molecules" in name else 1)
        print(f"| {name} | {fmt(a, digits)} | {fmt(b, digits)} | {fmt(ratio, 2)} | {ahead} | {fmt(c, digits)} |")

webgpu = r.get("ours_webgpu")


def webgpu_section(w):
    """The page's WebGPU path against wllama (1 thread), beside the CPU path of the same run."""
    print("\n## The page's WebGPU path\n")
    if not w:
        print("Not measured: these results predate the WebGPU run of `browser_bench.py`.")
        return
    if not w.get("available"):
        page = "?" + w.get("url", "?bench&backend=gpu").split("?", 1)[-1]
        print(f"**Not measured: WebGPU could not be had.** Why (the page's backend in use, or the error): "
              f"{w.get('why') or '—'} (`{page}` in a Chromium started with `--enable-unsafe-webgpu`). "
              "The CPU figures above stand.")
        return
    g, run = w["gpu"], w.get("run") or {}
    adapter = w.get("adapter") or g.get("adapter") or "unnamed adapter"
    software = "swiftshader" in adapter.lower() or "software" in adapter.lower()
    print(f"Our `?bench` view again, in a fresh Chromium started with WebGPU offered (`--enable-unsafe-webgpu`) "
          f"and the WebGPU backend chosen (`?bench&backend=gpu`: on Auto the page keeps to the CPU on a software "
          f"adapter). Adapter: `{adapter}`; backend in use: {w.get('backend_in_use') or '—'}. The same prompt "
          f"tokens at the same lengths and the same {g.get('molecules')} SMILES and `<QED>` tag as the CPU path "
          f"(prefill: one pass timed after a warm-up pass; molecules: the shared prefix once, the inputs batched on the GPU; "
          f"{g.get('molecules_failed', 0)} failed).\n")
    if software:
        what = ("SwiftShader is a software rasteriser" if "swiftshader" in adapter.lower()
                else "This is a software adapter (headless Chromium's is SwiftShader, a software rasteriser)")
        print(f"**{what}: Chromium's WebGPU runs on the CPU here, so these figures measure the page's WebGPU "
              "code path (its WGSL shaders through Chromium's WebGPU), not the speed of a GPU.** They say "
              "nothing about how fast the page is on a real GPU.\n")
    else:
        print("The adapter does not report itself as a software one: these figures are this GPU's.\n")
    label = f"tagllm page, WebGPU ({adapter})"
    mol = f"QED prompt, {r['molecules']} SMILES (molecules/s)"
    gpu_rates = {f"prefill {p['tokens']} tokens (tokens/s)": p.get("tokens_per_s") for p in g.get("prefill", [])}
    if g.get("decode_tokens_per_s") is not None:
        gpu_rates["decode (tokens/s)"] = g["decode_tokens_per_s"]
    gpu_rates[mol] = g.get("molecules_per_s")
    # The WebGPU run may score only the first of the SMILES (scripts/bench-browser.sh's GPU_N).
    shown = {mol: f"QED prompt, SMILES (molecules/s): WebGPU on the first {g.get('molecules')}, the others on "
                  f"all {r['molecules']}"} if g.get("molecules") != r["molecules"] else {}
    if g.get("decode_tokens"):
        shown["decode (tokens/s)"] = f"decode (tokens/s): WebGPU {g['decode_tokens']} greedy tokens, the output head on the GPU"
    gpu_costs = {
        "model load, cold: network, fresh profile (ms)": (run.get("load_cold") or {}).get("ms"),
        "model load, warm: from the browser's storage (ms)": (run.get("load_warm") or {}).get("ms"),
    }
    cpu_same = {**rates(run), **costs(run)} if run.get("prefill") else {}
    theirs_all = {**rates(theirs), **costs(theirs)}
    print(f"| figure | {label} | wllama, {threads} thread | ours / theirs | ahead? | tagllm page, CPU path (same run) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for higher, figures in ((True, gpu_rates), (False, gpu_costs)):
        for name, a in figures.items():
            b = theirs_all.get(name)
            ratio, ahead = compare(a, b, higher)
            digits = 0 if not higher else (3 if "molecules" in name else 1)
            # One load serves both paths in that run: its CPU column would repeat it.
            same = fmt(cpu_same.get(name), digits) if higher else "(the same load)"
            print(f"| {shown.get(name, name)} | {fmt(a, digits)} | {fmt(b, digits)} | {fmt(ratio, 2)} | {ahead} | {same} |")
    gpu_rss = (run.get("gpu_process_peak_rss_mb") or [None])[0]
    rss = (run.get("renderer_peak_rss_mb") or [None])[0]
    decoding = ("" if g.get("decode_tokens") else
                "Decoding is not measured on WebGPU (this run predates the view's GPU decoding). ")
    print(f"\n{decoding}The model loads above are the WebGPU run's (the worker also uploads the weights to the GPU). Memory of that run, "
          f"not compared: renderer peak RSS {fmt(rss, 0)} MB, Chromium GPU process (where WebGPU runs) "
          f"{fmt(gpu_rss, 0)} MB.")


webgpu_section(webgpu)

print(f"\n`performance.measureUserAgentSpecificMemory()` (not in the table: Chromium did not measure the "
      f"two pages' workers alike): ours {page_memory(ours)}; wllama {page_memory(theirs)}. The renderer's "
      "peak RSS above counts both pages' workers the same way.")
print("\nwllama's two timings (wall-clock from its page around each call / llama.cpp's own `timings`); "
      "the table uses the better one:\n")
print("| figure | wall-clock | llama.cpp timings |\n| --- | --- | --- |")
for p in theirs["prefill"]:
    print(f"| prefill {p['tokens']} tokens (tokens/s) | {fmt(p['tokens_per_s'])} | {fmt(p.get('engine_tokens_per_s'))} |")
d = theirs.get("decode", {})
print(f"| decode (tokens/s) | {fmt(theirs['decode_tokens_per_s'])} | {fmt(d.get('engine_tokens_per_s'))} |")
md = theirs.get("molecules_detail", {})
print(f"| molecules/s | {fmt(theirs['molecules_per_s'], 2)} | {fmt(md.get('engine_molecules_per_s'), 2)} |")
print(f"\nwllama evaluated {fmt(md.get('mean_processed_tokens'))} tokens per molecule on average and reused "
      f"{fmt(md.get('mean_cached_tokens'))} from the previous prompt (the prefix, sometimes a SMILES's first "
      "tokens too). Our prompt carries the `<SMILES>` and `<QED>` tags (20 more positions than wllama's "
      "tag-free prompt) and runs through the Predictor (prefix once, the molecules batched).")
print(f"\nOur worker's wasm memory: {fmt(ours.get('wasm_memory_mb_after_load'), 0)} MB after loading, "
      f"{fmt(ours.get('wasm_memory_mb'), 0)} MB at the end (the file's Q4_1 blocks, ~100 MB, expanded to f32 "
      "a panel at a time inside each product since 56fe580; before, the whole file expanded once, ~540 MB, and "
      "717 MB of wasm memory). Kernels (ours, f32 products in wasm, the expansion included):\n")
print("| kernel | ms | GFLOP/s |\n| --- | --- | --- |")
for k in ours.get("kernels", []):
    print(f"| {k['name']} | {k['ms']:.3f} | {k['gflops']:.2f} |")
print("\nOne run on a machine shared with other work (see the load average): single figures are noisy; "
      "the ratios of this run, measured side by side, are what to read.")
gpu_n = ((webgpu or {}).get("gpu") or {}).get("molecules")
print(f"\nRe-run: `scripts/bench-browser.sh {r['molecules']}{f' {gpu_n}' if gpu_n else ''}` (the arguments: how many "
      "of the 100 benchmark SMILES, and how many of those the WebGPU run scores).")
