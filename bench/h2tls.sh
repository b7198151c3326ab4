#!/usr/bin/env bash
# HTTP/2 over TLS with h2load, lbd against nginx in one run, same ECDSA P-256 certificate:
#   h2load -n N -c 16 -m 32 https://127.0.0.1:PORT/
# Origin: lb-bench origin (HTTP/1.1); both balancers proxy to it over HTTP/1.1 keep-alive.
# Reports requests/s and each balancer's CPU-seconds per 10k requests (from /proc).
# Usage: bench/h2tls.sh [requests]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
for tool in h2load nginx openssl; do command -v $tool >/dev/null || { echo "needs $tool: apt-get install nghttp2-client nginx-light openssl"; exit 1; }; done
cargo build --release -q -p lbd -p lb-bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch h2tls
make_cert "$DIR"
ORIGIN=19300
./target/release/lb-bench origin --listen 127.0.0.1:$ORIGIN --threads 1 2>/dev/null & PIDS+=($!)
# compare.sh's configs (bench/lib.sh); the HTTP/2 listeners are lbd's 19301 and nginx's 19302.
lbd_conf auto 19303 19304 19309 19301 > "$DIR/lbd.toml"
nginx_proxy_conf 19305 19302 > "$DIR/nginx.conf"
./target/release/lbd run --config "$DIR/lbd.toml" 2>/dev/null & LBD_PID=$!; PIDS+=($LBD_PID)
nginx -c "$DIR/nginx.conf" & NGINX_PID=$!; PIDS+=($NGINX_PID)
for p in 19300 19301 19302; do wait_port $p; done
HZ=$(getconf CLK_TCK)
ticks() { local t=0 p; for p in $1 $(pgrep -P "$1" || true); do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
run() { # label port pid
  h2load -n $((N / 10)) -c 16 -m 32 "https://127.0.0.1:$2/" >/dev/null 2>&1
  local before after out
  before=$(ticks "$3"); out=$(h2load -n "$N" -c 16 -m 32 "https://127.0.0.1:$2/"); after=$(ticks "$3")
  printf "%-6s %s req/s  %s  CPU-s per 10k req %s\n" "$1" "$(echo "$out" | awk '/^finished in/ {print $4}')" \
    "$(echo "$out" | grep -E '^requests:' | cut -d, -f4,5)" \
    "$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.3f", t / hz / (n / 10000) }')"
  echo "$out" | grep -E "^Application protocol|^TLS Protocol" | tr '\n' ' '; echo
}
echo "h2load -n $N -c 16 -m 32 over TLS (ECDSA P-256), $(nproc) cores, $(date -u +%FT%TZ)"
run lbd 19301 $LBD_PID
run nginx 19302 $NGINX_PID
