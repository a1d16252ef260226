#!/usr/bin/env bash
# Proxy benchmark: hero_router against nginx, both in front of the same Unix-socket services.
#
# Run with `make bench` (after scripts/bench.sh) or directly: `bash scripts/bench_proxy.sh`.
#
# Two backends run in a temporary socket root, each as ROOT/<service>/rpc.sock, which the router
# finds by scanning the root:
#   bench      hero_example_service (JSON-RPC echo, written here)
#   nginxsvc   a separate nginx process answering every request with the fixed reply
#              {"jsonrpc":"2.0","id":1,"result":["hello"]} (application/json): a backend nobody
#              here wrote, cheaper than ours, so more of the machine is left to the proxy
# Five scenarios per backend SVC, all POSTing a JSON-RPC `echo` body:
#   direct   the load tool straight onto ROOT/SVC/rpc.sock              (no proxy at all)
#   path     hero_router  POST /SVC/rpc/rpc  -> SVC/rpc.sock /rpc
#   method   hero_router  POST /rpc, method "SVC.echo" -> SVC/rpc.sock POST /rpc, method "echo"
#   nginx    proxy nginx  POST /SVC/rpc/rpc  -> SVC/rpc.sock /rpc (one upstream per backend,
#            keepalive BENCH_NGINX_KEEPALIVE idle connections per worker, 128 by default);
#            a process of its own, apart from the backend nginx
#   floor    hero_floor_proxy POST /rpc -> SVC/rpc.sock, as read: the router's threads (one
#            single-threaded runtime per core) and its four system calls per request, and none
#            of its work (no parsing, no routing); its CPU per request is the least a proxy of
#            the router's shape can cost here, so router ÷ floor is what the router's own code adds
# Two load tools (BENCH_TOOLS, both by default), each HTTP/1.1, keep-alive, no pipelining:
#   h2load   h2load --h1 -m 1 -t BENCH_THREADS; p50/p99 from its per-request log
#   oha      oha --no-tui --http-version 1.1, JSON output; p50/p99 from oha's own percentiles
#            (not in Debian: `cargo install oha --version $OHA_VERSION --locked` if missing)
# Throughput: BENCH_CONNS connections, a warm-up, then BENCH_N requests per run; BENCH_ROUNDS
# rounds, every tool x backend x scenario once per round, interleaved (h2load bench direct, path,
# method, nginx, h2load nginxsvc direct, ..., oha ..., next round); medians over the rounds.
# CPU per request: utime+stime (/proc/PID/stat fields 14+15, in clock ticks) read right before and
# after each throughput run, of the hero_router process (all its threads) and of the proxy nginx
# (master plus all its workers); the delta over the requests completed, in µs; medians over rounds.
# One tick is 10 ms at CLK_TCK 100, so a run must last seconds for the figure to mean something:
# the report states the resolution.
# Latency: 1 connection, BENCH_N1 requests per run, same interleaving, median p50, reported as
# "added p50 over direct".
# Fairness: hero_router runs one connection shard (a single-threaded runtime) per core, both nginx
# get one worker process per core (`worker_processes $(nproc)`, what `auto` picks here).
# The load tool runs on the same machine and competes with the proxy and the backend for CPU.
# Needs root for the apt install of nghttp2-client (h2load) and nginx if they are missing.
# Only 127.0.0.1 and temporary Unix sockets are used; everything is torn down on exit.
#
# Knobs (environment): BENCH_N (default 150000), BENCH_N1 (20000), BENCH_WARMUP (5000),
# BENCH_CONNS (64), BENCH_ROUNDS (3), BENCH_THREADS (h2load -t, default 1),
# BENCH_TOOLS ("h2load oha"), BENCH_BACKENDS ("bench nginxsvc"), OHA_VERSION (1.16.0),
# BENCH_NGINX_KEEPALIVE (128: the proxy nginx's idle upstream connections per worker).
# BENCH_ACCESS_LOG (off): hero_router's --access-log (off, text or json); when not off, its
# access lines are written to a file in the run's temporary directory, as a supervisor would
# take them, and the proxy nginx writes its own access log (combined format) to a file too (the
# BENCH_BASE_BIN router keeps its own default).
# BENCH_BASE_BIN: another hero_router binary (say, a build of an earlier commit) to compare with in
# the same run: it serves a second root with the same backends (a second example service, a second
# listen socket of the nginx backend), and its scenarios path_base and method_base are interleaved
# with the others; the report gives path ÷ path_base and method ÷ method_base.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${BENCH_N:-150000}
N1=${BENCH_N1:-20000}
WARMUP=${BENCH_WARMUP:-5000}
CONNS=${BENCH_CONNS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-1}
NGINX_KEEPALIVE=${BENCH_NGINX_KEEPALIVE:-128}
OHA_VERSION=${OHA_VERSION:-1.16.0}
read -ra TOOLS <<<"${BENCH_TOOLS:-h2load oha}"
read -ra BACKENDS <<<"${BENCH_BACKENDS:-bench nginxsvc}"
SCENARIOS=(direct path method nginx floor)
BASE_BIN=${BENCH_BASE_BIN:-}
if [ -n "$BASE_BIN" ]; then
  [ -x "$BASE_BIN" ] || { echo "BENCH_BASE_BIN=$BASE_BIN is not an executable" >&2; exit 2; }
  SCENARIOS+=(path_base method_base)
