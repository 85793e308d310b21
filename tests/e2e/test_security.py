"""The page's security guarantees, checked in headless Chromium (SECURITY.md):

(a) its Content-Security-Policy is in place and enforced: the built page carries the policy (no
    'unsafe-eval', no 'unsafe-inline' script) before anything it governs, a full run (model load,
    predictions, tags, inspector, reload) reports no violation at all, and what the policy forbids
    is refused in the page: eval, new Function and a string timer in a script of the page's own
    origin, an injected inline <script> or <style>, a fetch, an image and an <object> from
    another origin, a <base> element;
(b) loading the model and predicting makes no request to any origin but the page's own, and
    sends nothing the user typed: every request the page, its inference worker and its service
    worker ask for is watched over the DevTools protocol (Network.requestWillBeSent of every
    target), every request that reaches the page's server is logged there, and a second server
    on another port (another origin) must see no request at all;
(c) once the app is cached, predicting makes no request at all (the periodic connectivity check,
    GET ./?tagllm-ping=<time>, is counted apart and must carry nothing else); what a reload
    fetches is measured and reported;
(d) tag files and model cards are data: a tag whose metadata holds <script> and <img onerror>
    markup, dropped on the page, and a model card holding the same, are shown as text; no element
    is created from them and none of their code runs.

Usage: test_security.py --dist DIR --tags DIR --out DIR   (see tests/e2e/run.sh)
"""
import argparse
import http.server
import itertools
import json
import re
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import websocket  # websocket-client, installed with selenium

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_page import browser as page_browser  # noqa: E402
from test_page import (VALID, INVALID, Handler, custom_tag, drop_files, full_screenshot,  # noqa: E402
                       rows_of, set_inputs, testid, wait_ready, wait_rows)

# What script-src must be: files of the page's origin, wasm compilation, and hashes (Trunk's
# inline module script, hashed at build time by web/csp-hashes.py); nothing else.
SCRIPT_SRC = re.compile(r"^script-src 'self' 'wasm-unsafe-eval'( 'sha256-[A-Za-z0-9+/]{43}=')+$")
REQUIRED = ["default-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
            "worker-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'none'"]
# Inputs no URL may contain (what the user typed must never leave the page).
SECRET_INPUTS = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"]
PING = re.compile(r"^/\?tagllm-ping=\d+$")
CSP_CONSOLE = re.compile(r"Content.Security.Policy|Refused to", re.I)
# Markup that would run code if it were ever parsed as HTML.
XSS_SCRIPT = "<script>window.__xss = 'script'</script>"
XSS_IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
XSS_IFRAME = "<iframe src=\"javascript:window.__xss = 'iframe'\"></iframe>"
XSS_SVG = "<svg onload=\"window.__xss = 'svg'\"></svg>"
EVIL_CARD = f"""# A crafted card {XSS_SCRIPT}

Text with {XSS_IMG} and a [link](javascript:window.__xss='link') and `{XSS_SVG}`.

- a list item {XSS_IFRAME}

| column | {XSS_SCRIPT} |
| --- | --- |
| **{XSS_IMG}** | *{XSS_SVG}* |
"""
# Served as /csp-probe.js (same origin, so script-src lets it run): code of the page itself trying
# to compile strings. eval from DevTools (execute_script) is exempt from the page's policy, so the
# probe must be a script of the page.
EVAL_PROBE = b"""
window.__probe = {};
try { eval('1'); window.__probe.eval = 'ran'; } catch (e) { window.__probe.eval = e.name; }
try { new Function('return 1')(); window.__probe.function = 'ran'; } catch (e) { window.__probe.function = e.name; }
try { setTimeout('window.__timerRan = true', 0); } catch (e) { window.__probe.timer = e.name; }
"""
# Installed in every document before its own scripts (DevTools' injection is not subject to the
# page's policy): records every Content-Security-Policy violation the page reports.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push({
    directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample || ''}));
