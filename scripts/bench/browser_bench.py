#!/usr/bin/env python3
"""Browser half of the speed benchmark (scripts/bench-browser.sh): headless Chromium runs the
page's `?bench` view (tagllm, its inference worker: WebAssembly SIMD, one thread) and then the
wllama harness (scripts/bench/wllama/: @wllama/wllama from npm) on the same GGUF file from the
same local server, with the same prompts (the page's JSON hands over the text of its token ids;
the harness checks that wllama makes as many tokens of it) and the same SMILES.

    browser_bench.py --dist DIST --wllama PKG_DIR --version 3.13.0 --out bench/results/STEM [--n 100]

Each engine runs in a fresh Chromium profile (so "cold" means an empty HTTP cache and Cache
Storage). The server sends COOP/COEP headers (cross-origin isolation): wllama can then use threads
and both pages can call performance.measureUserAgentSpecificMemory(). wllama runs with one thread
(the fair default: the page's worker has one) and, labelled, with every core. Besides each page's
own figures, the driver reads the peak resident memory (VmHWM) of the page's renderer process,
where the workers run.

Then the page's WebGPU path: our `?bench` view again, in a Chromium started with WebGPU offered
(`--enable-unsafe-webgpu`: SwiftShader, Chromium's software adapter, as tests/e2e/test_webgpu.py
does; the page's "Auto" keeps to the CPU on a software adapter, so `backend=gpu` chooses WebGPU).
The view then adds the GPU's figures (`gpu`: adapter, prefill at the same lengths, molecules/s on
the same SMILES and tag) to the CPU's. SwiftShader runs on the CPU: these figures measure the
WebGPU code path, not a GPU. Where WebGPU cannot be had, the results record why (the page's
`backend_in_use`, or the error) and the rest of the benchmark stands. Writes STEM.browser.json.
"""
import argparse
import functools
import http.server
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# The QED prompt without its tags, as scripts/bench/llamacpp_bench.py runs it.
HEAD = "# # Input: The SMILES of the molecule is"
TAIL = ". \n# # Output: the quantitative estimate of druglikeness score is"
TIMEOUT_S = 3600
# SwiftShader runs WebGPU on the CPU: slow (minutes per 512-token prefill on a busy 2-core VM), and
# that run measures the CPU path again first.
WEBGPU_TIMEOUT_S = 4 * 3600


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript", ".json": "application/json"}
    mounts = []  # (URL prefix, directory), longest prefix first

    def translate_path(self, path):
        for prefix, root in self.mounts:
            if path.startswith(prefix):
                self.directory = str(root)
                return super().translate_path("/" + path[len(prefix):])
        return super().translate_path(path)

    def end_headers(self):
        # Cross-origin isolation (wllama's threads, measureUserAgentSpecificMemory); revalidate
        # everything so that no run is served stale files.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, *args):
        pass


