#!/usr/bin/env bash
# The MCP gateway with a real third-party client: the Python `mcp` package lists and calls
# tools through the router in both protocol revisions (2025-11-25 handshake, 2026-07-28),
# over TCP, against an example service on a temporary root. `make demo` runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=$(bash scripts/mcp_venv.sh)
cargo build -q -p hero_router -p hero_example_service
bin=${CARGO_TARGET_DIR:-target}/debug
root=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$root" "$root.log"; }
trap cleanup EXIT

wait_for() { # wait_for PATH: poll until a socket exists, at most 10 s
  for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "timed out waiting for $1" >&2; return 1
}

$bin/hero_example_service --socket-dir "$root" --name calc 2>/dev/null & pids+=($!)
wait_for "$root/calc/rpc.sock"
# Port 0: the start-up log line names the address the router got.
$bin/hero_router serve --socket-dir "$root" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-format json 2>"$root.log" & pids+=($!)
wait_for "$root/hero_router/rpc.sock"
addr=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["tcp"].strip("[]").split(",")[0])' "$root.log")
echo "== router at http://$addr, example service calc"
echo "== hero_router mcp-config"
$bin/hero_router mcp-config --socket-dir "$root" --url "http://$addr"
echo "== the Python mcp client, both revisions"
"$py" scripts/mcp_smoke.py "http://$addr" calc
