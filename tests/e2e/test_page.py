"""Drives the built page in headless Chromium and checks QED predictions against the CLI.

Usage: test_page.py --dist DIR --tags DIR --cli PATH --out DIR   (see tests/e2e/run.sh)
"""
import argparse
import functools
import http.server
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

PROTEIN = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ"
VALID = ["CCO", "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O"]
INVALID = "C1CC"
# f32 weights in the page compute what the CLI computes; only the summation order of the
# matrix products differs (wasm simd128 vs native), so values agree to ~1e-5.
TOLERANCE_F32 = 1e-3
# Quantised weights (the fallback when f32 does not fit) differ by ~2% in the hidden state.
TOLERANCE_QUANTIZED = 0.1
LOAD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript", ".json": "application/json"}

    def log_message(self, *args):
        pass


def serve(dist):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(dist)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser(profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1100,1400"]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def testid(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def wait_ready(driver):
    t0 = time.time()
    last = None

    def ready(d):
        nonlocal last
        el = testid(d, "model-status")
        state, text = el.get_attribute("data-state"), el.text
        if (state, text) != last:
            print(f"  [{time.time() - t0:6.1f} s] model-status {state}: {text}", flush=True)
            last = (state, text)
        if state == "error":
            raise AssertionError(f"the model failed to load: {text}")
        return state == "ready"

    WebDriverWait(driver, LOAD_TIMEOUT_S, poll_frequency=0.5).until(ready)
    return time.time() - t0


def set_inputs(driver, lines, expect):
    box = testid(driver, "input")
    box.clear()
    box.send_keys("\n".join(lines))
    WebDriverWait(driver, 10).until(lambda d: expect in testid(d, "validation").text)


def wait_rows(driver, n, done):
    """Waits until the run is over (no cancel button) and the table has n rows."""
    WebDriverWait(driver, RUN_TIMEOUT_S, poll_frequency=0.25).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="cancel"]')
        and len(d.find_elements(By.CSS_SELECTOR, '[data-testid="result-row"]')) == n)


