#!/usr/bin/env bash
# Trunk post_build hook: copies the tag files into the staged dist/tags/ and writes
# dist/tags/index.json (a JSON list of file names), which the page reads to know what to load.
# Source folder: $TAGLLM_WEB_TAGS, else tags/ (missing or empty is fine: the page says so).
set -euo pipefail
src="${TAGLLM_WEB_TAGS:-tags}"
out="${TRUNK_STAGING_DIR:?run by trunk}/tags"
mkdir -p "$out"
names=()
if [ -d "$src" ]; then
  for f in "$src"/*.safetensors; do
    [ -e "$f" ] || continue
    cp "$f" "$out/"
    names+=("$(basename "$f")")
  done
fi
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "${names[@]}" > "$out/index.json"
echo "tags-index: ${#names[@]} tag file(s) from $src"