"""


class Log:
    """Requests seen, in order: (seconds, who, method, URL or path, has a body). `who` is a
    browser context (page, worker, service_worker: what it asked for) or a server ("server", the
    page's; "foreign", the other origin's: what reached them)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = []
        self.t0 = time.time()

    def add(self, who, method, url, body=0):
        with self.lock:
            self.entries.append((round(time.time() - self.t0, 2), who, method, url, body))

    def mark(self):
        with self.lock:
            return len(self.entries)

    def since(self, mark, who):
        with self.lock:
            return [e for e in self.entries[mark:] if e[1] in who]


def counting_server(root, log, who, overrides=None):
    """A static server on 127.0.0.1 that logs every request; `overrides` ({path: bytes}) replaces files."""
    overrides = overrides or {}

    class Counting(Handler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def _log(self):
            length = int(self.headers.get("Content-Length") or 0)
            log.add(who, self.command, self.path, length)

        def do_GET(self):
            self._log()
            path = urllib.parse.urlsplit(self.path).path
            if path in overrides:
                data = overrides[path]
                self.send_response(200)
                kind = {".json": "application/json", ".js": "text/javascript"}.get(Path(path).suffix, "text/markdown")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            super().do_GET()

        def do_HEAD(self):
            self._log()
            super().do_HEAD()

        def do_POST(self):
            self._log()
            self.send_error(405)

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class Watch:
    """Every request the page, its inference worker and its service worker ask for, from the
    browser's DevTools protocol: attached to every target (auto-attach, each new worker held until
    its network log is on), Network.requestWillBeSent of each. ChromeDriver's own performance log
    has only the page's document (measured: not the worker's model and tag downloads, nor the
    service worker's precaching), so this watches them all. Chromium's own background traffic
    (update checks, sign-in) belongs to no page and is not counted."""

    WEB = {"page", "iframe", "worker", "shared_worker", "service_worker"}

    def __init__(self, driver, log):
        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        info = json.load(urllib.request.urlopen(f"http://{address}/json/version", timeout=10))
        self.ws = websocket.create_connection(info["webSocketDebuggerUrl"], suppress_origin=True, timeout=None)
        self.log = log
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.kinds = {}
        self.seen = set()
        self.page_enable = set()
        self.page_watched = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()
        self._send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True})
        # The page's network log must be on before the test navigates.
        assert self.page_watched.wait(20), "the DevTools watcher did not attach to the page"

    def _send(self, method, params=None, session=None):
        msg = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        with self.lock:
            self.ws.send(json.dumps(msg))
        return msg["id"]

    def _loop(self):
        while True:
            try:
                msg = json.loads(self.ws.recv())
            except Exception:
                return
            method = msg.get("method")
            if msg.get("id") in self.page_enable:
                self.page_watched.set()
            elif method == "Target.attachedToTarget":
                session, kind = msg["params"]["sessionId"], msg["params"]["targetInfo"]["type"]
                self.kinds[session] = kind
                if kind in self.WEB:
                    enable = self._send("Network.enable", {}, session)
                    if kind == "page":
                        self.page_enable.add(enable)
                    self._send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}, session)
                self._send("Runtime.runIfWaitingForDebugger", {}, session)
            elif method == "Network.requestWillBeSent":
                kind = self.kinds.get(msg.get("sessionId"), "?")
                req = msg["params"]["request"]
                key = (msg.get("sessionId"), msg["params"]["requestId"], req["url"])
                if key in self.seen:
                    continue  # the same request reported again (a service worker's fetch is, twice)
                self.seen.add(key)
                if kind in self.WEB and not req["url"].startswith(("data:", "blob:")):
                    self.log.add(kind, req["method"], req["url"], 1 if req.get("hasPostData") else 0)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def browser(profile):
    """test_page.py's headless Chromium, recording CSP violations from the first script on."""
    driver = page_browser(profile)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    return driver


def csp_console(driver):
    """Console messages about the Content-Security-Policy since the last call."""
    return [e["message"] for e in driver.get_log("browser") if CSP_CONSOLE.search(e["message"])]