fi
for t in "${TOOLS[@]}"; do
  case $t in h2load | oha) ;; *) echo "unknown load tool '$t' in BENCH_TOOLS (h2load, oha)" >&2; exit 2 ;; esac
done
for b in "${BACKENDS[@]}"; do
  case $b in bench | nginxsvc) ;; *) echo "unknown backend '$b' in BENCH_BACKENDS (bench, nginxsvc)" >&2; exit 2 ;; esac
done
if [ "${#TOOLS[@]}" -eq 0 ] || [ "${#BACKENDS[@]}" -eq 0 ]; then echo "no tool or no backend" >&2; exit 2; fi

# --- tools --------------------------------------------------------------------------------------
if ! command -v h2load >/dev/null || ! command -v nginx >/dev/null; then
  echo "== installing nghttp2-client and nginx (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nghttp2-client nginx >/dev/null
fi
NGINX=$(command -v nginx)
if [[ " ${TOOLS[*]} " == *" oha "* ]]; then
  cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
  if command -v oha >/dev/null; then
    OHA=$(command -v oha)
  elif [ -x "$cargo_bin/oha" ]; then
    OHA=$cargo_bin/oha
  else
    echo "== installing oha $OHA_VERSION (cargo install, into $cargo_bin; takes minutes)"
    cargo install -q oha --version "$OHA_VERSION" --locked
    OHA=$cargo_bin/oha
  fi
  # oha >= 1.9 says `--output-format json`; older versions only `-j/--json`.
  if "$OHA" --help | grep -q -- '--output-format'; then OHA_JSON=(--output-format json); else OHA_JSON=(--json); fi
fi
cargo build --release -q -p hero_router -p hero_example_service -p hero_floor_proxy
bin=$PWD/target/release

# --- temp dirs, processes, cleanup -------------------------------------------------------------
tmp=$(mktemp -d)
root=$tmp/sockets
base_root=$tmp/sockets_base  # the BENCH_BASE_BIN router's root
mkdir -p "$root" "$base_root" "$tmp/runs"
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
n_children() { [ "$(pgrep -c -P "$1" || true)" -eq "$2" ]; } # n_children PID N: PID has N children

body=$tmp/echo.json         # the exact bytes POSTed on the path routes (no trailing newline)
printf '%s' '{"jsonrpc":"2.0","id":1,"method":"echo","params":["hello"]}' >"$body"
for b in "${BACKENDS[@]}"; do  # method routing: the router strips "<service>."
  printf '%s' "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$b.echo\",\"params\":[\"hello\"]}" >"$tmp/echo_$b.json"
done
workers=$(nproc)

