#!/usr/bin/env bash
# Proxy benchmark: hero_router against nginx, both in front of the same Unix-socket service.
#
# Run with `make bench` (after scripts/bench.sh) or directly: `bash scripts/bench_proxy.sh`.
#
# One example service `bench` runs in a temporary socket root. Four scenarios are measured with
# the same load tool (h2load --h1, keep-alive, no pipelining) and the same JSON-RPC echo body:
#   direct   h2load straight onto ROOT/bench/rpc.sock               (the floor)
#   path     hero_router  POST /bench/rpc/rpc  -> bench/rpc.sock /rpc
#   method   hero_router  POST /rpc, method "bench.echo" -> bench "echo"
#   nginx    nginx        POST /bench/rpc/rpc  -> bench/rpc.sock /rpc (upstream keepalive 64)
# Throughput: 64 connections, warm-up then BENCH_N requests, 3 rounds interleaved (d,p,m,n,d,...),
# median req/s and median p50/p99 (from h2load's per-request log). Latency: 1 connection,
# BENCH_N1 requests, 3 interleaved rounds, median p50; reported as "added p50 over direct".
# Fairness: hero_router runs one connection shard (a single-threaded runtime) per core, nginx gets
# `worker_processes auto`, one worker process per core.
# The load tool runs on the same machine and competes with the proxy for CPU.
# Needs root for the apt install of nghttp2-client (h2load) and nginx if they are missing.
# Only 127.0.0.1 and temporary Unix sockets are used; everything is torn down on exit.
#
# Knobs (environment): BENCH_N (default 150000), BENCH_N1 (20000), BENCH_WARMUP (5000),
# BENCH_CONNS (64), BENCH_ROUNDS (3), BENCH_THREADS (h2load -t, default 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${BENCH_N:-150000}
N1=${BENCH_N1:-20000}
WARMUP=${BENCH_WARMUP:-5000}
CONNS=${BENCH_CONNS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-1}
SCENARIOS=(direct path method nginx)

# --- tools --------------------------------------------------------------------------------------
if ! command -v h2load >/dev/null || ! command -v nginx >/dev/null; then
  echo "== installing nghttp2-client and nginx (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nghttp2-client nginx >/dev/null
fi
NGINX=$(command -v nginx)
cargo build --release -q -p hero_router -p hero_example_service
bin=$PWD/target/release

# --- temp dirs, processes, cleanup -------------------------------------------------------------
tmp=$(mktemp -d)
root=$tmp/sockets
mkdir -p "$root" "$tmp/nginx/logs" "$tmp/runs"
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

body=$tmp/echo.json         # the exact bytes POSTed (no trailing newline)
body_m=$tmp/echo_method.json
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"echo","params":["hello"]}' >"$body"
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"bench.echo","params":["hello"]}' >"$body_m"

"$bin/hero_example_service" --socket-dir "$root" --name bench 2>"$tmp/service.log" & pids+=($!)
service_pid=$!
wait_for "bench/rpc.sock" test -S "$root/bench/rpc.sock"

RPORT=$(free_port)
"$bin/hero_router" serve --socket-dir "$root" --listen "127.0.0.1:$RPORT" --log-level warn \
  2>"$tmp/router.log" & pids+=($!)
router_pid=$!
wait_for "hero_router health" "$bin/hero_router" health --socket-dir "$root"

