#!/usr/bin/env bash
# Where a balancer's CPU per request goes, lbd next to the peer its target is set against, under
# the load of compare.sh's scenario: HTTP/1.1 keep-alive (64 connections) against nginx, or
# HTTP/2 over TLS (16 x 32 streams) against HAProxy; then `lb-bench floor`, the least proxy on
# tokio for that scenario (with --tls for h2: rustls and h2 without hyper), which shows what is
# left to win over the kernel's share and the crates'. For each, on a fresh process:
#   - user and kernel CPU per request (/proc/PID/stat, as compare.sh reads it);
#   - system calls per request by name, and context switches per request (perf stat);
#   - a sampled profile (perf record, no call graphs) cut into the kernel and user space, and
#     for lbd and the floor their user space by component: h2, hyper, tokio, TLS (rustls,
#     ring), http and httparse, bytes, jemalloc, memcpy, their own code; then the top
#     user-space symbols.
# Configs are bench/lib.sh's (those compare.sh runs). Every server listens on 127.0.0.1 (ports
# 19500-19543) and is stopped by its PID; every load is bounded in requests.
# Usage: bench/profile.sh h1|h2 [requests]   (default 200000 for h1, 100000 for h2)
# LBD=PATH profiles another lbd binary. Needs perf (apt-get install linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
PROTO=${1:?usage: bench/profile.sh h1|h2 [requests]}
case $PROTO in
  h1) N=${2:-200000}; PEER=nginx ;;
  h2) N=${2:-100000}; PEER=haproxy ;;
  *) echo "profile takes h1 or h2" >&2; exit 2 ;;
esac
for tool in perf $PEER; do command -v $tool >/dev/null || { echo "needs $tool (apt-get install linux-perf nginx-light haproxy)" >&2; exit 1; }; done
if [ -z "${LBD:-}" ]; then cargo build --release -q -p lbd -p lb-bench; LBD=./target/release/lbd; else cargo build --release -q -p lb-bench; fi
BENCH=./target/release/lb-bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch profile
make_cert "$DIR"
cat "$DIR/cert.pem" "$DIR/key.pem" > "$DIR/haproxy.pem"
ORIGIN=19500
$BENCH origin --listen 127.0.0.1:$ORIGIN --threads 1 2>/dev/null & PIDS+=($!)
wait_port $ORIGIN
lbd_conf auto 19501 19502 19509 19541 > "$DIR/lbd.toml"
nginx_proxy_conf 19511 19542 > "$DIR/nginx.conf"
haproxy_proxy_conf 19521 19543 19522 > "$DIR/haproxy.cfg"
FLOOR_TLS=()
if [ "$PROTO" = h1 ]; then
  ARGS=(-c 64); LBD_URL=http://127.0.0.1:19501/; PEER_URL=http://127.0.0.1:19511/; FLOOR_URL=http://127.0.0.1:19531/
else
  ARGS=(--h2 -c 16 -m 32); LBD_URL=https://127.0.0.1:19541/; PEER_URL=https://127.0.0.1:19543/; FLOOR_URL=https://127.0.0.1:19531/
  FLOOR_TLS=(--tls "$DIR/cert.pem" "$DIR/key.pem")
fi

PID=
start() { # $1 lbd|nginx|haproxy: starts it, sets PID
  case $1 in
    lbd) $LBD run --config "$DIR/lbd.toml" 2>>"$DIR/lbd.err" & PID=$!; wait_port 19541 ;;
    nginx) nginx -c "$DIR/nginx.conf" & PID=$!; wait_port 19511 ;;
    haproxy) haproxy -db -f "$DIR/haproxy.cfg" 2>>"$DIR/haproxy.err" & PID=$!; wait_port 19543 ;;
    floor) $BENCH floor --listen 127.0.0.1:19531 --backend 127.0.0.1:$ORIGIN ${FLOOR_TLS[@]+"${FLOOR_TLS[@]}"} 2>/dev/null & PID=$!; wait_port 19531 ;;
  esac
  PIDS+=($PID)
  sleep 0.3
}
pids_of() { local p=$1 c; for c in $(pgrep -P "$1" || true); do p="$p,$c"; done; echo "$p"; }
ticks() { local u=0 s=0 p; for p in $1 $(pgrep -P "$1" || true); do read -r a b < <(awk '{print $14, $15}' /proc/$p/stat); u=$((u + a)); s=$((s + b)); done; echo "$u $s"; }
EVENTS=context-switches,raw_syscalls:sys_enter
for c in read readv recvfrom recvmsg write writev sendto sendmsg epoll_wait epoll_pwait io_uring_enter futex; do
  EVENTS="$EVENTS,syscalls:sys_enter_$c"