# nginx_conf DIR: the common head of an nginx config whose pid, logs (DIR/logs, made beforehand)
# and temp files live in DIR
nginx_conf() {
  cat <<EOF
user root;
worker_processes $workers;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http() { # the common part of the http block
  cat <<EOF
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  keepalive_requests 1000000;
EOF
}
start_nginx() { # start_nginx DIR: runs nginx in the foreground on DIR/nginx.conf; sets $! to it
  "$NGINX" -e "$1/logs/error.log" -p "$1" -c "$1/nginx.conf" -g 'daemon off;' &
}

# --- backends -----------------------------------------------------------------------------------
backend_pids=()   # the backends' processes, for the idle check
for b in "${BACKENDS[@]}"; do
  case $b in
    bench)
      "$bin/hero_example_service" --socket-dir "$root" --name bench 2>"$tmp/service.log" & pids+=($!)
      backend_pids+=($!)
      if [ -n "$BASE_BIN" ]; then
        "$bin/hero_example_service" --socket-dir "$base_root" --name bench 2>"$tmp/service_base.log" &
        pids+=($!); backend_pids+=($!)
      fi
      ;;
    nginxsvc)
      d=$tmp/nginxsvc
      mkdir -p "$root/nginxsvc" "$base_root/nginxsvc" "$d/logs"
      base_listen=""
      [ -z "$BASE_BIN" ] || base_listen="listen unix:$base_root/nginxsvc/rpc.sock;"
      { nginx_conf "$d"; echo "http {"; nginx_http "$d"; cat <<EOF
  server {
    listen unix:$root/nginxsvc/rpc.sock;
    $base_listen
    default_type application/json;
    location / { return 200 '{"jsonrpc":"2.0","id":1,"result":["hello"]}'; }
  }
}
EOF
      } >"$d/nginx.conf"
      start_nginx "$d"; pids+=($!)
      p=$!
      wait_for "nginxsvc workers" n_children "$p" "$workers"
      mapfile -t ws < <(pgrep -P "$p")
      backend_pids+=("$p" "${ws[@]}")
      ;;
  esac
  wait_for "$b/rpc.sock" test -S "$root/$b/rpc.sock"
  [ -z "$BASE_BIN" ] || wait_for "base $b/rpc.sock" test -S "$base_root/$b/rpc.sock"
done

RPORT=$(free_port)
ACCESS_LOG=${BENCH_ACCESS_LOG:-off}
router_log_level=warn
[ "$ACCESS_LOG" = off ] || router_log_level=warn,hero_router::access=info
"$bin/hero_router" serve --socket-dir "$root" --listen "127.0.0.1:$RPORT" --no-admin-tcp \
  --log-level "$router_log_level" --access-log "$ACCESS_LOG" \
  2>"$tmp/router.log" & pids+=($!)
router_pid=$!
wait_for "hero_router health" "$bin/hero_router" health --socket-dir "$root"
base_pid=$router_pid
if [ -n "$BASE_BIN" ]; then
  BPORT=$(free_port)
  "$BASE_BIN" serve --socket-dir "$base_root" --listen "127.0.0.1:$BPORT" --log-level warn \
    2>"$tmp/router_base.log" & pids+=($!)
  base_pid=$!
  wait_for "base hero_router health" "$BASE_BIN" health --socket-dir "$base_root"
fi

# The floor: hero_floor_proxy, the router's threads and system calls without its work (one per
# backend, each forwarding to that backend's socket).
declare -A FLOOR_PORT FLOOR_PID
for b in "${BACKENDS[@]}"; do
  "$bin/hero_floor_proxy" --listen 127.0.0.1:0 --upstream "$root/$b/rpc.sock" >"$tmp/floor_$b.addr" &
  pids+=($!); FLOOR_PID[$b]=$!
  wait_for "hero_floor_proxy for $b" test -s "$tmp/floor_$b.addr"
  FLOOR_PORT[$b]=$(sed 's/.*://' "$tmp/floor_$b.addr")
done

