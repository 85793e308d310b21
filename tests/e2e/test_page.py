"""Drives the built page in headless Chromium: predictions against the CLI, validation, tag
files (picker and drag-and-drop), sorting, chart, copy, CSV, examples, progress and cancel,
persistence across reloads, side-by-side generation, the tag inspector, a local model file, and
offline use (the server stopped, the page reloaded from the service worker's caches).

Usage: test_page.py --dist DIR --tags DIR --cli PATH --out DIR --model PATH   (see tests/e2e/run.sh)
"""
import argparse
import base64
import contextlib
import functools
import http.server
import json
import re
import struct
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


def browser(profile, extra_args=()):
    """Headless Chromium; `extra_args` e.g. ["--enable-unsafe-webgpu"] (WebGPU on SwiftShader)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1100,1400", *extra_args]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


@contextlib.contextmanager
def failure_report(driver, out, name):
    """On an error in the block: a screenshot (OUT/NAME.png) and the browser's last console lines,
    then the error goes on; the browser is closed either way."""
    try:
        yield
    except Exception:
        try:
            driver.save_screenshot(str(out / f"{name}.png"))
            for entry in driver.get_log("browser")[-40:]:
                print("  console:", entry.get("level"), entry.get("message"), file=sys.stderr)
        except Exception:
            pass
        raise
    finally:
        driver.quit()


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


def cli_predictions(cli, tags, out, tag="QED", extra=(), inputs=None):
    path = out / "molecules.smi"
    path.write_text("\n".join(inputs or (VALID + [INVALID])) + "\n")
    # The page computes on f32 weights: so does the reference (the CLI's default may be amx).
    res = subprocess.run([cli, "--weights", "f32", "predict", "--tags", str(tags), "--tag", tag, "--input", str(path), "--format", "json", *extra],
                         check=True, capture_output=True, text=True)
    return {r["input"]: r for r in json.loads(res.stdout)["results"]}


def rows_of(driver):
    """The result table as [(input, value or None, error or None)], in the order shown."""
    return driver.execute_script("""
        return [...document.querySelectorAll('[data-testid="result-row"]')].map(r => [
            r.dataset.input, r.dataset.value === undefined ? null : Number(r.dataset.value),
            r.dataset.error === undefined ? null : r.dataset.error]);""")


def click_testid(driver, name):
    driver.execute_script("document.querySelector(arguments[0]).click()", f'[data-testid="{name}"]')


def custom_tag(src, name):
    """A copy of tag file `src` renamed to `name` (its template names the new tag): a user's own tag."""
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["tagllm"])
    old = meta["name"]
    meta["name"] = name
    meta["template"] = meta["template"].replace(f"<{old}>", f"<{name}>")
    meta["description"] = f"A user's tag file (a renamed copy of the test <{old}>)"
    header["__metadata__"]["tagllm"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + raw[8 + n:]


def drop_files(driver, testid_name, files):
    """Dispatches a synthetic drop of `files` ({name: bytes}) on an element: a DataTransfer built in JS."""
    payload = {name: base64.b64encode(data).decode() for name, data in files.items()}
    driver.execute_script("""
        const [sel, files] = arguments;
        const dt = new DataTransfer();
        for (const [name, b64] of Object.entries(files)) {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            dt.items.add(new File([bytes], name));
        }
        const el = document.querySelector(`[data-testid="${sel}"]`);
        el.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: dt}));
        el.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: dt}));""",
                          testid_name, payload)


def full_screenshot(driver, path):
    """The whole page, not only the window."""
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1100, max(1400, height + 40))
    driver.save_screenshot(str(path))
    driver.set_window_size(1100, 1400)