def cli_predictions(cli, tags, out, tag="QED", extra=()):
    path = out / "molecules.smi"
    path.write_text("\n".join(VALID + [INVALID]) + "\n")
    res = subprocess.run([cli, "predict", "--tags", str(tags), "--tag", tag, "--input", str(path), "--format", "json", *extra],
                         check=True, capture_output=True, text=True)
    return {r["input"]: r for r in json.loads(res.stdout)["results"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--tags", type=Path, required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    expected = cli_predictions(args.cli, args.tags, args.out)
    server, url = serve(args.dist)
    profile = tempfile.mkdtemp(prefix="tagllm-e2e-chromium-")
    driver = browser(profile)
    metrics = {}
    try:
        print(f"  page {url}", flush=True)
        driver.get(url)
        metrics["first_load_s"] = round(wait_ready(driver), 1)
        metrics["load_info"] = testid(driver, "load-info").text
        backend = testid(driver, "backend").text
        assert "CPU" in backend, backend
        quantized = "quantised" in metrics["load_info"]
        tol = TOLERANCE_QUANTIZED if quantized else TOLERANCE_F32

        select = Select(testid(driver, "function-tag"))
        values = [o.get_attribute("value") for o in select.options]
        assert "QED" in values and "BindingAffinity" in values, values
        select.select_by_value("BindingAffinity")
        testid(driver, "protein-input")  # two-input tag: the protein box appears
        select.select_by_value("QED")
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="protein-input"]')

        set_inputs(driver, VALID + [INVALID], "3 valid, 1 invalid")
        testid(driver, "run").click()
        t0 = time.time()
        wait_rows(driver, 4, done=True)
        metrics["run_s"] = round(time.time() - t0, 2)
        metrics["run_info"] = testid(driver, "run-info").text

        rows = driver.find_elements(By.CSS_SELECTOR, '[data-testid="result-row"]')
        got = {r.get_attribute("data-input"): (r.get_attribute("data-value"), r.get_attribute("data-error")) for r in rows}
        assert set(got) == set(VALID + [INVALID]), got
        diffs = {}
        for smi in VALID:
            value, error = got[smi]
            assert value is not None and error is None, (smi, value, error)
            want = expected[smi]["prediction"]
            diffs[smi] = abs(float(value) - want)
            print(f"  {smi:28s} page {float(value):.6f}  cli {want:.6f}  |diff| {diffs[smi]:.2e}")
            assert diffs[smi] <= tol, f"{smi}: page {value} vs CLI {want} (tolerance {tol})"
        value, error = got[INVALID]
        assert value is None and error, (INVALID, value, error)
        assert expected[INVALID]["error"], expected[INVALID]
        print(f"  {INVALID:28s} error: {error}")
        metrics["max_abs_diff_vs_cli"] = max(diffs.values())
        driver.save_screenshot(str(args.out / "screenshot.png"))

        # CSV download: the table as input,prediction,error.
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(args.out.resolve())})
        csv_path = args.out / "tagllm-QED.csv"
        csv_path.unlink(missing_ok=True)
        testid(driver, "download-csv").click()
        WebDriverWait(driver, 20).until(lambda d: csv_path.exists() and csv_path.stat().st_size > 0)
        lines = csv_path.read_text().splitlines()
        assert lines[0] == "input,prediction,error" and len(lines) == 5, lines
        assert lines[1].startswith("CCO,0.6") and lines[4].startswith("C1CC,,invalid SMILES"), lines

        # A two-input tag: one protein (its own box) against the list of molecules.
        want_aff = cli_predictions(args.cli, args.tags, args.out, "BindingAffinity", ["--protein", PROTEIN])
        Select(testid(driver, "function-tag")).select_by_value("BindingAffinity")
        testid(driver, "protein-input").send_keys(PROTEIN)
        set_inputs(driver, VALID, "3 valid, 0 invalid")
        testid(driver, "run").click()
        wait_rows(driver, 3, done=True)
        adiff = 0.0
        for r in driver.find_elements(By.CSS_SELECTOR, '[data-testid="result-row"]'):
            adiff = max(adiff, abs(float(r.get_attribute("data-value")) - want_aff[r.get_attribute("data-input")]["prediction"]))
        metrics["affinity_max_abs_diff_vs_cli"] = adiff
        metrics["affinity_run_info"] = testid(driver, "run-info").text
        assert adiff <= tol, adiff
        Select(testid(driver, "function-tag")).select_by_value("QED")

        # Text generation (greedy) gives the CLI's text.
        want_text = subprocess.run([args.cli, "--tags", str(args.tags), "generate", "--prompt", "The capital of France is",
                                    "--max-tokens", "3", "--temperature", "0"],
                                   check=True, capture_output=True, text=True).stdout
        want_text = want_text[:-1] if want_text.endswith("\n") else want_text  # the CLI's closing newline
        driver.find_element(By.CSS_SELECTOR, '[data-testid="generation"] summary').click()
        for name, value in [("prompt", "The capital of France is"), ("max-tokens", "3"), ("temperature", "0")]:
            el = testid(driver, name)
            el.clear()
            el.send_keys(value)
        testid(driver, "generate").click()
        WebDriverWait(driver, RUN_TIMEOUT_S).until(lambda d: testid(d, "gen-info").text)
        got_text = driver.execute_script('return document.querySelector(\'[data-testid="generated-text"]\').textContent')
        metrics["generated"] = got_text
        metrics["gen_info"] = testid(driver, "gen-info").text
        assert got_text == want_text, (got_text, want_text)
        driver.save_screenshot(str(args.out / "screenshot-generate.png"))

        # Throughput: 24 molecules in one run.
        many = [("C" * k) + "O" for k in range(1, 13)] + [f"c1ccccc1{'C' * k}N" for k in range(12)]
        set_inputs(driver, many, f"{len(many)} valid, 0 invalid")
        testid(driver, "run").click()
        t0 = time.time()
        wait_rows(driver, len(many), done=True)
        metrics["throughput_inputs"] = len(many)
        metrics["throughput_s"] = round(time.time() - t0, 2)
        metrics["throughput_info"] = testid(driver, "run-info").text
        metrics["ms_per_input"] = round(1000 * metrics["throughput_s"] / len(many))

        # Cancel: a long run stops early; what was not computed says so.
        long = [("C" * (k % 20 + 1)) + "N" for k in range(80)]
        set_inputs(driver, long, f"{len(long)} valid, 0 invalid")
        testid(driver, "run").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="cancel"]'))
        testid(driver, "cancel").click()
        WebDriverWait(driver, RUN_TIMEOUT_S).until(lambda d: testid(d, "run-info").text.startswith("Cancelled"))
        rows = driver.find_elements(By.CSS_SELECTOR, '[data-testid="result-row"]')
        cancelled = [r for r in rows if "cancelled" in (r.get_attribute("data-error") or "")]
        assert len(rows) == len(long) and cancelled, (len(rows), len(cancelled))
        metrics["cancel_info"] = testid(driver, "run-info").text

        # Tag files from the file picker: a corrupt one is refused with a message.
        bad = args.out / "Broken.safetensors"
        bad.write_bytes(b"this is not a tag file")
        testid(driver, "tag-file").send_keys(str(bad.resolve()))
        WebDriverWait(driver, 30).until(lambda d: "Broken.safetensors" in testid(d, "tag-errors").text)
        metrics["bad_tag_error"] = testid(driver, "tag-errors").text
        testid(driver, "tag-file").send_keys(str((args.tags / "QED.safetensors").resolve()))
        WebDriverWait(driver, 30).until(lambda d: not testid(d, "tag-errors").text.strip())
        metrics["tolerance"] = tol
        metrics["weights"] = "quantized" if quantized else "f32"

        # A second visit loads the model from Cache Storage.
        driver.refresh()
        metrics["cached_load_s"] = round(wait_ready(driver), 1)
        metrics["cached_load_info"] = testid(driver, "load-info").text
        assert "from the browser cache" in metrics["cached_load_info"], metrics["cached_load_info"]

        # Quantised weights on request (the automatic fallback when f32 does not fit), and a
        # backend that does not exist yet: the page says so and runs on the CPU.
        driver.get(url + "?weights=quantized&backend=webgpu")
        wait_ready(driver)
        assert "quantised" in testid(driver, "load-info").text, testid(driver, "load-info").text
        assert "not available yet" in testid(driver, "backend").text, testid(driver, "backend").text
        Select(testid(driver, "function-tag")).select_by_value("QED")
        set_inputs(driver, VALID, "3 valid, 0 invalid")
        testid(driver, "run").click()
        wait_rows(driver, 3, done=True)
        qdiff = 0.0
        for r in driver.find_elements(By.CSS_SELECTOR, '[data-testid="result-row"]'):
            qdiff = max(qdiff, abs(float(r.get_attribute("data-value")) - expected[r.get_attribute("data-input")]["prediction"]))
        metrics["quantized_max_abs_diff_vs_cli"] = qdiff
        metrics["quantized_run_info"] = testid(driver, "run-info").text
        assert qdiff <= TOLERANCE_QUANTIZED, qdiff
    except Exception:
        try:
            driver.save_screenshot(str(args.out / "failure.png"))
            for entry in driver.get_log("browser")[-40:]:
                print("  console:", entry.get("level"), entry.get("message"), file=sys.stderr)
        except Exception:
            pass
        raise
    finally:
        driver.quit()
        server.shutdown()
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print("e2e: page OK")


if __name__ == "__main__":
    main()
