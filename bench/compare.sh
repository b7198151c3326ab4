#!/usr/bin/env bash
# lbd against nginx, HAProxy and Caddy (Debian packages), same origin, same scenarios, one run.
# Writes bench/results/{results.jsonl,results.md,*.svg}. Every server listens on 127.0.0.1 and is
# stopped by its PID; every load is bounded in requests or seconds.
# Usage: bench/compare.sh [--quick]      (--quick: smaller counts, for a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${1:-}
N=200000; IDLE=8000; IDLE_TLS=3000; IDLE_H3=1000; IDLE_BURST=300; BURST=100; RATE=20000; SECS=5   # IDLE: HAProxy needs 2 fds per connection under the 20,000-fd cap
# The two scenarios with CPU targets against a peer (HTTP/1.1 keep-alive, HTTP/2 over TLS) run
# ROUNDS times, the balancers taking turns; the report gives each its median round.
ROUNDS=5; H3_ROUNDS=3
if [ "$QUICK" = "--quick" ]; then N=20000; IDLE=1000; IDLE_TLS=300; IDLE_H3=200; IDLE_BURST=50; RATE=5000; SECS=2; ROUNDS=1; H3_ROUNDS=1; fi

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
need=()
for pair in nginx:nginx-light haproxy:haproxy caddy:caddy h2load:nghttp2-client; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
  # Debian starts the packaged services; this benchmark runs its own instances.
  $SUDO systemctl stop nginx haproxy caddy >/dev/null 2>&1 || true
fi
cargo build --release -q -p lbd -p lb-bench
BENCH=./target/release/lb-bench
LBD=./target/release/lbd

OUT=bench/results
RAW=$OUT/results.jsonl
mkdir -p "$OUT"; : > "$RAW"
# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch compare

ORIGIN=19100
# --- one ECDSA P-256 certificate for every balancer's TLS listener
make_cert "$DIR"
cat "$DIR/cert.pem" "$DIR/key.pem" > "$DIR/haproxy.pem"
# --- origin
$BENCH origin --listen 127.0.0.1:$ORIGIN --threads 1 2>/dev/null & PIDS+=($!); wait_port $ORIGIN

# --- lbd as configured by default (io_backend "auto": the io_uring runtime where available, L4
# copied on readiness), and for the L4 scenario only lbd on epoll and lbd with io_uring's own L4 copy
lbd_conf auto 19101 19102 19109 19141 > "$DIR/lbd.toml"
lbd_conf epoll 19103 19104 19108 19144 > "$DIR/lbd-epoll.toml"
lbd_conf uring 19151 19152 19158 19154 > "$DIR/lbd-uring.toml"
start_lbd() { $LBD run --config "$DIR/lbd.toml" 2>>"$DIR/lbd.err" & LBD_PID=$!; PIDS+=($LBD_PID); }
start_lbd
$LBD run --config "$DIR/lbd-epoll.toml" 2>"$DIR/lbd-epoll.err" & LBDE_PID=$!; PIDS+=($LBDE_PID)
$LBD run --config "$DIR/lbd-uring.toml" 2>"$DIR/lbd-uring.err" & LBDU_PID=$!; PIDS+=($LBDU_PID)

# --- lb-bench floor: the least proxy on tokio (two threads, as the balancers have two workers),
# a yardstick next to the balancers in the two scenarios with CPU targets: HTTP/1.1, and HTTP/2
# over TLS (rustls and h2 without hyper)
$BENCH floor --listen 127.0.0.1:19161 --backend 127.0.0.1:$ORIGIN --threads 2 2>/dev/null & FLOOR_PID=$!; PIDS+=($FLOOR_PID)
$BENCH floor --listen 127.0.0.1:19162 --backend 127.0.0.1:$ORIGIN --threads 2 --tls "$DIR/cert.pem" "$DIR/key.pem" 2>/dev/null & FLOORTLS_PID=$!; PIDS+=($FLOORTLS_PID)

# --- nginx, sending the origin what lbd sends (bench/lib.sh)
nginx_proxy_conf 19111 19142 > "$DIR/nginx.conf"
start_nginx() { nginx -c "$DIR/nginx.conf" & NGINX_PID=$!; PIDS+=($NGINX_PID); }
start_nginx

