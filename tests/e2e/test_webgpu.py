"""The page on WebGPU, in headless Chromium with WebGPU offered on SwiftShader
(--enable-unsafe-webgpu; ../shared/docs/toolchain.md):

(a) on Auto the page keeps to the CPU and says why (SwiftShader is a software adapter, slower
    than the CPU path); chosen in the page, WebGPU runs and the page says so;
(b) its predictions (QED, three molecules and a broken one) match the native CLI's CPU numbers
    and the page's own CPU backend within TOLERANCE, and the broken line gets the same error;
(c) the user can switch to the CPU in the page (the worker starts again, the model comes from the
    browser's cache) and the page says the CPU runs because it was chosen;
(d) a GPU device lost in the middle of a batch (`?fault=lose-gpu` destroys it after the first
    sub-batch, as a driver reset would): the batch finishes on the CPU, every input gets its
    value, and the page says what happened;
(e) the benchmark view (`?bench&backend=gpu`) adds the GPU's figures (adapter, prefill,
    decode, molecules/s) to the CPU's.
In (b) greedy text generation on the GPU also gives the CLI's text.

(The CPU fallback where the browser offers no WebGPU at all is checked by test_page.py.)

Usage: test_webgpu.py --dist DIR --tags DIR --cli PATH --out DIR   (see tests/e2e/run.sh)
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_page import (INVALID, VALID, browser, failure_report, cli_predictions, full_screenshot, rows_of,  # noqa: E402
                       serve, set_inputs, testid, wait_ready, wait_rows)

# The GPU forward pass is f32 throughout, like the CPU path; only summation orders differ
# (tests/gpu_parity.rs: hidden states within 2e-6 relative, predictions within 1e-4).
TOLERANCE = 1e-3
MORE = ["CCN(CC)CC", "O=C(O)c1ccccc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]


def run(driver, lines, expect):
    Select(testid(driver, "function-tag")).select_by_value("QED")
    set_inputs(driver, lines, expect)
    t0 = time.time()
    testid(driver, "run").click()
    wait_rows(driver, len(lines), done=True)
    return {r[0]: (r[1], r[2]) for r in rows_of(driver)}, time.time() - t0


def generate(driver, prompt, n):
    """Greedy generation in the page (the prompt has no tag, so it runs once): the text."""
    details = driver.find_element(By.CSS_SELECTOR, '[data-testid="generation"]')
    if not details.get_attribute("open"):
        details.find_element(By.CSS_SELECTOR, "summary").click()
    for name, value in [("prompt", prompt), ("max-tokens", str(n)), ("temperature", "0")]:
        el = testid(driver, name)
        el.clear()
        el.send_keys(value)
    testid(driver, "generate").click()
    WebDriverWait(driver, 600, poll_frequency=0.5).until(lambda d: testid(d, "gen-info").text)
    return driver.execute_script("return document.querySelector('[data-testid=\"generated-text\"]').textContent")


def cli_generate(cli, tags, prompt, n):
    """The CLI's greedy text on f32 weights (what the page's CPU path holds)."""
    out = subprocess.run([cli, "--weights", "f32", "--tags", str(tags), "generate", "--prompt", prompt,
                          "--max-tokens", str(n), "--temperature", "0"], check=True, capture_output=True, text=True).stdout
    return out[:-1] if out.endswith("\n") else out


def compare(got, want, what):
    """Max |got - want| over the valid inputs; errors must agree."""
    diff = 0.0
    for smi, (value, error) in got.items():
        if want[smi]["error"]:
            assert value is None and error, f"{what}: {smi} should be refused, got {value}"
            continue
        assert value is not None, f"{what}: {smi} has no value ({error})"
        d = abs(value - want[smi]["prediction"])
        print(f"  {what}: {smi:28s} {value:.6f}  cli {want[smi]['prediction']:.6f}  |diff| {d:.2e}")
        diff = max(diff, d)
    assert diff <= TOLERANCE, f"{what}: max |page - CLI| = {diff} > {TOLERANCE}"
    return diff


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--tags", type=Path, required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    expected = cli_predictions(args.cli, args.tags, args.out, inputs=VALID + [INVALID] + MORE)
    server, url = serve(args.dist)
    driver = browser(tempfile.mkdtemp(prefix="tagllm-e2e-webgpu-"), ["--enable-unsafe-webgpu"])
    metrics = {}
    try:
        with failure_report(driver, args.out, "failure-webgpu"):
            # (a) Auto does not pick a software adapter (slower than the CPU path) and says so; the
            # user chooses WebGPU in the page.
            driver.get(url)
            metrics["load_s"] = round(wait_ready(driver), 1)
            backend = testid(driver, "backend").text
            print(f"  backend on Auto: {backend}")
            assert backend.startswith("CPU") and "software" in backend, backend
            metrics["backend_auto"] = backend
            Select(testid(driver, "backend-choice")).select_by_value("gpu")
            wait_ready(driver)
            backend = testid(driver, "backend").text
            print(f"  backend: {backend}")
            assert backend.startswith("WebGPU"), backend
            metrics["backend"] = backend

            # (b) Predictions on the GPU against the CLI.
            got, secs = run(driver, VALID + [INVALID], "3 valid, 1 invalid")
            metrics["gpu_run_s"] = round(secs, 1)
            metrics["gpu_max_abs_diff_vs_cli"] = compare(got, expected, "WebGPU")
            gpu_values = got
            full_screenshot(driver, args.out / "screenshot-webgpu.png")
            # Greedy generation on the GPU (the prompt in one pass, then a pass per token on its KV
            # cache) gives the CLI's text.
            t0 = time.time()
            generated = generate(driver, "The capital of France is", 4)
            metrics["gpu_generate_s"] = round(time.time() - t0, 1)
            want = cli_generate(args.cli, args.tags, "The capital of France is", 4)
            print(f"  generated on WebGPU: {generated!r} (CLI: {want!r}), {testid(driver, 'gen-info').text}")
            assert generated == want and generated.startswith(" Paris"), (generated, want)
            assert testid(driver, "gen-info").text.endswith("on WebGPU"), testid(driver, "gen-info").text
            metrics["gpu_generated"] = generated

            # (c) The user switches to the CPU.
            Select(testid(driver, "backend-choice")).select_by_value("cpu")
            wait_ready(driver)
            backend = testid(driver, "backend").text
            assert backend.startswith("CPU") and "chosen" in backend, backend
            got, secs = run(driver, VALID + [INVALID], "3 valid, 1 invalid")
            metrics["cpu_run_s"] = round(secs, 1)
            compare(got, expected, "CPU")
            diff = max(abs(gpu_values[s][0] - got[s][0]) for s in VALID)
            print(f"  max |WebGPU - CPU| in the page: {diff:.2e}")
            assert diff <= TOLERANCE, diff
            metrics["gpu_vs_cpu_max_abs_diff"] = diff

            # (d) The device is lost after the first sub-batch; the batch finishes on the CPU.
            driver.get(url + "?backend=gpu&fault=lose-gpu")
            wait_ready(driver)
            assert testid(driver, "backend").text.startswith("WebGPU"), testid(driver, "backend").text
            lines = VALID + MORE
            got, secs = run(driver, lines, f"{len(lines)} valid, 0 invalid")
            compare(got, expected, "device lost")
            backend = testid(driver, "backend").text
            print(f"  backend after the loss: {backend}")
            assert backend.startswith("CPU") and "WebGPU failed during a run" in backend, backend
            metrics["backend_after_device_loss"] = backend
            full_screenshot(driver, args.out / "screenshot-webgpu-lost.png")

            # (e) The benchmark view on the GPU: its figures beside the CPU's.
            driver.get(url + "?bench&quick&n=3&backend=gpu")
            WebDriverWait(driver, 600, poll_frequency=0.5).until(
                lambda d: testid(d, "bench-json").get_attribute("data-state") in ("done", "error"))
            el = testid(driver, "bench-json")
            assert el.get_attribute("data-state") == "done", testid(driver, "bench-error").text
            v = json.loads(driver.execute_script("return arguments[0].textContent", el))
            gpu = v["gpu"]
            assert v["backend_in_use"].startswith("WebGPU") and gpu and "software" in gpu["adapter"], (v["backend_in_use"], gpu)
            assert gpu["prefill"][0]["tokens"] == 50 and gpu["prefill"][0]["tokens_per_s"] > 0, gpu
            assert gpu["molecules"] == 3 and gpu["molecules_failed"] == 0 and gpu["molecules_per_s"] > 0, gpu
            assert gpu["decode_tokens"] == 8 and gpu["decode_tokens_per_s"] > 0, gpu
            metrics["bench_gpu"] = gpu
            print(f"  ?bench on SwiftShader: prefill 50 {gpu['prefill'][0]['tokens_per_s']:.1f} tokens/s, "
                  f"{gpu['molecules_per_s']:.3f} molecules/s (CPU: {v['molecules_per_s']:.2f})")
    finally:
        server.shutdown()
    (args.out / "webgpu.json").write_text(json.dumps(metrics, indent=1))
    print("e2e webgpu: ok", json.dumps(metrics))


if __name__ == "__main__":
    main()
