#!/usr/bin/env bash
# Refresh docs/screenshots/: the portal's main pages, shot in headless Chromium by the browser test
# tests/portal/e2e/test_pages.py with demo data (a partner with keys, a team and a week of traffic).
# Needs /usr/bin/chromium (make system-deps) and the dev requirements (make install).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
mkdir -p "$out"
PORTAL_SCREENSHOTS_DIR="$(cd "$out" && pwd)" .venv/bin/python -m pytest tests/portal/e2e/test_pages.py -q -p no:warnings
ls -1 "$out"
