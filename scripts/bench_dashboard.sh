#!/usr/bin/env bash
# Dashboard benchmark: page load with 1,000 services in headless Chromium, and the router's CPU
# with 100 dashboards open during 100 socket changes per second. See bench_dashboard.py.
#
# Run with `make bench` or directly: `bash scripts/bench_dashboard.sh`. Needs Debian's chromium
# and a Python with pip playwright: HERO_BROWSER_PYTHON (default: target/browser-venv/bin/python,
# which `.ci/run` creates), HERO_CHROMIUM (default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${HERO_BROWSER_PYTHON:-$PWD/target/browser-venv/bin/python}"
if ! "$python" -c "import playwright.sync_api" >/dev/null 2>&1; then
  echo "bench_dashboard: $python cannot import playwright; run .ci/run once, or set HERO_BROWSER_PYTHON" >&2
  exit 1
fi
cargo build --release -p hero_router
exec "$python" scripts/bench_dashboard.py target/release/hero_router
