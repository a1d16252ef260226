#!/usr/bin/env bash
# MCP gateway benchmark: a `tools/call` through the gateway against a routed JSON-RPC call of
# the same method, in the same run, against the same example service.
#
# Run with `make bench` or directly: `bash scripts/bench_mcp.sh`.
#
# Scenarios, all over TCP to one hero_router (release build), each answered by the example
# service's `add` on ROOT/calc/rpc.sock:
#   routed     POST /rpc        {"method": "calc.add", "params": [1, 2]}       (the baseline)
#   mcp        POST /mcp/calc   tools/call add {"a": 1, "b": 2}, 2026-07-28 (stateless: _meta,
#                               Mcp-Method and Mcp-Name headers)
#   mcp_legacy POST /mcp/calc   tools/call add, MCP-Protocol-Version 2025-11-25 (the handshake
#                               revision; stateless, so no initialize is needed per request)
# Before the runs, each scenario's answer is checked once (3, not an isError result).
# Load: h2load --h1 -m 1 (keep-alive, no pipelining), BENCH_CONNS connections, BENCH_N requests
# per run after BENCH_WARMUP; BENCH_ROUNDS rounds, the scenarios interleaved in each round;
# medians over the rounds; the router's CPU per request (utime+stime of all its threads from
# /proc/PID/stat around each run, over the requests). Latency: 1 connection, BENCH_N1 requests, p50 (nearest rank) from
# h2load's per-request log, reported as added p50 over routed.
# The load tool runs on the same machine and competes with the router and the service for CPU.
# Needs root for the apt install of nghttp2-client (h2load) if it is missing. Only 127.0.0.1
# and temporary Unix sockets are used; everything is torn down on exit.
#
# Knobs (environment): BENCH_N (50000), BENCH_N1 (5000), BENCH_WARMUP (2000), BENCH_CONNS (32),
# BENCH_ROUNDS (3).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${BENCH_N:-50000}
N1=${BENCH_N1:-5000}
WARMUP=${BENCH_WARMUP:-2000}
CONNS=${BENCH_CONNS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
SCENARIOS=(routed mcp mcp_legacy)

if ! command -v h2load >/dev/null; then
  echo "== installing nghttp2-client (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null
fi
cargo build --release -q -p hero_router -p hero_example_service
bin=$PWD/${CARGO_TARGET_DIR:-target}/release

tmp=$(mktemp -d)
root=$tmp/sockets
mkdir -p "$root"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for DESC CMD...: poll CMD until it succeeds, at most 10 s
  local desc=$1; shift
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "timed out waiting for $desc" >&2; exit 1
}

"$bin/hero_example_service" --socket-dir "$root" --name calc 2>"$tmp/service.log" & pids+=($!)
wait_for "calc/rpc.sock" test -S "$root/calc/rpc.sock"
PORT=$(free_port)
"$bin/hero_router" serve --socket-dir "$root" --listen "127.0.0.1:$PORT" --no-admin-tcp --log-level warn \
  2>"$tmp/router.log" & pids+=($!)
router_pid=$!
wait_for "hero_router health" "$bin/hero_router" health --socket-dir "$root"
spec_ok() {
  "$bin/hero_router" list --json --socket-dir "$root" \
    | python3 -c 'import json,sys; sys.exit(not any(s["name"] == "calc" and s["spec"]["state"] == "ok" for s in json.load(sys.stdin)))'
}
wait_for "calc's spec in the catalog" spec_ok

meta='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"calc.add","params":[1,2]}' >"$tmp/routed.json"
printf '%s' "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{$meta,\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}}" >"$tmp/mcp.json"
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}' >"$tmp/mcp_legacy.json"
base=http://127.0.0.1:$PORT
common=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
# scenario S: its URL and extra headers (as h2load/curl -H arguments)
url() { case $1 in routed) echo "$base/rpc" ;; *) echo "$base/mcp/calc" ;; esac; }
headers() {
  case $1 in
    routed) ;;
    mcp) printf '%s\n' -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call' -H 'mcp-name: add' ;;
    mcp_legacy) printf '%s\n' -H 'mcp-protocol-version: 2025-11-25' ;;
  esac
}

for s in "${SCENARIOS[@]}"; do
  mapfile -t h < <(headers "$s")
  answer=$(curl -sS "${common[@]}" "${h[@]}" --data-binary @"$tmp/$s.json" "$(url "$s")")
  python3 - "$s" "$answer" <<'PY'