done
TCK=$(getconf CLK_TCK)

profile() { # $1 name, $2 url
  start "$1"
  $BENCH load "$2" "${ARGS[@]}" -n $((N / 10)) >/dev/null
  # CPU per request, with nothing else attached.
  read -r u0 s0 < <(ticks $PID)
  local rate
  rate=$($BENCH load "$2" "${ARGS[@]}" -n "$N" | grep -o "[0-9.]* req/s" | head -1)
  read -r u1 s1 < <(ticks $PID)
  echo "== $1: $rate"
  awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$N" -v t="$TCK" \
    'BEGIN { printf "CPU per request: user %.2f + kernel %.2f = %.2f us\n", u/t/n*1e6, s/t/n*1e6, (u+s)/t/n*1e6 }'
  # System calls and context switches per request.
  perf stat -x, -o "$DIR/stat" -e "$EVENTS" -p "$(pids_of $PID)" & local perf=$!
  sleep 0.3
  $BENCH load "$2" "${ARGS[@]}" -n "$N" >/dev/null
  kill -INT $perf; wait $perf 2>/dev/null || true
  awk -F, -v n="$N" '/^[0-9]/ { e = $3; sub(/.*sys_enter_/, "", e); sub(/raw_syscalls:sys_enter/, "all system calls", e); if ($1 / n >= 0.005) printf "%s %.2f, ", e, $1 / n }
    END { print "per request" }' "$DIR/stat"
  # Where the samples fall.
  perf record -q -F 2000 -o "$DIR/perf.$1" -p "$(pids_of $PID)" 2>/dev/null & perf=$!
  sleep 0.3
  $BENCH load "$2" "${ARGS[@]}" -n "$N" >/dev/null
  kill -INT $perf; wait $perf 2>/dev/null || true
  perf report -i "$DIR/perf.$1" --no-children --sort dso,sym -q -g none 2>/dev/null | awk -v lbd="$([ "$1" = lbd ] || [ "$1" = floor ] && echo 1)" '
    NF >= 4 {
      pct = $1; sub("%", "", pct); dso = $2; $1 = ""; $2 = ""; $3 = ""; sym = $0; sub(/^ +/, "", sym)
      if (dso ~ /kernel/) c = "kernel"
      else if (sym ~ /memmove|memcpy|memset/) c = "memcpy/memset"
      else if (!lbd) c = "user space"
      else if (dso ~ /libc/) c = "libc (system call wrappers)"
      else if (dso ~ /vdso/) c = "clock (vdso)"
      else if (sym ~ /(^|[<(, ])h2::/) c = "h2"
      else if (sym ~ /hyper::/) c = "hyper"
      else if (sym ~ /rustls|ring_core|ring::|aes_|gcm_|_aesni/) c = "TLS (rustls, ring)"
      else if (sym ~ /lb_tcp|lb_core|lb_tls|lb_quic|lbd::|lb_bench::floor/) c = "own code"
      else if (sym ~ /tokio|mio::/) c = "tokio"
      else if (sym ~ /rjem|jemalloc|rallocx/) c = "jemalloc"
      else if (sym ~ /http::|httparse/) c = "http, httparse"
      else if (sym ~ /bytes::/) c = "bytes"
      else c = "other"
      share[c] += pct
      if (dso !~ /kernel/ && n < 12) { top[++n] = sprintf("  %5.2f%%  %s", pct, substr(sym, 1, 110)) }
    }
    END {
      for (c in share) printf "%6.1f%%  %s\n", share[c], c | "sort -rn"
      close("sort -rn")
      print "top user-space symbols:"
      for (i = 1; i <= n; i++) print top[i]
    }'
  kill "$PID"; wait "$PID" 2>/dev/null || true
}

profile lbd "$LBD_URL"
profile "$PEER" "$PEER_URL"
profile floor "$FLOOR_URL"
