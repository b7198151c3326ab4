#!/usr/bin/env bash
# HTTP/3 through lbd and through Caddy (Debian; HTTP/3 reverse proxy) to the same origin, in one
# run, with an HTTP/3 load generator on quinn (lb-bench load --h3) and on quiche (--h3 --quiche); lbd's own HTTP/2-over-TLS
# figure from the same generator for comparison; memory per idle QUIC connection for both.
#   lb-bench load --h3 [--quiche] -c 16 -m 32 -d 10 https://localhost:PORT/   (both balancers)
#   lb-bench load --h2 -c 16 -m 32 -d 10 https://127.0.0.1:PORT/     (lbd, TCP+TLS)
#   lb-bench conns --kind h3 -n 1000 127.0.0.1:PORT                  (both balancers)
# Results: JSON lines appended to bench/results/h3.jsonl, and a summary on stdout.
# Usage: bench/h3.sh [seconds] [idle-connections]   (default 10, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
IDLE=${2:-1000}
for tool in caddy openssl; do command -v $tool >/dev/null || { echo "needs $tool: apt-get install caddy openssl"; exit 1; }; done
cargo build --release -q -p lbd -p lb-bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch h3
OUT=bench/results/h3.jsonl
B=./target/release/lb-bench
make_cert "$DIR"
$B origin --listen 127.0.0.1:19400 --threads 1 2>/dev/null & PIDS+=($!)
cat > "$DIR/lbd.toml" <<TOML
workers = 2
[admin]
bind = "127.0.0.1:19409"
[access_log]
path = "off"
[[listeners]]
name = "edge"
kind = "https"
bind = "127.0.0.1:19401"
max_connections = 200000
idle_timeout = "1h"
  [listeners.tls]
  certificates = [{ cert = "$DIR/cert.pem", key = "$DIR/key.pem" }]
  [[listeners.routes]]
  cluster = "origin"
[[clusters]]
name = "origin"
endpoints = ["127.0.0.1:19400"]
pool_size = 512
TOML
# Caddy as compare.sh runs it (bench/lib.sh: the same forwarding headers as lbd's); its plain
# HTTP site (19412) is not used here.
ORIGIN=19400 caddy_proxy_conf 19412 19411 > "$DIR/Caddyfile"
./target/release/lbd run --config "$DIR/lbd.toml" 2>"$DIR/lbd.log" & LBD_PID=$!; PIDS+=($LBD_PID)
GOMAXPROCS=2 caddy run --config "$DIR/Caddyfile" --adapter caddyfile >"$DIR/caddy.log" 2>&1 & CADDY_PID=$!; PIDS+=($CADDY_PID)
for p in 19400 19401 19411; do wait_port $p; done
sleep 0.5
echo "{\"kind\":\"meta\",\"note\":\"bench/h3.sh $SECS $IDLE on $(nproc) cores, $(uname -r), $(date -u +%FT%TZ). lbd $(./target/release/lbd --version | awk '{print $2}') (2 workers), Caddy $(caddy version | awk '{print $1}') (GOMAXPROCS=2). Load: lb-bench (quinn 0.11 + h3 0.0.8), 16 connections x 32 streams, GET / (6 bytes) from lb-bench origin over HTTP/1.1.\"}" >> "$OUT"
# Idle connections first, on fresh processes: memory freed after the load runs would be reused
# and hide part of the cost per connection.
$B conns --kind h3 -n "$IDLE" --hold 3 --meter $LBD_PID --label lbd --scenario idle-h3 --json "$OUT" 127.0.0.1:19401
$B conns --kind h3 -n "$IDLE" --hold 3 --meter $CADDY_PID --label caddy --scenario idle-h3 --json "$OUT" 127.0.0.1:19411
# Warm-up, then the measured runs, alternating balancers.
for port in 19401 19411; do $B load --h3 -c 4 -m 8 -n 2000 "https://localhost:$port/" >/dev/null 2>&1 || true; done
for round in 1 2; do
  $B load --h3 -c 16 -m 32 -d "$SECS" --meter $LBD_PID --label lbd --scenario h3-16x32 --json "$OUT" "https://localhost:19401/"
  $B load --h3 -c 16 -m 32 -d "$SECS" --meter $CADDY_PID --label caddy --scenario h3-16x32 --json "$OUT" "https://localhost:19411/"
done
for round in 1 2; do
  $B load --h3 --quiche -c 16 -m 32 -d "$SECS" --meter $LBD_PID --label lbd --scenario h3-quiche-16x32 --json "$OUT" "https://localhost:19401/"
  $B load --h3 --quiche -c 16 -m 32 -d "$SECS" --meter $CADDY_PID --label caddy --scenario h3-quiche-16x32 --json "$OUT" "https://localhost:19411/"
done
$B load --h2 -c 16 -m 32 -d "$SECS" --meter $LBD_PID --label lbd --scenario h2tls-16x32 --json "$OUT" "https://localhost:19401/"