def check_values(got, want, tol, what):
    diff = 0.0
    for smi, value, _ in got:
        diff = max(diff, abs(value - want[smi]["prediction"]))
    assert diff <= tol, f"{what}: max |page - CLI| = {diff} > {tol}"
    return diff


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--tags", type=Path, required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    expected = cli_predictions(args.cli, args.tags, args.out)
    server, url = serve(args.dist)
    profile = tempfile.mkdtemp(prefix="tagllm-e2e-chromium-")
    driver = browser(profile)
    metrics = {}
    try:
        with failure_report(driver, args.out, "failure"):
            print(f"  page {url}", flush=True)
            driver.get(url)
            metrics["first_load_s"] = round(wait_ready(driver), 1)
            metrics["load_info"] = testid(driver, "load-info").text
            backend = testid(driver, "backend").text
            assert backend.startswith("CPU") and "no WebGPU adapter" in backend, backend
            quantized = "quantised" in metrics["load_info"]
            tol = TOLERANCE_F32 if not quantized else TOLERANCE_QUANTIZED

            # Status line: model name and sha256 prefix, tag versions.
            model_sha = subprocess.run(["sha256sum", str(args.model)], check=True, capture_output=True, text=True).stdout.split()[0]
            assert model_sha[:12] in testid(driver, "model-version").text, testid(driver, "model-version").text
            versions = testid(driver, "tag-versions").text
            assert re.search(r"<QED> v\d+ [0-9a-f]{8}", versions), versions
            metrics["status_line"] = testid(driver, "status-line").text

            select = Select(testid(driver, "function-tag"))
            values = [o.get_attribute("value") for o in select.options]
            assert "QED" in values and "BindingAffinity" in values, values
            select.select_by_value("BindingAffinity")
            testid(driver, "protein-input")  # two-input tag: the protein box appears
            select.select_by_value("QED")
            assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="protein-input"]')

            # QED for 3 SMILES and a broken one: the CLI's numbers, the broken line's error.
            set_inputs(driver, VALID + [INVALID], "3 valid, 1 invalid")
            testid(driver, "run").click()
            t0 = time.time()
            wait_rows(driver, 4, done=True)
            metrics["run_s"] = round(time.time() - t0, 2)
            metrics["run_info"] = testid(driver, "run-info").text
            got = {r[0]: (r[1], r[2]) for r in rows_of(driver)}
            assert set(got) == set(VALID + [INVALID]), got
            diffs = {}
            for smi in VALID:
                value, error = got[smi]
                assert value is not None and error is None, (smi, value, error)
                want = expected[smi]["prediction"]
                diffs[smi] = abs(value - want)
                print(f"  {smi:28s} page {value:.6f}  cli {want:.6f}  |diff| {diffs[smi]:.2e}")
                assert diffs[smi] <= tol, f"{smi}: page {value} vs CLI {want} (tolerance {tol})"
            value, error = got[INVALID]
            assert value is None and error, (INVALID, value, error)
            assert expected[INVALID]["error"], expected[INVALID]
            print(f"  {INVALID:28s} error: {error}")
            metrics["max_abs_diff_vs_cli"] = max(diffs.values())

            # The chart: one mark per value, at the values.
            marks = driver.execute_script(
                'return [...document.querySelectorAll(\'[data-testid="chart"] .mark\')].map(m => Number(m.dataset.value))')
            assert sorted(marks) == sorted(got[s][0] for s in VALID), marks

            # Sorting by clicking the headers.
            click_testid(driver, "sort-value")
            order = rows_of(driver)
            vals = [r[1] for r in order if r[1] is not None]
            assert vals == sorted(vals) and order[-1][0] == INVALID, order
            click_testid(driver, "sort-value")
            order = rows_of(driver)
            vals = [r[1] for r in order if r[1] is not None]
            assert vals == sorted(vals, reverse=True) and order[-1][0] == INVALID, order
            assert testid(driver, "sort-value").get_attribute("aria-sort") == "descending"
            click_testid(driver, "sort-input")
            assert [r[0] for r in rows_of(driver)] == sorted(VALID + [INVALID])
            click_testid(driver, "sort-status")
            order = rows_of(driver)
            assert order[0][2] is not None and all(r[2] is None for r in order[1:]), order  # errors first
            click_testid(driver, "sort-order")
            assert [r[0] for r in rows_of(driver)] == VALID + [INVALID]

            # Copy: the TSV of the table as shown; the clipboard holds it when headless Chromium lets us read it.
            origin = url.rstrip("/")
            try:
                driver.execute_cdp_cmd("Browser.grantPermissions", {
                    "origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
            except Exception as e:
                print(f"  (clipboard permissions not granted: {e})")
            click_testid(driver, "copy")
            WebDriverWait(driver, 10).until(lambda d: testid(d, "copy").get_attribute("data-copied"))
            tsv = testid(driver, "copy").get_attribute("data-copied")
            lines = tsv.rstrip("\n").split("\n")
            assert lines[0] == "input\tprediction\terror" and len(lines) == 5, lines
            for line, (smi, value, error) in zip(lines[1:], rows_of(driver)):
                cells = line.split("\t")
                assert cells[0] == smi and (cells[1] == "" if value is None else abs(float(cells[1]) - value) < 1e-12), (line, smi, value)
                assert (error or "") == cells[2], (line, error)
            clip = driver.execute_async_script("""
                const done = arguments[arguments.length - 1];
                navigator.clipboard.readText().then(done, e => done('ERROR: ' + e));""")
            metrics["clipboard"] = "matches the table" if clip == tsv else f"not readable here ({clip[:80]})"
            if not clip.startswith("ERROR"):
                assert clip == tsv, (clip, tsv)
            assert "Copied 4 rows" in testid(driver, "copy").text

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
            metrics["affinity_max_abs_diff_vs_cli"] = check_values(rows_of(driver), want_aff, tol, "BindingAffinity")
            metrics["affinity_run_info"] = testid(driver, "run-info").text

            # Examples one click away: a kinase and its ligands for the two-input tag ...
            click_testid(driver, "example-affinity")
            WebDriverWait(driver, 10).until(lambda d: "5 valid, 0 invalid" in testid(d, "validation").text)
            assert testid(driver, "protein-input").get_attribute("value").startswith(">CDK2")
            assert Select(testid(driver, "function-tag")).first_selected_option.get_attribute("value") == "BindingAffinity"
            # ... and drug molecules (plus a broken line) for QED, which the button switches to.
            click_testid(driver, "example-smiles")
            WebDriverWait(driver, 10).until(lambda d: "4 valid, 1 invalid" in testid(d, "validation").text)
            assert Select(testid(driver, "function-tag")).first_selected_option.get_attribute("value") == "QED"
            testid(driver, "run").click()
            wait_rows(driver, 5, done=True)
            names = driver.execute_script(
                'return [...document.querySelectorAll(\'[data-testid="result-row"] .name\')].map(e => e.textContent)')
            assert names[:4] == ["aspirin", "caffeine", "ibuprofen", "paracetamol"], names
            example_rows = rows_of(driver)
            assert sum(r[1] is not None for r in example_rows) == 4 and example_rows[4][2], example_rows
            metrics["examples"] = {r[0]: r[1] if r[1] is not None else r[2] for r in example_rows}

            # Text generation (greedy) gives the CLI's text; a prompt without tags has nothing to compare.
            def cli_generate(prompt, n):
                out = subprocess.run([args.cli, "--weights", "f32", "--tags", str(args.tags), "generate", "--prompt", prompt,
                                      "--max-tokens", str(n), "--temperature", "0"], check=True, capture_output=True, text=True).stdout
                return out[:-1] if out.endswith("\n") else out  # the CLI's closing newline

            def generate(prompt, n):
                for name, value in [("prompt", prompt), ("max-tokens", str(n)), ("temperature", "0")]:
                    el = testid(driver, name)
                    el.clear()
                    el.send_keys(value)
                testid(driver, "generate").click()
                WebDriverWait(driver, RUN_TIMEOUT_S).until(lambda d: testid(d, "gen-info").text and testid(d, "gen-plain-info").text)
                text = lambda n: driver.execute_script("return document.querySelector(arguments[0]).textContent", f'[data-testid="{n}"]')
                return text("generated-text"), text("generated-plain")

            driver.find_element(By.CSS_SELECTOR, '[data-testid="generation"] summary').click()
            with_tags, plain = generate("The capital of France is", 3)
            metrics["generated"] = with_tags
            metrics["gen_info"] = testid(driver, "gen-info").text
            assert with_tags == cli_generate("The capital of France is", 3), with_tags
            assert plain == "" and "no tag" in testid(driver, "gen-plain-info").text
            # Side by side: the same prompt with and without <SMILES>.
            click_testid(driver, "generation-example")
            prompt = testid(driver, "prompt").get_attribute("value")
            assert "<SMILES>" in prompt, prompt
            with_tags, plain = generate(prompt, 6)
            metrics["generated_side_by_side"] = {"with": with_tags, "without": plain}
            assert with_tags == cli_generate(prompt, 6), (with_tags, cli_generate(prompt, 6))
            assert plain == cli_generate(prompt.replace("<SMILES> ", ""), 6), plain
            driver.save_screenshot(str(args.out / "screenshot-generate.png"))

            # Throughput: 24 molecules in one run.
            Select(testid(driver, "function-tag")).select_by_value("QED")
            many = [("C" * k) + "O" for k in range(1, 13)] + [f"c1ccccc1{'C' * k}N" for k in range(12)]
            set_inputs(driver, many, f"{len(many)} valid, 0 invalid")
            testid(driver, "run").click()
            t0 = time.time()
            wait_rows(driver, len(many), done=True)
            metrics["throughput_inputs"] = len(many)
            metrics["throughput_s"] = round(time.time() - t0, 2)
            metrics["throughput_info"] = testid(driver, "run-info").text
            metrics["ms_per_input"] = round(1000 * metrics["throughput_s"] / len(many))

            # Progress counts every input (invalid ones are done at once); rate and time left are shown;
            # a reload in the middle keeps the inputs and what was computed; cancel stops a run early.
            broken = [f"C1CC{'C' * k}" for k in range(10)]
            long = [("C" * (k % 20 + 1)) + "N" for k in range(80)]
            set_inputs(driver, broken + long, "80 valid, 10 invalid")
            testid(driver, "run").click()
            WebDriverWait(driver, 30).until(lambda d: re.match(r"(\d+) of 90", testid(d, "run-progress").text)
                                            and int(testid(d, "run-progress").text.split()[0]) >= 10)
            WebDriverWait(driver, 60).until(lambda d: "inputs/s" in testid(d, "run-rate").text)
            metrics["run_rate"] = testid(driver, "run-rate").text
            assert re.search(r"[\d.]+ inputs/s · about .+ left", metrics["run_rate"]), metrics["run_rate"]
            # Two sub-batches computed (live in the table), then the save interval, then reload.
            WebDriverWait(driver, 60).until(lambda d: sum(r[1] is not None for r in rows_of(d)) >= 8)
            time.sleep(1.2)
            before = {r[0]: r[1] for r in rows_of(driver) if r[1] is not None}
            driver.refresh()
            WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="result-row"]')) == 90)
            after = rows_of(driver)
            kept = {r[0]: r[1] for r in after if r[1] is not None}
            assert len(kept) >= 4 and all(before.get(k) == v for k, v in kept.items()), (len(before), len(kept))
            pending = [r for r in after if r[1] is None and "reloaded during the run" in (r[2] or "")]
            assert len(kept) + len(pending) + len(broken) == 90, (len(kept), len(pending))
            assert testid(driver, "input").get_attribute("value") == "\n".join(broken + long)
            assert "Interrupted by a reload" in testid(driver, "run-info").text, testid(driver, "run-info").text
            metrics["reload_mid_run"] = f"{len(kept)} of 80 values kept, {len(pending)} marked not computed"
            metrics["cached_load_s"] = round(wait_ready(driver), 1)
            metrics["cached_load_info"] = testid(driver, "load-info").text
            assert "from the browser cache" in metrics["cached_load_info"], metrics["cached_load_info"]
            testid(driver, "run").click()
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="cancel"]'))
            WebDriverWait(driver, 60).until(lambda d: int(testid(d, "run-progress").text.split()[0]) > 10)
            t0 = time.time()
            testid(driver, "cancel").click()
            WebDriverWait(driver, RUN_TIMEOUT_S, poll_frequency=0.1).until(lambda d: testid(d, "run-info").text.startswith("Cancelled"))
            metrics["cancel_latency_s"] = round(time.time() - t0, 2)
            rows = rows_of(driver)
            cancelled = [r for r in rows if "cancelled" in (r[2] or "")]
            assert len(rows) == 90 and cancelled, (len(rows), len(cancelled))
            metrics["cancel_info"] = testid(driver, "run-info").text

            # Tag files from the file picker: a corrupt one is refused with a message.
            bad = args.out / "Broken.safetensors"
            bad.write_bytes(b"this is not a tag file")
            testid(driver, "tag-file").send_keys(str(bad.resolve()))
            WebDriverWait(driver, 30).until(lambda d: "Broken.safetensors" in testid(d, "tag-errors").text)
            metrics["bad_tag_error"] = testid(driver, "tag-errors").text
            testid(driver, "tag-file").send_keys(str((args.tags / "QED.safetensors").resolve()))
            WebDriverWait(driver, 30).until(lambda d: not testid(d, "tag-errors").text.strip())

            # A user's own tag by drag-and-drop: it appears and predicts (a renamed QED: the same numbers).
            drop_files(driver, "tag-drop", {"DrugLike.safetensors": custom_tag(args.tags / "QED.safetensors", "DrugLike")})
            WebDriverWait(driver, 30).until(lambda d: "DrugLike" in [o.get_attribute("value") for o in Select(testid(d, "function-tag")).options])
            Select(testid(driver, "function-tag")).select_by_value("DrugLike")
            # An input file dropped on the text area fills it.
            drop_files(driver, "input", {"molecules.smi": ("\n".join(VALID) + "\n").encode()})
            WebDriverWait(driver, 10).until(lambda d: "3 valid, 0 invalid" in testid(d, "validation").text)
            testid(driver, "run").click()
            wait_rows(driver, 3, done=True)
            metrics["dropped_tag_max_abs_diff_vs_cli_qed"] = check_values(rows_of(driver), expected, tol, "dropped tag")
            Select(testid(driver, "function-tag")).select_by_value("QED")

            # Tag inspector: a card (rendered Markdown) or the metadata, and the nearest tokens per vector.
            driver.find_element(By.CSS_SELECTOR, '[data-testid="inspector"] summary').click()
            Select(testid(driver, "inspect-tag")).select_by_value("QED")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="nearest"][data-tag="QED"]'))
            near = driver.execute_script("""return [...document.querySelectorAll('[data-testid="nearest-row"]')].map(r =>
                [...r.querySelectorAll('.tok')].map(t => [t.dataset.token, Number(t.querySelector('.cos').textContent)]))""")
            assert len(near) == 10 and all(len(v) == 6 for v in near), near  # the test <QED> has p = 10
            assert all(-1 <= c <= 1 for v in near for _, c in v), near
            assert all(v[i][1] >= v[i + 1][1] for v in near for i in range(5)), near
            metrics["nearest_tokens_QED_vector1"] = near[0]
            # With the shared (mean-embedding) direction removed: other tokens, same shape.
            click_testid(driver, "nearest-centred")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="nearest"][data-tag="QED"][data-centred="true"]'))
            centred = driver.execute_script("""return [...document.querySelectorAll('[data-testid="nearest-row"]')].map(r =>
                [...r.querySelectorAll('.tok')].map(t => [t.dataset.token, Number(t.querySelector('.cos').textContent)]))""")
            assert len(centred) == 10 and all(len(v) == 6 for v in centred), centred
            metrics["nearest_tokens_QED_vector1_centred"] = centred[0]
            click_testid(driver, "nearest-centred")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="nearest"][data-tag="QED"][data-centred="false"]'))
            card = testid(driver, "tag-card")
            assert card.get_attribute("data-source") == "card", card.get_attribute("data-source")
            assert card.find_elements(By.CSS_SELECTOR, "h3") and card.find_elements(By.CSS_SELECTOR, "table td"), card.get_attribute("innerHTML")
            Select(testid(driver, "inspect-tag")).select_by_value("SMILES")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="nearest"][data-tag="SMILES"]'))
            assert testid(driver, "tag-card").get_attribute("data-source") == "metadata"
            assert "domain tag" in testid(driver, "tag-card").text
            # The page as a person sees it: the examples' results, the inspector open.
            click_testid(driver, "example-smiles")
            testid(driver, "run").click()
            wait_rows(driver, 5, done=True)
            Select(testid(driver, "inspect-tag")).select_by_value("QED")
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="nearest"][data-tag="QED"]'))
            full_screenshot(driver, args.out / "screenshot.png")

            # A local model file: a wrong one gets the core's message and the loaded model stays; the
            # real file loads from disk and predicts the same numbers.
            junk = args.out / "not-a-model.gguf"
            junk.write_bytes(b"GGUF" + b"\0" * 64)
            testid(driver, "model-file").send_keys(str(junk.resolve()))
            WebDriverWait(driver, 60).until(lambda d: "not-a-model.gguf" in testid(d, "model-error").text)
            metrics["bad_model_error"] = testid(driver, "model-error").text
            wait_ready(driver)
            t0 = time.time()
            testid(driver, "model-file").send_keys(str(args.model.resolve()))
            WebDriverWait(driver, 60).until(lambda d: testid(d, "model-status").get_attribute("data-state") == "loading")
            wait_ready(driver)
            metrics["local_model_load_s"] = round(time.time() - t0, 1)
            assert "local file" in testid(driver, "model-version").text, testid(driver, "model-version").text
            set_inputs(driver, VALID, "3 valid, 0 invalid")
            testid(driver, "run").click()
            wait_rows(driver, 3, done=True)
            metrics["local_model_max_abs_diff_vs_cli"] = check_values(rows_of(driver), expected, tol, "local model file")

            # Offline: once everything is cached, stop the server; the reload comes from the service
            # worker and the model from Cache Storage, and predictions still work.
            driver.refresh()
            wait_ready(driver)
            WebDriverWait(driver, 60).until(lambda d: testid(d, "network-status").get_attribute("data-offline-ready") == "true")
            metrics["network_status_online"] = testid(driver, "network-status").text
            server.shutdown()
            server.server_close()
            driver.refresh()
            metrics["offline_load_s"] = round(wait_ready(driver), 1)
            metrics["offline_load_info"] = testid(driver, "load-info").text
            assert "from the browser cache" in metrics["offline_load_info"], metrics["offline_load_info"]
            WebDriverWait(driver, 30).until(lambda d: testid(d, "network-status").get_attribute("data-online") == "false")
            metrics["network_status_offline"] = testid(driver, "network-status").text
            assert "Offline" in metrics["network_status_offline"], metrics["network_status_offline"]
            # The inputs survived the reloads (the protein box too); the tags came from the cache.
            assert testid(driver, "input").get_attribute("value") == "\n".join(VALID), testid(driver, "input").get_attribute("value")
            Select(testid(driver, "function-tag")).select_by_value("BindingAffinity")
            assert testid(driver, "protein-input").get_attribute("value").startswith(">CDK2")
            Select(testid(driver, "function-tag")).select_by_value("QED")
            testid(driver, "run").click()
            wait_rows(driver, 3, done=True)
            metrics["offline_max_abs_diff_vs_cli"] = check_values(rows_of(driver), expected, tol, "offline")
            driver.save_screenshot(str(args.out / "screenshot-offline.png"))

            # Quantised weights on request (the automatic fallback when f32 does not fit), and WebGPU
            # asked for in a browser that offers none (this Chromium runs without
            # --enable-unsafe-webgpu): the page says why and runs on the CPU (still offline).
            driver.get(url + "?weights=quantized&backend=webgpu")
            wait_ready(driver)
            assert "quantised" in testid(driver, "load-info").text, testid(driver, "load-info").text
            backend = testid(driver, "backend").text
            assert backend.startswith("CPU") and "no WebGPU adapter" in backend, backend
            metrics["backend_without_webgpu"] = backend
            Select(testid(driver, "function-tag")).select_by_value("QED")
            set_inputs(driver, VALID, "3 valid, 0 invalid")
            testid(driver, "run").click()
            wait_rows(driver, 3, done=True)
            metrics["quantized_max_abs_diff_vs_cli"] = check_values(rows_of(driver), expected, TOLERANCE_QUANTIZED, "quantised")
            metrics["quantized_run_info"] = testid(driver, "run-info").text
            metrics["tolerance"] = tol
            metrics["weights"] = "quantized" if quantized else "f32"
    finally:
        try:
            server.shutdown()
        except Exception:
            pass
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print("e2e: page OK")


if __name__ == "__main__":
    main()