NPORT=$(free_port)
d=$tmp/nginx
mkdir -p "$d/logs"
{ nginx_conf "$d"; echo "http {"; nginx_http "$d"
  for b in "${BACKENDS[@]}"; do
    echo "  upstream up_$b { server unix:$root/$b/rpc.sock; keepalive $NGINX_KEEPALIVE; keepalive_requests 1000000; }"
  done
  echo "  server {"
  echo "    listen 127.0.0.1:$NPORT;"
  # With BENCH_ACCESS_LOG, nginx logs too (its combined format, to a file), so that both
  # proxies pay for a log line per request.
  [ "$ACCESS_LOG" = off ] || echo "    access_log $d/logs/access.log combined;"
  for b in "${BACKENDS[@]}"; do cat <<EOF
    location /$b/rpc/ {
      proxy_pass http://up_$b/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
EOF
  done
  echo "  }"; echo "}"
} >"$d/nginx.conf"
start_nginx "$d"; pids+=($!)
nginx_pid=$!
wait_for "proxy nginx workers" n_children "$nginx_pid" "$workers"
mapfile -t ws < <(pgrep -P "$nginx_pid")
nginx_group=("$nginx_pid" "${ws[@]}")  # the proxy nginx: master + workers (a fixed set)

# --- scenarios ----------------------------------------------------------------------------------
# target SCENARIO SERVICE -> "URL BODYFILE UNIXSOCKET" (UNIXSOCKET "-" unless direct)
target() {
  case $1 in
    direct) echo "http://localhost/rpc $body $root/$2/rpc.sock" ;;
    path)   echo "http://127.0.0.1:$RPORT/$2/rpc/rpc $body -" ;;
    method) echo "http://127.0.0.1:$RPORT/rpc $tmp/echo_$2.json -" ;;
    nginx)  echo "http://127.0.0.1:$NPORT/$2/rpc/rpc $body -" ;;
    floor)  echo "http://127.0.0.1:${FLOOR_PORT[$2]}/rpc $body -" ;;
    path_base)   echo "http://127.0.0.1:$BPORT/$2/rpc/rpc $body -" ;;
    method_base) echo "http://127.0.0.1:$BPORT/rpc $tmp/echo_$2.json -" ;;
  esac
}
curl_for() { # curl_for SCENARIO SERVICE: one request through curl; prints the head and the body
  local url file sock; read -r url file sock < <(target "$1" "$2")
  local via=(); [ "$sock" = - ] || via=(--unix-socket "$sock")
  curl -sf -i "${via[@]}" -H 'content-type: application/json' --data-binary @"$file" "$url"
}
for b in "${BACKENDS[@]}"; do
  for s in "${SCENARIOS[@]}"; do
    wait_for "$b $s to answer" curl_for "$s" "$b"
    out=$(curl_for "$s" "$b")
    [[ $out == *'"result":["hello"]'* ]] || { echo "FAIL: $b $s answered: $out" >&2; exit 1; }
    grep -qi '^content-type: application/json' <<<"$out" || { echo "FAIL: $b $s: not JSON: $out" >&2; exit 1; }
  done
done

ticks() { # utime+stime of one pid (all its threads), in clock ticks: fields 14 and 15
  local s f; read -r s <"/proc/$1/stat"; s=${s##*) }; read -ra f <<<"$s"; echo $((f[11] + f[12]))
}
group_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(ticks "$p"))); done; echo "$t"; }

# run_h2load SCENARIO SERVICE CONNS N: one h2load run; prints "req/s p50_us p99_us"; fails
# unless all N answers are 2xx
run_h2load() {
  local s=$1 b=$2 c=$3 n=$4 out url file sock log=$tmp/h2load.log
  read -r url file sock < <(target "$s" "$b")
  local via=(); [ "$sock" = - ] || via=(-B "unix:$sock")
  out=$(h2load --h1 -m 1 -t "$THREADS" -c "$c" -n "$n" -H 'content-type: application/json' \
        --log-file "$log" "${via[@]}" -d "$file" "$url" 2>&1) \
    || { echo "$out" >&2; echo "FAIL: h2load $b $s" >&2; exit 1; }
  local ok2xx rps
  ok2xx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
  if [[ "$ok2xx" != "$n" ]] || ! grep -q "$n succeeded, 0 failed, 0 errored, 0 timeout" <<<"$out"; then
    echo "$out" >&2; echo "FAIL: h2load $b $s: not all $n responses were 2xx" >&2; exit 1
  fi
  # per-request log: start_us <TAB> status <TAB> latency_us; nearest-rank percentiles
  cut -f3 "$log" | sort -n | awk -v rps="$rps" '{ v[NR] = $1 }
    END { p50 = v[int(NR*0.50 + 0.999999)]; p99 = v[int(NR*0.99 + 0.999999)]
          printf "%.0f %d %d\n", rps, p50, p99 }'
  rm -f "$log"
}

