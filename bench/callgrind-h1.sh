#!/usr/bin/env bash
# Userspace instructions per proxied HTTP/1.1 request in lbd, counted by callgrind: repeatable
# on a shared, noisy machine where wall-clock CPU figures are not. One epoll worker (valgrind does
# not model io_uring), an nginx origin, h2load --h1 -c 8. Counters are zeroed after a warm-up and
# dumped after N requests. TLS=1: the clients speak HTTP/1.1 over TLS 1.3 (ECDSA P-256; handshakes
# happen in the warm-up, so the count is the record layer and the proxy).
# H2=1: HTTP/2 over TLS instead, 8 connections x 16 streams.
# H3=1: HTTP/3 instead (lb-bench's quinn client), 8 connections x 16 streams.
# LBD=PATH: count a prebuilt lbd binary instead of building target/release/lbd (for A/B runs).
# FLOOR=1: count `lb-bench floor` (one thread) instead of lbd, the least a proxy on tokio does
# (not with H3=1).
# Usage: [TLS=1|H2=1|H3=1] [LBD=PATH|FLOOR=1] bench/callgrind-h1.sh [requests]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
for tool in valgrind h2load nginx; do command -v $tool >/dev/null || { echo "needs $tool (apt-get install valgrind nghttp2-client nginx-light)"; exit 1; }; done
if [ -z "${LBD:-}" ]; then cargo build --release -q -p lbd -p lb-bench; LBD=./target/release/lbd; fi
DIR=$(mktemp -d /tmp/lbd-cg.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; [ -n "${KEEP:-}" ] && echo "kept $DIR" || rm -rf "$DIR"; }
trap cleanup EXIT
cat > "$DIR/origin.conf" <<NGX
worker_processes 1; daemon off; pid $DIR/o.pid; error_log $DIR/o.err warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18911; location / { return 200 'hello\n'; } } }
NGX
SCHEME=http KIND=http TLSCONF=""
LOAD="--h1 -c 8"
[ -n "${H2:-}" ] && { TLS=1; LOAD="-c 8 -m 16"; }
H3CONF=false
[ -n "${H3:-}" ] && { TLS=1; H3CONF=true; }
if [ -n "${TLS:-}" ]; then
  openssl req -x509 -nodes -days 2 -subj /CN=bench.test -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -addext subjectAltName=DNS:bench.test,DNS:localhost -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
  SCHEME=https KIND=https
  TLSCONF="[listeners.tls]
certificates = [{ cert = \"$DIR/cert.pem\", key = \"$DIR/key.pem\" }]
http3 = $H3CONF"
fi
cat > "$DIR/lbd.toml" <<TOML
workers = 1
io_backend = "epoll"
[admin]
bind = "127.0.0.1:18919"
[access_log]
path = "off"
[[listeners]]
name = "bench"
kind = "$KIND"
bind = "127.0.0.1:18910"
$TLSCONF
[[listeners.routes]]
cluster = "origin"
[[clusters]]
name = "origin"
endpoints = ["127.0.0.1:18911"]
TOML
nginx -c "$DIR/origin.conf" & PIDS+=($!)
if [ -n "${FLOOR:-}" ]; then
  [ -z "${H3:-}" ] || { echo "FLOOR=1 does not serve HTTP/3" >&2; exit 2; }
  CMD=(./target/release/lb-bench floor --listen 127.0.0.1:18910 --backend 127.0.0.1:18911 --threads 1)
  [ -z "${TLS:-}" ] || CMD+=(--tls "$DIR/cert.pem" "$DIR/key.pem")
else
  CMD=("$LBD" run --config "$DIR/lbd.toml")
fi
valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out" "${CMD[@]}" 2>"$DIR/vg.err" &
VG=$!; PIDS+=($VG)
for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/18910) 2>/dev/null && break; sleep 0.5; done
if [ -n "${H3:-}" ]; then
  ./target/release/lb-bench load --h3 -c 8 -m 16 -n 2000 https://localhost:18910/ >/dev/null
  callgrind_control -z "$VG" >/dev/null
  ./target/release/lb-bench load --h3 -c 8 -m 16 -n "$N" https://localhost:18910/ | grep -o "[0-9]* ok, [0-9]* errors"
else
  h2load $LOAD -n 2000 $SCHEME://127.0.0.1:18910/ >/dev/null
  callgrind_control -z "$VG" >/dev/null
  h2load $LOAD -n "$N" $SCHEME://127.0.0.1:18910/ | grep -E "^requests:"
fi
callgrind_control -d "$VG" >/dev/null
sleep 1
last=$(ls -t "$DIR"/cg.out* | head -1)
total=$(callgrind_annotate "$last" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
WHO=lbd; [ -z "${FLOOR:-}" ] || WHO="lb-bench floor"
echo "$WHO userspace instructions per request: $((total / N))  ($total over $N requests)"
callgrind_annotate --inclusive=yes "$last" 2>/dev/null | grep -E "lb_tcp::http::(proxy::handle|headers)" | grep -v "=>" | head -6 || true
