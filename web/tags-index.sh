#!/usr/bin/env bash
# Trunk post_build hook: copies the tag files and their model cards into the staged dist/tags/ and
# writes two JSON lists of file names: dist/tags/index.json (the tag files the worker loads) and
# dist/tags/cards.json (the NAME.md cards the tag inspector shows). The service worker (web/sw.js)
# precaches both lists and everything they name.
# Source folder: $TAGLLM_WEB_TAGS, else tags/ (missing or empty is fine: the page says so).
set -euo pipefail
src="${TAGLLM_WEB_TAGS:-tags}"
out="${TRUNK_STAGING_DIR:?run by trunk}/tags"
mkdir -p "$out"
names=()
cards=()
if [ -d "$src" ]; then
  for f in "$src"/*.safetensors; do
    [ -e "$f" ] || continue
    cp "$f" "$out/"
    names+=("$(basename "$f")")
  done
  for f in "$src"/*.md; do
    [ -e "$f" ] || continue
    cp "$f" "$out/"
    cards+=("$(basename "$f")")
  done
fi
json() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@"; }
json "${names[@]}" > "$out/index.json"
json "${cards[@]}" > "$out/cards.json"
echo "tags-index: ${#names[@]} tag file(s), ${#cards[@]} card(s) from $src"
