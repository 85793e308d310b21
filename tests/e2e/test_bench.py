"""The page's benchmark view works: `?bench&quick&n=5` (one model load, prefill at 50 tokens, 8
decoding steps, <QED> over 5 benchmark SMILES) fills its table and its machine-readable JSON.
The full benchmark beside wllama: scripts/bench-browser.sh.

Usage: test_bench.py --dist DIR --out DIR   (see tests/e2e/run.sh)
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from test_page import LOAD_TIMEOUT_S, browser, serve, testid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    server, url = serve(args.dist)
    driver = browser(tempfile.mkdtemp(prefix="tagllm-e2e-bench-chromium-"))
    try:
        t0 = time.time()
        driver.get(url + "?bench&quick&n=5")
        WebDriverWait(driver, LOAD_TIMEOUT_S, poll_frequency=0.5).until(
            lambda d: testid(d, "bench-json").get_attribute("data-state") in ("done", "error"))
        el = testid(driver, "bench-json")
        assert el.get_attribute("data-state") == "done", testid(driver, "bench-error").text
        v = json.loads(driver.execute_script("return arguments[0].textContent", el))
        assert v["quick"] and v["load"]["ms"] > 0 and v["weights"] == "f32", v.get("load")
        assert [p["tokens"] for p in v["prefill"]] == [50] and v["prefill"][0]["tokens_per_s"] > 0, v["prefill"]
        assert len(v["prompt_tokens"]["prefill_50"]) == 50 and len(v["prompt_tokens"]["decode_16"]) == 16
        assert v["decode_tokens"] == 8 and v["decode_tokens_per_s"] > 0, v["decode_tokens_per_s"]
        assert v["molecules"] == 5 and v["molecules_tag"] == "QED" and v["molecules_per_s"] > 0, v.get("molecules_error")
        assert v["wasm_memory_mb"] >= v["wasm_memory_mb_after_load"] > 100, v["wasm_memory_mb"]
        # No WebGPU in this Chromium: no GPU figures, and the report says why.
        assert v["gpu"] is None and "no WebGPU adapter" in v["backend_in_use"], (v["gpu"], v["backend_in_use"])
        rows = driver.find_elements(By.CSS_SELECTOR, '[data-testid="bench-table"] tbody tr')
        assert len(rows) >= 6, len(rows)
        v.pop("prompt_tokens")
        v["wall_s"] = round(time.time() - t0, 1)
        (args.out / "bench.json").write_text(json.dumps(v, indent=2) + "\n")
        print(f"  ?bench: prefill 50 {v['prefill'][0]['tokens_per_s']:.0f} tokens/s, decode "
              f"{v['decode_tokens_per_s']:.1f} tokens/s, {v['molecules_per_s']:.2f} molecules/s, "
              f"wasm memory {v['wasm_memory_mb']:.0f} MB ({v['wall_s']} s)")
    except Exception:
        for entry in driver.get_log("browser")[-30:]:
            print("  console:", entry.get("level"), entry.get("message"), file=sys.stderr)
        raise
    finally:
        driver.quit()
        server.shutdown()
    print("e2e: benchmark view OK")


if __name__ == "__main__":
    main()