# run_oha SCENARIO SERVICE CONNS N: one oha run; prints "req/s p50_us p99_us"; fails unless all N
# answers are 2xx with no error
run_oha() {
  local s=$1 b=$2 c=$3 n=$4 out url file sock json=$tmp/oha.json
  read -r url file sock < <(target "$s" "$b")
  local via=(); [ "$sock" = - ] || via=(--unix-socket "$sock")
  out=$("$OHA" --no-tui "${OHA_JSON[@]}" --http-version 1.1 -c "$c" -n "$n" -m POST \
        -H 'content-type: application/json' -D "$file" "${via[@]}" "$url" 2>&1 >"$json") \
    || { echo "$out" >&2; cat "$json" >&2; echo "FAIL: oha $b $s" >&2; exit 1; }
  python3 - "$json" "$n" "oha $b $s" <<'PY'
import json, sys
j, n, what = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
codes = {int(k): v for k, v in j.get("statusCodeDistribution", {}).items()}
ok = sum(v for k, v in codes.items() if 200 <= k < 300)
errors = j.get("errorDistribution", {})
if ok != n or errors:
    sys.exit(f"FAIL: {what}: {ok} of {n} answers 2xx; status codes {codes}; errors {errors}")
lat = j["latencyPercentiles"]
print(f'{j["summary"]["requestsPerSec"]:.0f} {lat["p50"] * 1e6:.0f} {lat["p99"] * 1e6:.0f}')
PY
  rm -f "$json"
}

# run_load TOOL SCENARIO SERVICE CONNS N: prints "req/s p50_us p99_us router_ticks nginx_ticks",
# the last two the CPU ticks hero_router and the proxy nginx used during the run
run_load() {
  local tool=$1 r0 n0 r1 n1 res rp=$router_pid
  [[ $2 != *_base ]] || rp=$base_pid
  [[ $2 != floor ]] || rp=${FLOOR_PID[$3]}
  r0=$(ticks "$rp"); n0=$(group_ticks "${nginx_group[@]}")
  res=$("run_$tool" "${@:2}")
  r1=$(ticks "$rp"); n1=$(group_ticks "${nginx_group[@]}")
  echo "$res $((r1 - r0)) $((n1 - n0))"
}

idle_sample() { # one second before any load: machine idle %, router and backends' CPU (% of a core)
  local a b r0 s0 tot=0 i hz; hz=$(getconf CLK_TCK)
  read -ra a </proc/stat; r0=$(ticks "$router_pid"); s0=$(group_ticks "${backend_pids[@]}"); sleep 1
  read -ra b </proc/stat
  for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
  echo "$((100 * (b[4] - a[4]) / (tot > 0 ? tot : 1))) $(( ($(ticks "$router_pid") - r0) * 100 / hz ))" \
       "$(( ($(group_ticks "${backend_pids[@]}") - s0) * 100 / hz ))"
}
read -r idle router_cpu service_cpu < <(idle_sample)
HZ=$(getconf CLK_TCK)
versions="$(h2load --version | head -1)"
[ -z "${OHA:-}" ] || versions+="; $("$OHA" --version | head -1)"
echo "== machine: $(nproc) cores, Linux $(uname -r); $versions; $("$NGINX" -v 2>&1)"
echo "== command: make bench (or: bash scripts/bench_proxy.sh)"
echo "== tools: ${TOOLS[*]}; backends: ${BACKENDS[*]}; scenarios: ${SCENARIOS[*]}"
echo "== proxy nginx and backend nginx: worker_processes $workers each (separate processes);" \
  "hero_router: one connection shard per core"
echo "== idle check (1 s, no load): machine ${idle}% idle, hero_router ${router_cpu}% of a core," \
  "backends ${service_cpu}%; load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$router_cpu" -le 5 ] || echo "   WARNING: hero_router burns CPU while idle; it competes with the proxying below"
[ "$idle" -ge 90 ] || echo "   WARNING: the machine is not idle before the run; numbers will be noisy and low"
for t in "${TOOLS[@]}"; do
  case $t in
    h2load) echo "== h2load --h1 -m 1 -t $THREADS (the load tool shares the $(nproc) cores with the proxy)" ;;
    oha) echo "== oha --no-tui ${OHA_JSON[*]} --http-version 1.1 -m POST (keep-alive; shares the cores too)" ;;
  esac
