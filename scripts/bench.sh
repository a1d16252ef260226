#!/usr/bin/env bash
# Builds the release binaries and runs the benchmarks: scan scale, discovery latency, and memory
# (`hero_router serve` as a child process, RSS from /proc: idle, 10,000 sockets steady/peak/trend
# over a 120 s soak, as 1,000 services of ten sockets and as 10,000 services of one, 100,000
# sockets scanned by router.scan).
# Extra arguments go to hero_bench (see `target/release/hero_bench --help`), e.g.
#   bash scripts/bench.sh --only memory                    # idle, soaks and 100,000 sockets only
#   bash scripts/bench.sh --only flat                      # 10,000 one-socket services only
#   bash scripts/bench.sh --only soak --soak-secs 1800     # the 30-minute soak (RSS slope)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p hero_router -p hero_bench
exec target/release/hero_bench --router-bin target/release/hero_router "$@"
