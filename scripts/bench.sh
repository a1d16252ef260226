#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks (scan scale, discovery latency).
# Extra arguments go to hero_bench (see `target/release/hero_bench --help`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p hero_router -p hero_bench
exec target/release/hero_bench --router-bin target/release/hero_router "$@"