def serve(dist, harness, package):
    Handler.mounts = [("/wllama/esm/", Path(package) / "esm"), ("/wllama/", Path(harness)), ("/", Path(dist))]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(dist)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser(profile, extra_args=()):
    """Headless Chromium with the end-to-end test's flags (tests/e2e/test_page.py), plus eager
    measureUserAgentSpecificMemory (otherwise it answers at the next garbage collection);
    `extra_args` e.g. ["--enable-unsafe-webgpu"] (WebGPU on SwiftShader)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1100,1400",
                "--enable-blink-features=ForceEagerMeasureMemory", *extra_args]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_script_timeout(60)
    return driver


def profile_processes(profile):
    """PIDs and command lines of the Chromium using `profile`: its browser process (the one with
    the profile on its command line) and every process under it (renderers, zygotes, utilities).
    Chromium rewrites its child processes' command lines into one string: they are compared as
    bytes, arguments joined by spaces."""
    procs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[int(pid)] = (ppid, cmd)
    ours = {pid for pid, (_, cmd) in procs.items() if profile.encode() in cmd and b"--type=" not in cmd}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grew = True
    return [(pid, procs[pid][1]) for pid in sorted(ours)]


def renice(profile, niceness=10):
    """Chromium sets its processes' priorities itself (as root it raises some): put them all back
    at `niceness`, so that the benchmark never takes the CPU from more important work."""
    for pid, _ in profile_processes(profile):
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) < niceness:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)
            for tid in os.listdir(f"/proc/{pid}/task"):
                if os.getpriority(os.PRIO_PROCESS, int(tid)) < niceness:
                    os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
        except OSError:
            continue


def renderer_peak_rss_mb(profile, kind=b"--type=renderer"):
    """Peak resident memory (VmHWM) of each renderer process of the Chromium using `profile`
    (or of each process of another `kind`, e.g. b"--type=gpu-process")."""
    peaks = []
    for pid, cmd in profile_processes(profile):
        if kind not in cmd or b"--top-chrome-webui" in cmd:
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sorted(peaks, reverse=True)


def wait_json(driver, what, profile, timeout_s=TIMEOUT_S):
    t0 = time.time()
    last = None
    reniced = 0.0

    def done(d):
        nonlocal last, reniced
        if time.time() - reniced > 2:
            renice(profile)
            reniced = time.time()
        el = d.find_element(By.CSS_SELECTOR, '[data-testid="bench-json"]')
        status = d.find_element(By.CSS_SELECTOR, '[data-testid="bench-status"]').text
        if status != last:
            print(f"  [{time.time() - t0:7.1f} s] {what}: {status}", flush=True)
            last = status
        return el.get_attribute("data-state") in ("done", "error")

    WebDriverWait(driver, timeout_s, poll_frequency=0.5).until(done)
    el = driver.find_element(By.CSS_SELECTOR, '[data-testid="bench-json"]')
    state = el.get_attribute("data-state")
    text = driver.execute_script("return arguments[0].textContent", el)
    if state != "done":
        error = driver.find_elements(By.CSS_SELECTOR, '[data-testid="bench-error"]')
        raise RuntimeError(f"{what} failed: {error[0].text if error else text}")
    return json.loads(text)


# The browser's own description of its WebGPU adapter (wgpu gives the page no name in a browser).
ADAPTER_INFO_JS = """
const done = arguments[arguments.length - 1];
(async () => {
  if (!navigator.gpu) return {available: false, why: "no navigator.gpu"};
  const a = await navigator.gpu.requestAdapter();
  if (!a) return {available: false, why: "requestAdapter() returned null"};
  const i = a.info || {};
  return {available: true, vendor: i.vendor, architecture: i.architecture, device: i.device,
          description: i.description, isFallbackAdapter: i.isFallbackAdapter ?? a.isFallbackAdapter ?? null};
})().then(done, e => done({available: false, why: String(e)}));
"""


def adapter_info(driver):
    try:
        return driver.execute_async_script(ADAPTER_INFO_JS)
    except Exception as e:  # noqa: BLE001 - a description only
        return {"available": False, "why": f"{type(e).__name__}: {e}"}


def run(url, what, start=None, extra_args=(), timeout_s=TIMEOUT_S):
    """One engine in a fresh profile: its JSON plus the renderer's peak RSS and Chromium's version
    (and, with WebGPU offered, the GPU process's peak RSS and the browser's adapter info)."""
    profile = tempfile.mkdtemp(prefix="tagllm-bench-chromium-")
    driver = browser(profile, extra_args)
    try:
        print(f"== {what}: {url}", flush=True)
        renice(profile)
        driver.get(url)
        if start is not None:
            WebDriverWait(driver, 60).until(lambda d: d.execute_script("return typeof window.startBench === 'function'"))
            driver.execute_script("window.startBench(arguments[0]); return 0;", start)
        result = wait_json(driver, what, profile, timeout_s)
        result["renderer_peak_rss_mb"] = renderer_peak_rss_mb(profile)
        if extra_args:
            result["gpu_process_peak_rss_mb"] = renderer_peak_rss_mb(profile, b"--type=gpu-process")
            result["browser_adapter_info"] = adapter_info(driver)
        result["chromium"] = driver.capabilities.get("browserVersion")
        return result
    except Exception:
        for entry in driver.get_log("browser")[-30:]:
            print("  console:", entry.get("level"), entry.get("message"), file=sys.stderr)
        raise
    finally:
        driver.quit()


def run_webgpu(url, n):
    """Our page's `?bench` view with WebGPU offered (SwiftShader) and chosen: its whole report
    (the CPU figures of this second run too) under `run`, and what the WebGPU path gave: `gpu`
    (adapter, prefill, molecules/s) when the model ran on WebGPU, else `why` it did not. Never
    raises: without WebGPU the rest of the benchmark stands."""
    page = f"{url}?bench&n={n}&backend=gpu"
    try:
        report = run(page, "tagllm page (?bench), WebGPU offered (SwiftShader) and chosen",
                     extra_args=["--enable-unsafe-webgpu"], timeout_s=WEBGPU_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        why = f"{type(e).__name__}: {e}".strip()
        print(f"  WebGPU run failed: {why}", file=sys.stderr)
        return {"url": page, "available": False, "why": why, "run": None}
    report.pop("prompt_tokens", None)
    report.pop("prompt_texts", None)
    gpu = report.get("gpu")
    in_use = report.get("backend_in_use") or ""
    info = report.pop("browser_adapter_info", None)
    out = {"url": page, "chromium_flags": ["--enable-unsafe-webgpu"], "backend_in_use": in_use,
           "browser_adapter_info": info, "run": report}
    if isinstance(gpu, dict) and "error" not in gpu:
        adapter = gpu.get("adapter") or "unnamed adapter"
        # The page's description (from wgpu), with the browser's own words for the adapter where
        # wgpu has no name for it (in a browser it has none): e.g. "google swiftshader, fallback".
        if info and info.get("available"):
            words = " ".join(x for x in (info.get("vendor"), info.get("architecture"), info.get("description")) if x)
            if info.get("isFallbackAdapter"):
                words += ", fallback adapter"
            if words.strip(", "):
                adapter = f"{adapter} — {words.strip(', ')}"
        out.update(available=True, adapter=adapter, gpu=gpu)
    elif isinstance(gpu, dict):
        out.update(available=False, why=f"the GPU benchmark failed: {gpu['error']} (backend in use: {in_use})")
    else:
        out.update(available=False, why=in_use or "the page reported no GPU figures")
    print(f"  WebGPU: {out.get('adapter') or 'not measured: ' + out['why']}", flush=True)
    return out


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True, help="the page, built by trunk")
    ap.add_argument("--wllama", type=Path, required=True, help="the @wllama/wllama package folder")
    ap.add_argument("--version", required=True, help="the @wllama/wllama version, for the record")
    ap.add_argument("--harness", type=Path, default=Path(__file__).parent / "wllama")
    ap.add_argument("--smiles", type=Path, default=Path("tests/fixtures/bench_smiles.txt"))
    ap.add_argument("--n", type=int, default=100, help="molecules (the first N benchmark SMILES)")
    ap.add_argument("--gpu-n", type=int, default=10,
                    help="molecules of the WebGPU run (the first N of them; on SwiftShader each takes ~30 s)")
    ap.add_argument("--out", required=True, help="results stem: writes STEM.browser.json")
    args = ap.parse_args()
    smiles = [line.strip() for line in args.smiles.read_text().splitlines() if line.strip()][:args.n]

    server, url = serve(args.dist, args.harness, args.wllama)
    load_before = os.getloadavg()
    t0 = time.time()
    try:
        ours = run(f"{url}?bench&n={args.n}", "tagllm page (?bench)")
        texts = ours["prompt_texts"]
        config = {
            "version": args.version, "modelUrl": "/SmolLM2-135M-Instruct.Q4_1.gguf",
            "prefill": [{"text": texts[f"prefill_{p['tokens']}"], "tokens": p["tokens"]} for p in ours["prefill"]],
            "decodePrompt": texts["decode_16"], "decodePromptTokens": 16, "decodeTokens": ours["decode_tokens"],
            "smiles": smiles, "head": HEAD, "tail": TAIL,
        }
        theirs = run(f"{url}wllama/", "wllama, 1 thread", {**config, "threads": 1})
        threads = os.cpu_count() or 1
        theirs_mt = None
        if threads > 1 and theirs.get("cross_origin_isolated"):
            theirs_mt = run(f"{url}wllama/", f"wllama, {threads} threads", {**config, "threads": threads})
        # Last, so that the CPU and wllama runs above are measured as before.
        webgpu = run_webgpu(url, min(args.gpu_n, args.n))
    finally:
        server.shutdown()
    for r in (ours, theirs, theirs_mt):
        if r:
            r.pop("prompt_tokens", None)  # long; their text went to wllama
            r.pop("prompt_texts", None)
    stem = Path(args.out)
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "host": platform.node().split(".")[0],
        "machine": {
            "cpu": cpu_model(), "logical_cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "os": f"{platform.system()} {platform.release()}", "chromium": ours.get("chromium"),
        },
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
        "wall_s": round(time.time() - t0),
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf (the page's own copy, same URL for both)",
        "molecules": len(smiles),
        "ours": ours, "wllama_1_thread": theirs, "wllama_all_threads": theirs_mt,
        "ours_webgpu": webgpu,
    }
    path = stem.with_name(stem.name + ".browser.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"== wrote {path}")


if __name__ == "__main__":
    main()