def violations(driver, clear=True):
    got = driver.execute_script("const v = window.__cspViolations || []; return v.slice();")
    if clear:
        driver.execute_script("if (window.__cspViolations) window.__cspViolations.length = 0;")
    return got


ASKED = Watch.WEB  # what the browser's contexts asked for (the watcher)
SERVED = {"server"}  # what reached the page's server over the network


def settle(log, who, quiet_s=2.0, limit_s=60):
    """Waits until no request of kinds `who` has been seen for quiet_s (background fetches)."""
    t_end = time.time() + limit_s
    while time.time() < t_end:
        n = log.mark()
        time.sleep(quiet_s)
        if not log.since(n, who):
            return
    raise AssertionError(f"requests did not stop within {limit_s} s")


def check_same_origin(entries, origin, what):
    """Every request is for `origin`, a GET without a body, and no URL holds an input."""
    for _, kind, method, url, body in entries:
        assert url.startswith(origin + "/"), f"{what}: the {kind} asked for another origin: {method} {url}"
        assert method in ("GET", "HEAD") and not body, f"{what}: the {kind} sent data: {method} {url}"
        plain = urllib.parse.unquote(url)
        assert not any(x in plain for x in SECRET_INPUTS), f"{what}: an input in a URL: {url}"


def summary(entries, origin):
    """'[kind] path ×n' per distinct request, pings counted on one line."""
    counts = {}
    for _, kind, _, url, _ in entries:
        path = url[len(origin):] if url.startswith(origin) else url
        key = (kind, "/?tagllm-ping=…" if PING.match(path) else path)
        counts[key] = counts.get(key, 0) + 1
    return [f"[{k}] {p}" + (f" ×{n}" if n > 1 else "") for (k, p), n in counts.items()]


def pings_only(entries, origin):
    return [e for e in entries if not PING.match(e[3][len(origin):] if e[3].startswith(origin) else e[3])]