# --- HAProxy, the same
haproxy_proxy_conf 19121 19143 19122 > "$DIR/haproxy.cfg"
start_haproxy() { haproxy -db -f "$DIR/haproxy.cfg" 2>>"$DIR/haproxy.err" & HAPROXY_PID=$!; PIDS+=($HAPROXY_PID); }
start_haproxy

# --- nginx and HAProxy as they come, without the forwarding headers and request id lbd adds
# (less work per request than lbd does): measured in the two CPU-target scenarios for reference,
# never counted as the best peer
nginx_proxy_conf 19112 19146 bare > "$DIR/nginx-bare.conf"
nginx -c "$DIR/nginx-bare.conf" & NGINXB_PID=$!; PIDS+=($NGINXB_PID)
haproxy_proxy_conf 19123 19147 19124 bare > "$DIR/haproxy-bare.cfg"
haproxy -db -f "$DIR/haproxy-bare.cfg" 2>>"$DIR/haproxy-bare.err" & HAPROXYB_PID=$!; PIDS+=($HAPROXYB_PID)

# --- Caddy
caddy_proxy_conf 19131 19133 > "$DIR/Caddyfile"
start_caddy() { GOMAXPROCS=2 caddy run --config "$DIR/Caddyfile" --adapter caddyfile >>"$DIR/caddy.log" 2>&1 & CADDY_PID=$!; PIDS+=($CADDY_PID); }
start_caddy

for p in 19101 19102 19103 19104 19152 19161 19162 19111 19112 19121 19122 19123 19131 19133 19141 19142 19143 19146 19147; do wait_port $p; done
sleep 0.5