import json, sys
s, a = sys.argv[1], json.loads(sys.argv[2])
r = a.get("result", {})
ok = r == 3 if s == "routed" else (r.get("isError") is False and r.get("structuredContent") == {"result": 3})
if not ok:
    sys.exit(f"FAIL: {s} answered {a}")
print(f"ok   {s}: {json.dumps(a)[:160]}")
PY
done

# run S CONNS N: one h2load run; prints "req/s p50_us"; fails unless all N answers are 2xx
run() {
  local s=$1 c=$2 n=$3 out log=$tmp/h2load.log
  mapfile -t h < <(headers "$s")
  out=$(h2load --h1 -m 1 -c "$c" -n "$n" "${common[@]}" "${h[@]}" --log-file "$log" \
        -d "$tmp/$s.json" "$(url "$s")" 2>&1) || { echo "$out" >&2; echo "FAIL: h2load $s" >&2; exit 1; }
  if ! grep -q "$n succeeded, 0 failed, 0 errored, 0 timeout" <<<"$out" \
     || [[ "$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")" != "$n" ]]; then
    echo "$out" >&2; echo "FAIL: h2load $s: not all $n answers were 2xx" >&2; exit 1
  fi
  local rps
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  [ -s "$log" ] || { echo "FAIL: h2load $s wrote no per-request log" >&2; exit 1; }
  cut -f3 "$log" | sort -n | awk -v rps="$rps" '{ v[NR] = $1 }
    END { printf "%.0f %d\n", rps, v[int(NR*0.50 + 0.999999)] }'
  rm -f "$log"
}

# CPU of the router (all threads): utime+stime in clock ticks (/proc/PID/stat fields 14, 15)
ticks() { awk '{ print $14 + $15 }' "/proc/$router_pid/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
results=$tmp/results
: >"$results"
echo "== warm-up"
for s in "${SCENARIOS[@]}"; do run "$s" "$CONNS" "$WARMUP" >/dev/null; done
echo "== throughput: $CONNS connections, $N requests, $ROUNDS interleaved rounds (req/s p50_us, router CPU per request)"
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    t0=$(ticks)
    read -r rps p50 < <(run "$s" "$CONNS" "$N")
    cpu=$(( ($(ticks) - t0) * TICK_US * 1000 / N ))  # router CPU, ns per request
    echo "round $r $s: $rps $p50 cpu_ns=$cpu"
    echo "tput $s $rps $p50 $cpu" >>"$results"
  done
done
echo "== latency: 1 connection, $N1 requests, $ROUNDS interleaved rounds (req/s p50_us)"
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    read -r rps p50 < <(run "$s" 1 "$N1")
    echo "round $r $s: $rps $p50"
    echo "lat $s $rps $p50" >>"$results"
  done
done

python3 - "$results" "$CONNS" <<'PY'
import statistics, sys
rows, conns = [l.split() for l in open(sys.argv[1])], sys.argv[2]
med = lambda kind, s, i: statistics.median(float(r[i]) for r in rows if r[0] == kind and r[1] == s)
names = {"routed": "routed JSON-RPC `calc.add`", "mcp": "MCP tools/call, 2026-07-28",
         "mcp_legacy": "MCP tools/call, 2025-11-25"}
base_rps, base_p50 = med("tput", "routed", 2), med("lat", "routed", 3)
print()
base_cpu = med("tput", "routed", 4)
print(f"| scenario | req/s ({conns} conn) | ÷ routed | router CPU µs/req | routed CPU ÷ this | 1-conn p50 µs | added p50 over routed µs |")
print("|---|---:|---:|---:|---:|---:|---:|")
worst = worst_cpu = None
for s in names:
    rps, p50, cpu = med("tput", s, 2), med("lat", s, 3), med("tput", s, 4)
    ratio, cpu_ratio = rps / base_rps, base_cpu / cpu
    if s != "routed":
        worst = ratio if worst is None else min(worst, ratio)
        worst_cpu = cpu_ratio if worst_cpu is None else min(worst_cpu, cpu_ratio)
    print(f"| {names[s]} | {rps:,.0f} | {ratio:.2f}× | {cpu / 1000:.1f} | {cpu_ratio:.2f}× | {p50:.0f} | {p50 - base_p50:+.0f} |")
print()
print("(CPU per request is the steadier figure on a shared machine: req/s moves with whatever else runs.)")
print(f"target: MCP req/s ≥ 0.7× the routed call's: {'met' if worst >= 0.7 else 'NOT met'} ({worst:.2f}×); "
      f"by router CPU per request: {'met' if worst_cpu >= 0.7 else 'NOT met'} ({worst_cpu:.2f}×)")
PY
