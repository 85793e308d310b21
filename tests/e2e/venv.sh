#!/usr/bin/env bash
# Makes sure VENV (a Python virtual environment) has selenium (PyPI): the end-to-end tests and
# the browser benchmark drive headless Chromium with it.   tests/e2e/venv.sh VENV
set -euo pipefail
venv=$1
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  echo "== selenium (PyPI) into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==4.*"
fi
