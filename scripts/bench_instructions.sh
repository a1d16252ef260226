#!/usr/bin/env bash
# Instructions per proxied request: the router's user-space work, counted exactly.
#
# Run with `bash scripts/bench_instructions.sh` (or `make bench-instructions`).
#
# The CPU ratios of scripts/bench_proxy.sh move by 0.05–0.2 between runs of the same binary on
# two shared cores; this count does not. It runs the release router under valgrind's callgrind
# in front of an nginx answering a fixed JSON-RPC reply on a Unix socket, sends BENCH_WARMUP
# requests, zeroes the counters, sends BENCH_N more with oha (4 connections), and prints the
# instructions the router executed per request, for the path route and the method route, and
# the functions that cost the most (self cost, per request). Kernel time is not counted: the
# count is the part of the CPU per request that is the router's own code.
#
# Knobs: BENCH_N (20000), BENCH_WARMUP (2000), BENCH_BIN (a router binary; default: build
# release), BENCH_TOP (functions to list, 25; 0 for none), BENCH_KEEP_PROFILES (a directory to
# keep the callgrind files in).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

N=${BENCH_N:-20000}
WARMUP=${BENCH_WARMUP:-2000}
TOP=${BENCH_TOP:-25}
need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v nginx >/dev/null || need+=(nginx)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
OHA=$(command -v oha || echo "$cargo_bin/oha")
if [ ! -x "$OHA" ]; then
  echo "== installing oha 1.16.0 (cargo install; takes minutes)"
  cargo install -q oha --version 1.16.0 --locked
  OHA=$cargo_bin/oha
fi
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release -q -p hero_router
  BIN=$PWD/target/release/hero_router
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for DESC CMD...: poll CMD until it succeeds, at most 60 s (valgrind starts slowly)
  local desc=$1; shift
  for _ in $(seq 1 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $desc" >&2; exit 1
}

mkdir -p "$tmp/sockets/nginxsvc" "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen unix:$tmp/sockets/nginxsvc/rpc.sock;
    default_type application/json;
    location / { return 200 '{"jsonrpc":"2.0","id":1,"result":["hello"]}'; }
  }
}
EOF
nginx -e "$tmp/nginx/logs/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_for "the nginx service" test -S "$tmp/sockets/nginxsvc/rpc.sock"

port=$(free_port)
valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.out" \
  "$BIN" serve --socket-dir "$tmp/sockets" --listen "127.0.0.1:$port" --no-admin-tcp \
  --log-level warn --access-log off 2>"$tmp/valgrind.log" &
vg=$!
pids+=($vg)
path_url=http://127.0.0.1:$port/nginxsvc/rpc/rpc
path_body='{"jsonrpc":"2.0","id":1,"method":"echo","params":["hello"]}'
method_url=http://127.0.0.1:$port/rpc
method_body='{"jsonrpc":"2.0","id":1,"method":"nginxsvc.echo","params":["hello"]}'
wait_for "hero_router under valgrind" curl -sf -o /dev/null -d "$path_body" "$path_url"

load() { # load URL BODY COUNT: COUNT requests on 4 connections; fails unless every one succeeded
  local out
  out=$("$OHA" --no-tui --http-version 1.1 -n "$3" -c 4 -m POST -H 'content-type: application/json' \
    -d "$2" "$1")
  grep -q "Success rate:.*100.00%" <<<"$out" || { echo "requests failed: $out" >&2; exit 1; }
}
count() { # count NAME URL BODY: instructions per request of NAME
  load "$2" "$3" "$WARMUP"
  callgrind_control -z "$vg" >/dev/null 2>&1
  load "$2" "$3" "$N"
  callgrind_control -d "$vg" >/dev/null 2>&1
  local f
  for _ in $(seq 1 100); do
    f=$(ls "$tmp"/callgrind.out.* 2>/dev/null | tail -1 || true)
    [ -n "$f" ] && [ -s "$f" ] && break
    sleep 0.1
  done
  mv "$f" "$tmp/$1.out"
  local total
  total=$(callgrind_annotate "$tmp/$1.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf '%-7s %8d instructions per request\n' "$1" $((total / N))
}

echo "== instructions per request, $N requests after $WARMUP of warm-up ($BIN)"
count path "$path_url" "$path_body"
count method "$method_url" "$method_body"
if [ "$TOP" -gt 0 ]; then
  echo "== path route: the functions that cost the most (self, instructions per request)"
  # The summary only (no source annotation); a function inlined from several files has a
  # line per file, summed here.
  callgrind_annotate --threshold=100 --auto=no "$tmp/path.out" 2>/dev/null |
    awk -v n="$N" -v top="$TOP" '
      /PROGRAM TOTALS/ { next }
      /^ *[0-9,]+ \([ 0-9.]+%\)  / {
        c = $1; gsub(",", "", c)
        line = $0; sub(/^ *[0-9,]+ \([ 0-9.]+%\)  /, "", line)
        sub(/^[^:]*:/, "", line); sub(/ \[.*\]$/, "", line)
        cost[line] += c
      }
      END { for (f in cost) printf "%8d  %s\n", cost[f] / n, substr(f, 1, 110) }' |
    sort -rn | grep -v -e "thread_start" -e "start_thread" -e "  clone$" -e "call_once{{vtable.shim}}" -e "__rust_begin_short_backtrace" \
      -e "Runtime::block_on" | head -n "$TOP"
fi
if [ -n "${BENCH_KEEP_PROFILES:-}" ]; then
  mkdir -p "$BENCH_KEEP_PROFILES"
  cp "$tmp/path.out" "$tmp/method.out" "$BENCH_KEEP_PROFILES/"
  echo "== profiles kept in $BENCH_KEEP_PROFILES (callgrind_annotate FILE)"
fi