NPORT=$(free_port)
cat >"$tmp/nginx/nginx.conf" <<EOF
user root;
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  upstream hero { server unix:$root/bench/rpc.sock; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NPORT;
    location /bench/rpc/ {
      proxy_pass http://hero/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
"$NGINX" -e "$tmp/nginx/logs/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
  -g 'daemon off;' & pids+=($!)
nginx_pid=$!

# --- scenarios ----------------------------------------------------------------------------------
# args_for SCENARIO -> h2load target arguments (URL, body file, optional -B unix:...)
args_for() {
  case $1 in
    direct) echo "-B unix:$root/bench/rpc.sock -d $body http://localhost/rpc" ;;
    path)   echo "-d $body http://127.0.0.1:$RPORT/bench/rpc/rpc" ;;
    method) echo "-d $body_m http://127.0.0.1:$RPORT/rpc" ;;
    nginx)  echo "-d $body http://127.0.0.1:$NPORT/bench/rpc/rpc" ;;
  esac
}
curl_for() { # a single request through curl, to check the answer body
  case $1 in
    direct) curl -sf --unix-socket "$root/bench/rpc.sock" -H 'content-type: application/json' --data-binary @"$body" http://localhost/rpc ;;
    path)   curl -sf -H 'content-type: application/json' --data-binary @"$body" "http://127.0.0.1:$RPORT/bench/rpc/rpc" ;;
    method) curl -sf -H 'content-type: application/json' --data-binary @"$body_m" "http://127.0.0.1:$RPORT/rpc" ;;
    nginx)  curl -sf -H 'content-type: application/json' --data-binary @"$body" "http://127.0.0.1:$NPORT/bench/rpc/rpc" ;;
  esac
}
for s in "${SCENARIOS[@]}"; do
  wait_for "$s to answer" curl_for "$s"
  out=$(curl_for "$s")
  [[ $out == *'"result":["hello"]'* ]] || { echo "FAIL: $s answered: $out" >&2; exit 1; }
done

# run_h2load SCENARIO CONNS N LOG: one h2load run; prints "req/s p50_us p99_us"; fails unless all 2xx
run_h2load() {
  local s=$1 c=$2 n=$3 log=$4 out
  # shellcheck disable=SC2046  # args_for output is meant to be word-split
  out=$(h2load --h1 -m 1 -t "$THREADS" -c "$c" -n "$n" -H 'content-type: application/json' \
        --log-file "$log" $(args_for "$s") 2>&1) || { echo "$out" >&2; echo "FAIL: h2load $s" >&2; exit 1; }
  local ok2xx rps
  ok2xx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  if [[ "$ok2xx" != "$n" ]] || ! grep -q "$n succeeded, 0 failed, 0 errored, 0 timeout" <<<"$out"; then
    echo "$out" >&2; echo "FAIL: $s: not all $n responses were 2xx" >&2; exit 1
  fi
  # per-request log: start_us <TAB> status <TAB> latency_us; nearest-rank percentiles
  cut -f3 "$log" | sort -n | awk -v rps="$rps" '{ v[NR] = $1 }
    END { p50 = v[int(NR*0.50 + 0.999999)]; p99 = v[int(NR*0.99 + 0.999999)]
          printf "%.0f %d %d\n", rps, p50, p99 }'
  rm -f "$log"
}

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; } # utime+stime of a pid
idle_sample() { # one second before any load: machine idle %, router and service CPU (% of one core)
  local a b r0 s0 tot=0 i hz; hz=$(getconf CLK_TCK)
  read -ra a </proc/stat; r0=$(ticks "$router_pid"); s0=$(ticks "$service_pid"); sleep 1
  read -ra b </proc/stat
  for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
  echo "$((100 * (b[4] - a[4]) / (tot > 0 ? tot : 1))) $(( ($(ticks "$router_pid") - r0) * 100 / hz ))" \
       "$(( ($(ticks "$service_pid") - s0) * 100 / hz ))"
}
nginx_workers=$(pgrep -c -P "$nginx_pid" || true)
read -r idle router_cpu service_cpu < <(idle_sample)
echo "== machine: $(nproc) cores, Linux $(uname -r); $(h2load --version | head -1); $("$NGINX" -v 2>&1)"
echo "== command: make bench (or: bash scripts/bench_proxy.sh)"
echo "== nginx worker_processes auto ($nginx_workers workers); hero_router: one connection shard per core"
echo "== idle check (1 s, no load): machine ${idle}% idle, hero_router ${router_cpu}% of a core," \
  "bench service ${service_cpu}%; load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$router_cpu" -le 5 ] || echo "   WARNING: hero_router burns CPU while idle; it competes with the proxying below"