# Restarts lbd, nginx, HAProxy and Caddy (not the epoll and io_uring-copy lbds, used for L4 only), so that an idle-
# connection scenario starts on fresh processes: memory freed by the previous scenario's
# connections would be reused and hide part of the cost per connection.
running() { [ -r /proc/$1/stat ] && [ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" != Z ]; }
fresh() {
  local p
  for p in $LBD_PID $NGINX_PID $HAPROXY_PID $CADDY_PID; do kill "$p" 2>/dev/null || true; done
  for p in $LBD_PID $NGINX_PID $HAPROXY_PID $CADDY_PID; do
    for _ in $(seq 100); do running "$p" || break; sleep 0.05; done
    running "$p" && kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null || true
  done
  sleep 0.2
  start_lbd; start_nginx; start_haproxy; start_caddy
  for p in 19101 19111 19121 19131 19133 19141 19142 19143; do wait_port $p; done
  sleep 0.5
}

echo "{\"kind\":\"meta\",\"note\":\"One run of bench/compare.sh $QUICK on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%FT%TZ). Origin: lb-bench origin (1 thread). Balancers: lbd $($LBD --version | awk '{print $2}') (2 workers; io_backend auto: the io_uring runtime, L4 copied on readiness; lbd-epoll: the epoll runtime; lbd-uring: io_uring's own L4 reads and writes), nginx $(nginx -v 2>&1 | sed 's|.*/||') (2 workers), HAProxy $(haproxy -v | awk 'NR==1 {print $3}') (2 threads), Caddy $(caddy version | awk '{print $1}') (GOMAXPROCS=2); floor: lb-bench floor (2 threads), the least proxy on tokio for the HTTP/1.1 and HTTP/2-over-TLS scenarios, a yardstick and not a balancer. Every balancer (and the floor) sends the origin the same request: Host as received, plus the headers lbd adds by default, X-Forwarded-For (client appended), X-Forwarded-Proto, X-Forwarded-Host and X-Request-Id (kept or made); nginx-bare and haproxy-bare are those peers as they come, without them (less work than lbd does), for reference and never the best peer. CPU is each balancer's own utime+stime from /proc (with child processes), read before and after the measured run. TLS scenarios use one ECDSA P-256 certificate for every balancer (Caddy is left out of them, except HTTP/3: nginx 1.22 and HAProxy 2.6 from Debian do not serve it). HTTP/3 load: lb-bench with quinn 0.11 or quiche 0.30 as the client stack.\"}" >> "$RAW"

load() { # scenario label port pid args...
  local scenario=$1 label=$2 port=$3 pid=$4; shift 4
  $BENCH load "${SCHEME:-http}://${HOST_:-127.0.0.1}:$port${PATH_:-/}" ${WARM_ARGS:-} -c 16 -n $((N / 20)) >/dev/null   # warm-up
  $BENCH load "${SCHEME:-http}://${HOST_:-127.0.0.1}:$port${PATH_:-/}" "$@" --meter "$pid" --json "$RAW" --label "$label" --scenario "$scenario"
}

# First, while every balancer is fresh: memory freed by earlier load would be reused and hide the cost.
echo "== idle plain connections: resident memory per connection"
for b in "lbd 19101 $LBD_PID" "nginx 19111 $NGINX_PID" "haproxy 19121 $HAPROXY_PID" "caddy 19131 $CADDY_PID"; do
  set -- $b
  $BENCH conns 127.0.0.1:$2 -n "$IDLE" --hold 3 --meter "$3" --json "$RAW" --label "$1" --scenario "Idle plain TCP connections ($IDLE)"
done

echo "== idle TLS and HTTP/2-over-TLS connections: resident memory per connection"
for kind in tls h2tls; do
  fresh
  for b in "lbd 19141 $LBD_PID" "nginx 19142 $NGINX_PID" "haproxy 19143 $HAPROXY_PID"; do
    set -- $b
    $BENCH conns 127.0.0.1:$2 -n "$IDLE_TLS" --kind $kind --hold 3 --meter "$3" --json "$RAW" --label "$1" --scenario "Idle $kind connections ($IDLE_TLS, handshake done)"
  done
done
echo "== idle HTTP/3 connections: resident memory per connection"
fresh
for b in "lbd 19141 $LBD_PID" "caddy 19133 $CADDY_PID"; do
  set -- $b
  $BENCH conns 127.0.0.1:$2 -n "$IDLE_H3" --kind h3 --hold 3 --meter "$3" --json "$RAW" --label "$1" --scenario "Idle HTTP/3 connections ($IDLE_H3, one request done)"
done
# A browser loading a page sends dozens of requests at once, then leaves the connection idle: what
# the burst made a balancer's per-connection state grow to may stay.
echo "== idle connections after a burst of $BURST requests at once: resident memory per connection"
fresh
for b in "lbd 19141 $LBD_PID" "nginx 19142 $NGINX_PID" "haproxy 19143 $HAPROXY_PID"; do
  set -- $b
  $BENCH conns 127.0.0.1:$2 -n "$IDLE_BURST" --kind h2tls --burst "$BURST" --hold 3 --meter "$3" --json "$RAW" --label "$1" --scenario "Idle HTTP/2-over-TLS connections after $BURST requests at once ($IDLE_BURST)"
done
fresh
for b in "lbd 19141 $LBD_PID" "caddy 19133 $CADDY_PID"; do
  set -- $b
  $BENCH conns 127.0.0.1:$2 -n "$IDLE_BURST" --kind h3 --burst "$BURST" --hold 3 --meter "$3" --json "$RAW" --label "$1" --scenario "Idle HTTP/3 connections after $BURST requests at once ($IDLE_BURST)"
done
echo "== HTTP/1.1 keep-alive, closed loop, 64 connections ($ROUNDS rounds; Caddy, at a fifth of the others' rate, once)"
for r in $(seq "$ROUNDS"); do
  peers=("lbd 19101 $LBD_PID" "nginx 19111 $NGINX_PID" "haproxy 19121 $HAPROXY_PID" "floor 19161 $FLOOR_PID" "nginx-bare 19112 $NGINXB_PID" "haproxy-bare 19123 $HAPROXYB_PID")
  [ "$r" = 1 ] && peers+=("caddy 19131 $CADDY_PID")
  for b in "${peers[@]}"; do
    set -- $b; load "HTTP/1.1 keep-alive (64 conns, closed loop)" "$1" "$2" "$3" -c 64 -n "$N"
  done
done

echo "== HTTP/1.1 open loop at $RATE req/s (latency with coordinated-omission correction)"
for b in "lbd 19101 $LBD_PID" "nginx 19111 $NGINX_PID" "haproxy 19121 $HAPROXY_PID" "caddy 19131 $CADDY_PID"; do
  set -- $b; load "HTTP/1.1 open loop ($RATE req/s, 64 conns)" "$1" "$2" "$3" -c 64 --rate "$RATE" -d "$SECS"
done

echo "== HTTP/1.1 over TLS keep-alive, 64 connections"
for b in "lbd 19141 $LBD_PID" "nginx 19142 $NGINX_PID" "haproxy 19143 $HAPROXY_PID"; do
  set -- $b; SCHEME=https load "HTTP/1.1 over TLS keep-alive (64 conns)" "$1" "$2" "$3" -c 64 -n $((N / 2))
done

echo "== HTTP/2 over TLS, 16 connections x 32 streams ($ROUNDS rounds)"
for r in $(seq "$ROUNDS"); do
  for b in "lbd 19141 $LBD_PID" "nginx 19142 $NGINX_PID" "haproxy 19143 $HAPROXY_PID" "floor 19162 $FLOORTLS_PID" "nginx-bare 19146 $NGINXB_PID" "haproxy-bare 19147 $HAPROXYB_PID"; do
    set -- $b; SCHEME=https load "HTTP/2 over TLS (16 conns x 32 streams)" "$1" "$2" "$3" --h2 -c 16 -m 32 -n $((N / 2))
  done
done

# lbd's HTTP/3 CPU per request has a target against its own HTTP/2 figure, which is a median of
# rounds: these run H3_ROUNDS rounds too (Caddy, at a tenth of lbd's rate, once).
echo "== HTTP/3, 16 connections x 32 streams (quinn client, then quiche client; $H3_ROUNDS rounds)"
for r in $(seq "$H3_ROUNDS"); do
  h3=("lbd 19141 $LBD_PID"); [ "$r" = 1 ] && h3+=("caddy 19133 $CADDY_PID")
  for b in "${h3[@]}"; do
    set -- $b; SCHEME=https HOST_=localhost WARM_ARGS=--h3 load "HTTP/3 (16 conns x 32 streams, quinn client)" "$1" "$2" "$3" --h3 -c 16 -m 32 -n $((N / 2))
  done
  for b in "${h3[@]}"; do
    set -- $b; SCHEME=https HOST_=localhost WARM_ARGS=--h3 load "HTTP/3 (16 conns x 32 streams, quiche client)" "$1" "$2" "$3" --h3 --quiche -c 16 -m 32 -n $((N / 4))
  done
done

echo "== full TLS 1.3 handshakes (ECDSA P-256), one request per connection, no resumption"
for b in "lbd 19141 $LBD_PID" "nginx 19142 $NGINX_PID" "haproxy 19143 $HAPROXY_PID"; do
  set -- $b; SCHEME=https load "Full TLS 1.3 handshakes (1 request per connection, 16 clients)" "$1" "$2" "$3" --new-conn -c 16 -n $((N / 40))
done

echo "== L4 TCP forwarding, 64 KiB responses, 16 connections"
for b in "lbd 19102 $LBD_PID" "lbd-epoll 19104 $LBDE_PID" "lbd-uring 19152 $LBDU_PID" "haproxy-tcp 19122 $HAPROXY_PID"; do
  set -- $b; PATH_=/large load "L4 TCP forwarding (64 KiB bodies, 16 conns)" "$1" "$2" "$3" -c 16 -n $((N / 10))
done

echo "== c1m at this host's cap: lbd memory per connection from 1,000 to the fd cap"
CAP=$(( $(ulimit -Hn) - 1000 ))
for n in 1000 5000 10000 $CAP; do
  [ "$QUICK" = "--quick" ] && [ "$n" -gt 5000 ] && continue
  # A fresh lbd each time, so every count starts from the same baseline.
  lbd_conf auto 19105 19106 19107 19145 > "$DIR/lbd-c1m.toml"
  $LBD run --config "$DIR/lbd-c1m.toml" 2>/dev/null & C_PID=$!; wait_port 19105
  $BENCH conns 127.0.0.1:19105 -n "$n" --hold 3 --meter "$C_PID" --json "$RAW" --label "lbd" --scenario "c1m: lbd idle connections up to the fd cap"
  kill "$C_PID"; wait "$C_PID" 2>/dev/null || true
done

$BENCH report --input "$RAW" --out "$OUT"
echo "wrote $OUT/results.md and charts"
