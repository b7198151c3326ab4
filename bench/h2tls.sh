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
./target/release/lb-bench origin --listen 127.0.0.1:19300 --threads 1 2>/dev/null & PIDS+=($!)
cat > "$DIR/lbd.toml" <<TOML
workers = 2
[admin]
bind = "127.0.0.1:19309"
[access_log]
path = "off"
[[listeners]]
name = "h2"
kind = "https"
bind = "127.0.0.1:19301"
  [listeners.tls]
  certificates = [{ cert = "$DIR/cert.pem", key = "$DIR/key.pem" }]
  [[listeners.routes]]
  cluster = "origin"
[[clusters]]
name = "origin"
endpoints = ["127.0.0.1:19300"]
pool_size = 512
TOML
cat > "$DIR/nginx.conf" <<NGX
worker_processes 2;
daemon off;
pid $DIR/nginx.pid;
error_log $DIR/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream o { server 127.0.0.1:19300; keepalive 512; }
  server { listen 127.0.0.1:19302 ssl http2;
    ssl_certificate $DIR/cert.pem; ssl_certificate_key $DIR/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 256; keepalive_requests 1000000;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ''; } }
}
NGX
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
