#!/usr/bin/env python3
"""Trunk post_build hook: puts the sha256 of every inline <script> of the built page into its
Content-Security-Policy.

web/index.html carries the policy as <meta http-equiv="Content-Security-Policy"> with the
placeholder {{INLINE_SCRIPT_HASHES}} in script-src. Trunk writes an inline module script into the
built page (it imports tagllm-web.js and starts the wasm); a script-src without 'unsafe-inline'
blocks it unless the policy names its hash. This hook, run on Trunk's staged index.html after
Trunk has written it, replaces the placeholder with 'sha256-…' of each inline script's exact
text, so scripts stay strict ('self' files, the hashed starter, nothing else) on any static host.

It refuses (and so fails the build) a page without exactly one such policy and placeholder, an
inline <style> (style-src 'self' would block it), or an inline event-handler attribute.
Usage: run by Trunk (Trunk.toml [[hooks]]); or `web/csp-hashes.py PATH/index.html` on a built page.
"""
import base64
import hashlib
import os
import re
import sys
from pathlib import Path

PLACEHOLDER = "{{INLINE_SCRIPT_HASHES}}"
META = re.compile(r'<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"\s*/?>', re.I)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
STYLE = re.compile(r"<style\b", re.I)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def main():
    if len(sys.argv) > 1:
        page = Path(sys.argv[1])
    else:
        staging = os.environ.get("TRUNK_STAGING_DIR")
        if not staging:
            sys.exit("csp-hashes: run by trunk (TRUNK_STAGING_DIR), or pass the built index.html")
        page = Path(staging) / "index.html"
    html = page.read_text(encoding="utf-8")
    # Comments are not elements: leave them out of the checks.
    body = re.sub(r"<!--.*?-->", "", html, flags=re.S)
    metas = META.findall(body)
    if len(metas) != 1 or metas[0].count(PLACEHOLDER) != 1:
        sys.exit(f"csp-hashes: {page} needs exactly one Content-Security-Policy meta with one {PLACEHOLDER}")
    if STYLE.search(body):
        sys.exit(f"csp-hashes: {page} has an inline <style>; style-src 'self' blocks it (use a .css file)")
    if HANDLER.search(body):
        sys.exit(f"csp-hashes: {page} has an inline event-handler attribute; the policy blocks it")
    hashes = []
    for attrs, text in SCRIPT.findall(body):
        if re.search(r"\bsrc\s*=", attrs, re.I):
            continue  # a file: allowed by 'self' when it is ours
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    if not hashes:
        # Nothing inline to allow: drop the placeholder ('self' files only).
        policy = metas[0].replace(" " + PLACEHOLDER, "").replace(PLACEHOLDER, "")
    else:
        policy = metas[0].replace(PLACEHOLDER, " ".join(hashes))
    html = html.replace(f'content="{metas[0]}"', f'content="{policy}"', 1)
    page.write_text(html, encoding="utf-8")
    print(f"csp-hashes: {len(hashes)} inline script(s) hashed into the page's Content-Security-Policy")


if __name__ == "__main__":
    main()