def predict(driver, lines, expect, tag="QED"):
    Select(testid(driver, "function-tag")).select_by_value(tag)
    set_inputs(driver, lines, expect)
    t0 = time.time()
    testid(driver, "run").click()
    wait_rows(driver, len(lines), done=True)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dist", type=Path, required=True)
    ap.add_argument("--tags", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    log = Log()
    # The site's own model card for a user's tag named EvilCard: cards are data too.
    cards = json.loads((args.dist / "tags" / "cards.json").read_text())
    overrides = {"/tags/cards.json": json.dumps(cards + ["EvilCard.md"]).encode(),
                 "/tags/EvilCard.md": EVIL_CARD.encode(), "/csp-probe.js": EVAL_PROBE}
    server, url = counting_server(args.dist, log, "server", overrides)
    foreign_dir = tempfile.mkdtemp(prefix="tagllm-e2e-foreign-")
    (Path(foreign_dir) / "index.html").write_text("foreign")
    foreign, foreign_url = counting_server(foreign_dir, log, "foreign")
    origin = url.rstrip("/")
    profile = tempfile.mkdtemp(prefix="tagllm-e2e-security-")
    driver = browser(profile)
    watch = Watch(driver, log)
    report = {"page_origin": origin, "foreign_origin": foreign_url.rstrip("/")}
    try:
        print(f"  page {url}  another origin {foreign_url}", flush=True)

        # (a) The policy the built page carries, first in <head>.
        mark = log.mark()
        driver.get(url)
        policy = driver.execute_script(
            "const m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]'); return m && m.content;")
        assert policy, "no Content-Security-Policy meta in the page"
        directives = [d.strip() for d in policy.split(";")]
        script_src = [d for d in directives if d.startswith("script-src")]
        assert len(script_src) == 1 and SCRIPT_SRC.match(script_src[0]), script_src
        assert "unsafe-eval'" not in policy.replace("wasm-unsafe-eval", "") and "unsafe-inline" not in script_src[0], policy
        for d in REQUIRED:
            assert d in directives, f"{d!r} missing from {policy!r}"
        before = driver.execute_script("""
            const m = document.querySelector('meta[http-equiv="Content-Security-Policy"]');
            const first = document.querySelector('script, link[rel~="stylesheet"], link[rel="modulepreload"], style');
            return !!(m.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING);""")
        assert before, "the policy must come before the scripts and styles it governs"
        report["csp"] = policy

        # (b) Cold start: load the model, predict. Everything the page, the worker and the service
        # worker ask for is of the page's origin; nothing typed leaves the page.
        report["first_load_s"] = round(wait_ready(driver), 1)
        predict(driver, VALID + [INVALID], "3 valid, 1 invalid")
        got = rows_of(driver)
        assert sum(r[1] is not None for r in got) == 3, got
        settle(log, ASKED)
        asked = log.since(mark, ASKED)
        check_same_origin(asked, origin, "first visit")
        kinds = {e[1] for e in asked}
        assert {"page", "worker", "service_worker"} <= kinds, f"the watcher missed a context: saw {kinds}"
        assert any(e[1] == "page" and e[3] == url for e in asked), "the page's own navigation was not seen"
        assert any(e[1] == "worker" and e[3].endswith(".gguf") for e in asked), "the worker's model download was not seen"
        report["first_visit_asked"] = summary(asked, origin)
        report["first_visit_served"] = summary(log.since(mark, SERVED), origin)
        print(f"  first visit: {len(asked)} requests asked for, all of {origin}; "
              f"{len(log.since(mark, SERVED))} reached the server", flush=True)

        # (a) A full run reported no violation (console and the page's own events)...
        console = csp_console(driver)
        assert not console, f"CSP messages during a normal run: {console}"
        assert not violations(driver), "securitypolicyviolation events during a normal run"
        # ... and what the policy forbids is refused, in the page (a violation event each; the
        # console reports them, so the check above would have seen one).
        probes_from = log.mark()
        probes = driver.execute_async_script("""
            const [foreign, done] = arguments;
            const out = {};
            const probe = document.createElement('script');
            const probed = new Promise(r => { probe.onload = () => r('loaded'); probe.onerror = () => r('refused'); });
            probe.src = '/csp-probe.js';
            document.head.appendChild(probe);
            const s = document.createElement('script');
            s.textContent = 'window.__inlineRan = true';
            document.head.appendChild(s);
            out.inline = window.__inlineRan === true ? 'ran' : 'blocked';
            s.remove();
            const st = document.createElement('style');
            st.textContent = 'body { outline: 7px solid red }';
            document.head.appendChild(st);
            out.style = getComputedStyle(document.body).outlineWidth === '7px' ? 'applied' : 'blocked';
            st.remove();
            const b = document.createElement('base');
            b.href = foreign;
            document.head.appendChild(b);
            out.base = document.baseURI.startsWith(foreign) ? 'used' : 'ignored';
            b.remove();
            const o = document.createElement('object');
            o.data = foreign + 'object';
            document.body.appendChild(o);
            const img = new Image();
            const imgDone = new Promise(r => { img.onload = () => r('loaded'); img.onerror = () => r('blocked'); });
            img.src = foreign + 'image.png';
            Promise.all([
                fetch(foreign + 'fetch').then(() => 'fetched', e => 'blocked: ' + e.name),
                imgDone,
                probed,
            ]).then(([f, i, p]) => {
                out.fetch = f; out.image = i; out.probe = p;
                setTimeout(() => {
                    Object.assign(out, window.__probe || {});
                    out.timer = window.__timerRan === true ? 'ran' : 'blocked';
                    o.remove(); probe.remove();
                    done(out);
                }, 500);
            });""", foreign_url)
        want = {"probe": "loaded", "eval": "EvalError", "function": "EvalError", "timer": "blocked", "inline": "blocked",
                "style": "blocked", "base": "ignored", "fetch": "blocked: TypeError", "image": "blocked"}
        assert {k: probes.get(k) for k in want} == want, probes
        seen = {v["directive"] for v in violations(driver)}
        for d in ["script-src", "script-src-elem", "style-src-elem", "base-uri", "connect-src", "img-src", "object-src"]:
            assert d in seen, f"no violation reported for {d} (saw {sorted(seen)})"
        console = csp_console(driver)
        assert len(console) >= 5, f"the console did not report the refused probes: {console}"
        assert not log.since(0, {"foreign"}), f"the other origin was contacted: {log.since(0, {'foreign'})}"
        probes_to = log.mark()
        # The probes' own requests were asked for (an image is requested, then refused) and
        # refused: none reached the other origin.
        report["refused"] = probes
        report["violations_reported"] = sorted(seen)

        # (d) A user's tag file whose metadata holds markup, and the site's model card holding the
        # same: text, never elements, never code.
        def crafted(name):
            raw = custom_tag(args.tags / "QED.safetensors", name)
            n = int.from_bytes(raw[:8], "little")
            header = json.loads(raw[8:8 + n])
            meta = json.loads(header["__metadata__"]["tagllm"])
            meta["description"] = f"Crafted {XSS_SCRIPT} {XSS_IMG} {XSS_IFRAME} {XSS_SVG}"
            if meta.get("target"):
                meta["target"]["units"] = XSS_IMG
            meta["provenance"] = {"note": XSS_SCRIPT, XSS_IMG: "key"}
            meta["metrics"] = {"r2": XSS_SVG}
            header["__metadata__"]["tagllm"] = json.dumps(meta)
            blob = json.dumps(header).encode()
            blob += b" " * (-len(blob) % 8)
            return len(blob).to_bytes(8, "little") + blob + raw[8 + n:]

        mark = log.mark()
        drop_files(driver, "tag-drop", {"Evil.safetensors": crafted("Evil"), "EvilCard.safetensors": crafted("EvilCard")})
        WebDriverWait(driver, 30).until(lambda d: {"Evil", "EvilCard"} <= {
            o.get_attribute("value") for o in Select(testid(d, "function-tag")).options})
        assert not testid(driver, "tag-errors").text.strip(), testid(driver, "tag-errors").text
        predict(driver, ["CCO"], "1 valid, 0 invalid", tag="Evil")  # a value with the crafted units
        driver.find_element(By.CSS_SELECTOR, '[data-testid="inspector"] summary').click()
        Select(testid(driver, "inspect-tag")).select_by_value("Evil")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="tag-card"][data-source="metadata"]')
                                        and d.find_elements(By.CSS_SELECTOR, '[data-testid="nearest"][data-tag="Evil"]'))
        meta_text = testid(driver, "tag-card").get_attribute("textContent")
        for x in [XSS_SCRIPT, XSS_IMG, XSS_IFRAME, XSS_SVG]:
            assert x in meta_text, f"the metadata view does not show {x!r} as text: {meta_text!r}"
        full_screenshot(driver, args.out / "screenshot-security-metadata.png")
        Select(testid(driver, "inspect-tag")).select_by_value("EvilCard")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="tag-card"][data-source="card"]'))
        card = testid(driver, "tag-card")
        card_text = card.get_attribute("textContent")
        assert card.find_elements(By.CSS_SELECTOR, "h3") and card.find_elements(By.CSS_SELECTOR, "table td"), card.get_attribute("innerHTML")
        for x in [XSS_SCRIPT, XSS_IMG, XSS_IFRAME, XSS_SVG]:
            assert x in card_text, f"the card does not show {x!r} as text: {card_text!r}"
        assert not card.find_elements(By.CSS_SELECTOR, "a"), "a link was made from the card"
        full_screenshot(driver, args.out / "screenshot-security.png")
        time.sleep(1)  # an onerror / onload would have fired by now
        leaked = driver.execute_script("""return {
            xss: window.__xss === undefined ? null : String(window.__xss),
            elements: [...document.querySelectorAll('img, iframe, svg, object, embed, a[href^="javascript"]')]
                .filter(e => !e.closest('[data-testid="chart"]')).map(e => e.outerHTML.slice(0, 120)),
            scripts: [...document.scripts].map(s => s.src || s.textContent.slice(0, 60))}""")
        assert leaked["xss"] is None, f"crafted markup ran: {leaked['xss']}"
        assert not leaked["elements"], f"elements made from crafted markup: {leaked['elements']}"
        assert [x for x in leaked["scripts"] if "import init" not in x] == [], leaked["scripts"]
        assert not violations(driver), "crafted markup reached the policy (it should never become markup)"
        assert not csp_console(driver), "CSP messages while showing crafted tags"
        check_same_origin(log.since(mark, ASKED), origin, "crafted tags")
        assert not [e for e in log.since(mark, ASKED) if e[3] == origin + "/x"], "an <img src=x> from crafted markup was requested"
        report["crafted"] = "metadata and card shown as text; no element, no script, no request, no violation"

        # (c) Once cached: a reload (what does it fetch?), then predictions (nothing but pings).
        WebDriverWait(driver, 120).until(lambda d: testid(d, "network-status").get_attribute("data-offline-ready") == "true")
        settle(log, ASKED)
        mark = log.mark()
        driver.refresh()
        report["cached_load_s"] = round(wait_ready(driver), 1)
        assert "from the browser cache" in testid(driver, "load-info").text, testid(driver, "load-info").text
        settle(log, ASKED)
        asked, served = log.since(mark, ASKED), log.since(mark, SERVED)
        check_same_origin(asked, origin, "cached reload")
        assert not [e for e in served if e[3].endswith(".gguf")], "the model was downloaded again"
        report["cached_reload_asked"] = summary(asked, origin)
        report["cached_reload_served"] = summary(served, origin)
        print(f"  cached reload: {len(served)} requests reached the server: {report['cached_reload_served']}", flush=True)

        mark = log.mark()
        t0 = time.time()
        report["cached_predict_s"] = round(predict(driver, SECRET_INPUTS, f"{len(SECRET_INPUTS)} valid, 0 invalid"), 2)
        time.sleep(1)
        report["cached_predict_window_s"] = round(time.time() - t0, 1)
        asked, served = log.since(mark, ASKED), log.since(mark, SERVED)
        check_same_origin(asked, origin, "predicting once cached")
        assert not pings_only(asked, origin), f"predicting once cached asked for: {summary(pings_only(asked, origin), origin)}"
        assert not pings_only(served, origin), f"predicting once cached reached the server: {summary(pings_only(served, origin), origin)}"
        report["cached_predict_asked"] = summary(asked, origin)
        report["cached_predict_served"] = summary(served, origin)
        print(f"  cached predict ({len(SECRET_INPUTS)} molecules, {report['cached_predict_window_s']} s): "
              f"no request but {len(served)} connectivity ping(s)", flush=True)

        # Over the whole session: the other origin saw nothing, no context asked for another origin.
        assert not log.since(0, {"foreign"}), log.since(0, {"foreign"})
        check_same_origin([e for i, e in enumerate(log.entries) if e[1] in ASKED and not probes_from <= i < probes_to],
                          origin, "the whole session (but the probes)")
        report["foreign_origin_requests"] = 0
        report["asked_total"] = len(log.since(0, ASKED))
        report["served_total"] = len(log.since(0, SERVED))
        assert not csp_console(driver), "CSP messages after the probes"
        assert not violations(driver), "violations after the probes"
    except Exception:
        try:
            driver.save_screenshot(str(args.out / "failure-security.png"))
            for entry in driver.get_log("browser")[-40:]:
                print("  console:", entry.get("level"), entry.get("message")[:300], file=sys.stderr)
            print("  requests:", json.dumps(log.entries[-80:]), file=sys.stderr)
        except Exception:
            pass
        raise
    finally:
        watch.close()
        driver.quit()
        for srv in (server, foreign):
            srv.shutdown()
    (args.out / "security.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    print("e2e: security OK")


if __name__ == "__main__":
    main()
