"""Faults around the model file, in headless Chromium (issue 7):

(a) the first download breaks off mid-file (the server announces the whole length, sends 8 MB and
    closes the connection): the worker starts the download again and the page loads with f32
    weights (no fallback to the quantised ones, no error left on screen);
(b) a truncated copy in Cache Storage (what a crash during the cache write could leave) is
    caught by the sha256 check, dropped and downloaded again;
(c) a corrupted copy of the right length (one byte flipped in the middle) likewise;
and after each, the copy in Cache Storage is the real file (its sha256, computed in the page).
(The lost WebGPU device is test_webgpu.py's; a reload mid-batch is test_page.py's.)

Usage: test_faults.py --dist DIR --model PATH --out DIR   (see tests/e2e/run.sh)
"""
import argparse
import functools
import hashlib
import http.server
import json
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_page import failure_report, Handler, browser, testid, wait_ready  # noqa: E402

MODEL_CACHE = "tagllm-model-v1"


class FaultyHandler(Handler):
    """Serves the page; counts model downloads and cuts off the first `break_next` of them."""
    gguf_requests = 0
    break_next = 0

    def do_GET(self):
        if self.path.split("?")[0].endswith(".gguf"):
            cls = type(self)
            cls.gguf_requests += 1
            if cls.break_next > 0:
                cls.break_next -= 1
                path = Path(self.translate_path(self.path))
                size = path.stat().st_size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(path, "rb") as f:
                    self.wfile.write(f.read(8 << 20))
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()
                return
        super().do_GET()


def cached_model(driver, action):
    """Runs `action` ('sha256', 'truncate' or 'flip') on the model's Cache Storage entry."""
    return driver.execute_async_script("""
        const [bucket, action, done] = arguments;
        (async () => {
            const cache = await caches.open(bucket);
            const keys = (await cache.keys()).filter(r => r.url.endsWith('.gguf'));
            if (keys.length !== 1) return done({error: `${keys.length} model entries`});
            const buf = await (await cache.match(keys[0])).arrayBuffer();
            if (action === 'sha256') {
                const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
                return done({sha256: [...d].map(b => b.toString(16).padStart(2, '0')).join(''), bytes: buf.byteLength});
            }
            let out = action === 'truncate' ? buf.slice(0, buf.byteLength >> 1) : buf;
            if (action === 'flip') { const v = new Uint8Array(out); v[v.length >> 1] ^= 0x40; }
            await cache.put(keys[0], new Response(out));
            done({bytes: out.byteLength});
        })().catch(e => done({error: String(e)}));""", MODEL_CACHE, action)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model_sha = hashlib.sha256(args.model.read_bytes()).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(FaultyHandler, directory=str(args.dist)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    driver = browser(tempfile.mkdtemp(prefix="tagllm-e2e-faults-"))
    driver.set_script_timeout(120)
    metrics = {}
    try:
        with failure_report(driver, args.out, "failure-faults"):
            # (a) The first download breaks off after 8 MB.
            FaultyHandler.break_next = 1
            driver.get(url)
            wait_ready(driver)
            info = testid(driver, "load-info").text
            assert FaultyHandler.gguf_requests == 2, f"{FaultyHandler.gguf_requests} model requests (want 2)"
            assert "downloaded" in info and "f32 weights" in info and "failed" not in info, info
            got = cached_model(driver, "sha256")
            assert got.get("sha256") == model_sha, got
            metrics["broken_download"] = info

            # (b) and (c): a bad copy in Cache Storage is dropped and the model downloaded again.
            for action in ["truncate", "flip"]:
                before = FaultyHandler.gguf_requests
                done = cached_model(driver, action)
                assert "error" not in done, done
                driver.refresh()
                wait_ready(driver)
                info = testid(driver, "load-info").text
                assert FaultyHandler.gguf_requests == before + 1, (action, FaultyHandler.gguf_requests, before)
                assert "downloaded" in info and "f32 weights" in info, (action, info)
                got = cached_model(driver, "sha256")
                assert got.get("sha256") == model_sha, (action, got)
                metrics[f"cached_{action}"] = info
                what = {"truncate": "truncated", "flip": "corrupted (one byte flipped)"}[action]
                print(f"  a {what} cached model ({done['bytes']} bytes): downloaded again — {info}")
    finally:
        server.shutdown()
    (args.out / "faults.json").write_text(json.dumps(metrics, indent=1))
    print("e2e faults: ok", json.dumps(metrics))


if __name__ == "__main__":
    main()