done
echo "== CPU: utime+stime from /proc/PID/stat, hero_router process and proxy nginx master +" \
  "$(( ${#nginx_group[@]} - 1 )) workers; 1 tick = $((1000 / HZ)) ms, so one run of $N requests" \
  "resolves $(python3 -c "print(f'{1e6 / $HZ / $N:.3f}')") µs per request"

echo "== warm-up: $WARMUP requests per tool, backend and scenario at $CONNS connections"
for t in "${TOOLS[@]}"; do for b in "${BACKENDS[@]}"; do for s in "${SCENARIOS[@]}"; do
  "run_$t" "$s" "$b" "$CONNS" "$WARMUP" >/dev/null
done; done; done

echo "== throughput: $CONNS connections, $N requests, $ROUNDS interleaved rounds" \
  "(req/s p50_us p99_us, CPU ticks of hero_router and of the proxy nginx)"
for r in $(seq 1 "$ROUNDS"); do
  for t in "${TOOLS[@]}"; do for b in "${BACKENDS[@]}"; do for s in "${SCENARIOS[@]}"; do
    res=$(run_load "$t" "$s" "$b" "$CONNS" "$N")
    echo "$res" >>"$tmp/runs/$t.$b.$s.c$CONNS"
    printf '   round %d  %-6s %-8s %-7s %s\n' "$r" "$t" "$b" "$s" "$res"
  done; done; done
done

echo "== latency: 1 connection, $N1 requests, $ROUNDS interleaved rounds (req/s p50_us p99_us)"
for t in "${TOOLS[@]}"; do for b in "${BACKENDS[@]}"; do for s in "${SCENARIOS[@]}"; do
  "run_$t" "$s" "$b" 1 2000 >/dev/null
done; done; done
for r in $(seq 1 "$ROUNDS"); do
  for t in "${TOOLS[@]}"; do for b in "${BACKENDS[@]}"; do for s in "${SCENARIOS[@]}"; do
    res=$("run_$t" "$s" "$b" 1 "$N1")
    echo "$res" >>"$tmp/runs/$t.$b.$s.c1"
    printf '   round %d  %-6s %-8s %-7s %s\n' "$r" "$t" "$b" "$s" "$res"
  done; done; done
done
kill -0 "$router_pid" "$base_pid" "${nginx_group[@]}" || { echo "FAIL: a proxy process died during the run" >&2; exit 1; }

# --- report -------------------------------------------------------------------------------------
python3 - "$tmp/runs" "$CONNS" "$N" "$HZ" "$workers" "${TOOLS[*]}" "${BACKENDS[*]}" "${SCENARIOS[*]}" "$BASE_BIN" <<'PY'
import statistics as st, sys
runs, conns, n, hz, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tools, backends, scen, base_bin = sys.argv[6].split(), sys.argv[7].split(), sys.argv[8].split(), sys.argv[9]
def rows(t, b, s, c):
    return [list(map(float, l.split())) for l in open(f"{runs}/{t}.{b}.{s}.c{c}") if l.strip()]
def med(t, b, s, c):
    """Medians over the rounds: req/s, p50 us, p99 us and, at CONNS, the proxy's CPU us/request
    (hero_router's for path and method, the proxy nginx's for nginx, none for direct)."""
    rs = rows(t, b, s, c)
    out = [st.median(col) for col in zip(*(r[:3] for r in rs))]
    if c == conns:
        col = {"path": 3, "method": 3, "path_base": 3, "method_base": 3, "nginx": 4,
               "floor": 3}.get(s)
        out.append(st.median(r[col] * 1e6 / hz / n for r in rs) if col else None)
    return out
label = {"direct": "direct (Unix socket)", "path": "hero_router path route",
         "method": "hero_router method routing", "nginx": f"nginx ({workers} workers)",
         "path_base": "base hero_router path route", "method_base": "base hero_router method routing",
         "floor": "floor: hero_floor_proxy (no parsing)"}
backend_label = {"bench": "bench (hero_example_service)",
                 "nginxsvc": "nginxsvc (nginx, fixed JSON reply)"}