[ "$idle" -ge 90 ] || echo "   WARNING: the machine is not idle before the run; numbers will be noisy and low"
echo "== h2load --h1 -m 1 -t $THREADS (the load tool shares the $(nproc) cores with the proxy)"

echo "== warm-up: $WARMUP requests per scenario at $CONNS connections"
for s in "${SCENARIOS[@]}"; do run_h2load "$s" "$CONNS" "$WARMUP" "$tmp/warm.log" >/dev/null; done

echo "== throughput: $CONNS connections, $N requests, $ROUNDS interleaved rounds (req/s p50_us p99_us)"
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    res=$(run_h2load "$s" "$CONNS" "$N" "$tmp/run.log")
    echo "$res" >>"$tmp/runs/$s.c$CONNS"
    printf '   round %d  %-7s %s\n' "$r" "$s" "$res"
  done
done

echo "== latency: 1 connection, $N1 requests, $ROUNDS interleaved rounds (req/s p50_us p99_us)"
for s in "${SCENARIOS[@]}"; do run_h2load "$s" 1 2000 "$tmp/warm.log" >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    res=$(run_h2load "$s" 1 "$N1" "$tmp/run.log")
    echo "$res" >>"$tmp/runs/$s.c1"
    printf '   round %d  %-7s %s\n' "$r" "$s" "$res"
  done
done

# --- report -------------------------------------------------------------------------------------
python3 - "$tmp/runs" "$CONNS" "$nginx_workers" <<'PY'
import statistics as st, sys
runs, conns, workers = sys.argv[1], sys.argv[2], sys.argv[3]
def med(s, c):  # median of each column over the rounds: (req/s, p50 us, p99 us)
    rows = [list(map(float, l.split())) for l in open(f"{runs}/{s}.c{c}") if l.strip()]
    return [st.median(col) for col in zip(*rows)]
m = {s: med(s, conns) for s in ("direct", "path", "method", "nginx")}
one = {s: med(s, 1) for s in m}
ng = m["nginx"]
label = {"direct": "direct (Unix socket)", "path": "hero_router path route",
         "method": "hero_router method routing", "nginx": f"nginx ({workers} workers)"}
print(f"\n| scenario | req/s ({conns} conn) | p50 ms | p99 ms | req/s ÷ nginx | p99 ÷ nginx "
      "| ÷ path route req/s | 1-conn p50 µs | added p50 over direct µs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s, (rps, p50, p99) in m.items():
    vs = f"{rps/ng[0]:.2f}×" if s != "nginx" else "1.00×"
    pv = f"{p99/ng[2]:.2f}×" if s != "nginx" else "1.00×"
    vp = f"{rps/m['path'][0]:.2f}×" if s == "method" else ""
    add = "—" if s == "direct" else f"{one[s][1]-one['direct'][1]:+.0f}"
    print(f"| {label[s]} | {rps:,.0f} | {p50/1000:.3f} | {p99/1000:.3f} | {vs} | {pv} | {vp} "
          f"| {one[s][1]:.0f} | {add} |")
def check(name, ok, got, want):
    print(f"- {'PASS' if ok else 'MISS'}: {name}: {got} (target {want})")
print("\nTargets:")
r = m["path"][0] / ng[0]; check("path route req/s ÷ nginx", r >= 1.15, f"{r:.2f}×", "≥ 1.15×")
r = m["path"][2] / ng[2]; check("path route p99 ÷ nginx", r <= 0.9, f"{r:.2f}×", "≤ 0.90×")
r = m["method"][0] / m["path"][0]; check("method routing ÷ path route req/s", r >= 0.8, f"{r:.2f}×", "≥ 0.80×")
for s in ("path", "method"):
    a = one[s][1] - one["direct"][1]
    check(f"added p50 over direct, 1 conn, {s}", a <= 60, f"{a:.0f} µs", "≤ 60 µs")
a = one["nginx"][1] - one["direct"][1]; print(f"- (reference) nginx added p50 over direct, 1 conn: {a:.0f} µs")
PY
