#!/usr/bin/env bash
# A live demo on a temporary root: two example services, the router, a service killed with
# SIGKILL (its socket stays behind), and the router reaping that socket once the rules allow.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p hero_router -p hero_example_service
bin=target/release
root=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT

wait_for() { # wait_for PATH: poll until a socket exists, at most 10 s
  for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done
  echo "timed out waiting for $1" >&2; return 1
}

echo "== root: $root"
$bin/hero_example_service --socket-dir "$root" --name calc 2>/dev/null & pids+=($!)
$bin/hero_example_service --socket-dir "$root" --name victim 2>/dev/null & victim=$!
$bin/hero_example_service --socket-dir "$root" --name broken --spec invalid 2>/dev/null & pids+=($!)
$bin/hero_example_service --socket-dir "$root" --name plain --spec none 2>/dev/null & pids+=($!)
wait_for "$root/calc/rpc.sock"; wait_for "$root/victim/rpc.sock"

$bin/hero_router serve --socket-dir "$root" --no-tcp --scan-interval 500ms --stale-after 2 \
  --reap-grace 1s --log-format text 2>"$root.router.log" & pids+=($!)
wait_for "$root/hero_router/rpc.sock"
sleep 1

echo "== hero_router list (title, version, method count and spec state from the catalog)"
$bin/hero_router list --socket-dir "$root"
echo "== why broken's spec is invalid"
$bin/hero_router list --json --socket-dir "$root" \
  | python3 -c 'import json,sys; [print(s["name"]+":", s["spec"]["reason"]) for s in json.load(sys.stdin) if s["spec"]["state"] != "ok"]'
echo "== hero_router markdown calc (first lines)"
$bin/hero_router markdown calc --socket-dir "$root" | head -12
docs=$(mktemp -d)
echo "== hero_router html --out $docs"
$bin/hero_router html --out "$docs" --socket-dir "$root"
echo "== kill -9 victim: its socket file stays behind"
kill -9 "$victim"; wait "$victim" 2>/dev/null || true
$bin/hero_router scan --socket-dir "$root"
echo "== waiting for the router to reap it (2 periodic refusals, grace 1s)"
for _ in $(seq 1 100); do [ -e "$root/victim/rpc.sock" ] || break; sleep 0.1; done
$bin/hero_router list --socket-dir "$root"
echo "== router log (state changes and reaps)"
grep -E "state changed|reap|catalog_changed" "$root.router.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c 28- || true
rm -f "$root.router.log"
