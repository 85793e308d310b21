#!/usr/bin/env bash
# Sets everything up and serves the web app on 127.0.0.1 (default port 8080; PORT=... to change).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --web
export PATH="$PWD/node_modules/.bin:$PATH"
port="${PORT:-8080}"
echo "tagllm: serving on http://127.0.0.1:${port}/"
exec trunk serve --release --address 127.0.0.1 --port "$port"