results = []
def check(name, ok, got, want):
    results.append(ok)
    print(f"- {'PASS' if ok else 'MISS'}: {name}: {got} (target {want})")
for t in tools:
    for b in backends:
        m = {s: med(t, b, s, conns) for s in scen}
        one = {s: med(t, b, s, 1) for s in scen}
        ng = m["nginx"]
        print(f"\n### {t}, backend {backend_label[b]}\n")
        print(f"| scenario | req/s ({conns} conn) | p50 ms | p99 ms | req/s ÷ nginx | p99 ÷ nginx "
              "| ÷ path route req/s | proxy CPU µs/req | CPU ÷ nginx "
              "| 1-conn p50 µs | added p50 over direct µs |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s, (rps, p50, p99, cpu) in m.items():
            vs = f"{rps/ng[0]:.2f}×" if s != "nginx" else "1.00×"
            pv = f"{p99/ng[2]:.2f}×" if s != "nginx" else "1.00×"
            vp = f"{rps/m['path'][0]:.2f}×" if s == "method" else ""
            cu = "—" if cpu is None else f"{cpu:.2f}"
            cv = "—" if cpu is None else f"{cpu/ng[3]:.2f}×" if ng[3] else "n/a"
            add = "—" if s == "direct" else f"{one[s][1]-one['direct'][1]:+.0f}"
            print(f"| {label[s]} | {rps:,.0f} | {p50/1000:.3f} | {p99/1000:.3f} | {vs} | {pv} | {vp} "
                  f"| {cu} | {cv} | {one[s][1]:.0f} | {add} |")
        print(f"\nTargets ({t}, backend {b}):")
        r = m["path"][0] / ng[0]; check("path route req/s ÷ nginx", r >= 1.15, f"{r:.2f}×", "≥ 1.15×")
        r = m["path"][2] / ng[2]; check("path route p99 ÷ nginx", r <= 0.9, f"{r:.2f}×", "≤ 0.90×")
        r = m["method"][0] / m["path"][0]; check("method routing ÷ path route req/s", r >= 0.8, f"{r:.2f}×", "≥ 0.80×")
        if ng[3]:
            r = m["path"][3] / ng[3]
            check("router CPU per proxied request (path route) ÷ nginx's", r <= 0.8,
                  f"{m['path'][3]:.2f} µs vs {ng[3]:.2f} µs = {r:.2f}×", "≤ 0.80×")
            print(f"- (reference) method routing CPU per request ÷ nginx's: {m['method'][3]/ng[3]:.2f}×")
        else:
            check("router CPU per proxied request ÷ nginx's", False, "nginx used no measurable CPU", "≤ 0.80×")
        for s in ("path", "method"):
            a = one[s][1] - one["direct"][1]
            check(f"added p50 over direct, 1 conn, {s}", a <= 60, f"{a:.0f} µs", "≤ 60 µs")
        a = one["nginx"][1] - one["direct"][1]; print(f"- (reference) nginx added p50 over direct, 1 conn: {a:.0f} µs")
        if ng[3]:
            print(f"- (reference) the floor's CPU per request ÷ nginx's: {m['floor'][3]/ng[3]:.2f}× "
                  f"(what a proxy of the router's shape costs before any of its work); "
                  f"the router's path route ÷ the floor: {m['path'][3]/m['floor'][3]:.2f}×")
        if "path_base" in m:
            for s in ("path", "method"):
                b_ = m[f"{s}_base"]
                print(f"- (comparison with {base_bin}) {s}: req/s {m[s][0]/b_[0]:.2f}×, "
                      f"p99 {m[s][2]/b_[2]:.2f}×, CPU µs/req {m[s][3]:.2f} vs {b_[3]:.2f} = {m[s][3]/b_[3]:.2f}×, "
                      f"1-conn p50 {one[s][1]:.0f} vs {one[f'{s}_base'][1]:.0f} µs")
print(f"\nCPU per request: medians over the rounds of (utime+stime delta) ÷ {n:,} requests; "
      f"1 tick = {1000 // hz} ms = {1e6 / hz / n:.3f} µs per request at this run length.")
print(f"All targets: {sum(results)} PASS, {len(results) - sum(results)} MISS")
PY
