#!/usr/bin/env bash
# The data splits are deterministic: rebuilding them from their sources reproduces the committed
# files byte for byte (QED/LogP with their seeded sampling across MOSES, the 500K set, NCI and
# ChEMBL drugs; the DAVIS split).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/data/setup_venv.sh
.venv/bin/python scripts/data/prepare.py --only molecules --force
.venv/bin/python scripts/data/prepare.py --only BindingAffinity --force
if ! git diff --quiet -- data/tasks; then
  git diff --stat -- data/tasks
  echo "FAILED: rebuilt splits differ from the committed ones" >&2
  exit 1
fi
echo "data splits: rebuilt byte-identical"
