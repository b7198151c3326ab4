#!/usr/bin/env bash
# A/B of lbd builds in one run, for changes whose effect is smaller than this machine's noise
# between runs (an allocator, a patched dependency): each build is measured right after the
# other, round after round, against the same origin and load.
#
#   mem          anonymous resident memory per idle connection (see bench/src/meter.rs), each
#                kind on a freshly started lbd:
#                plain (8,000), tls and h2tls (3,000), h3 (1,000, one request each), and h2tls and
#                h3 after 100 requests at once (300). KINDS="plain h3 ..." picks some.
#   cpu h1|h2|h3|l4  lbd's user and kernel CPU per request (/proc/PID/stat), minor faults per
#                request and the allocator's system calls per request (madvise, munmap, mmap, brk;
#                perf tracepoints), under closed-loop load: HTTP/1.1 64 conns, HTTP/2 over TLS
#                16 x 32, HTTP/3 16 x 32, L4 TCP forwarding of 64 KiB responses 16 conns. Each
#                round starts a fresh lbd and warms it up first.
#
# Each build is LABEL=BINARY, or 'LABEL=VAR=VALUE VAR=VALUE@BINARY' (one quoted argument) to run it
# with those environment variables (an allocator's options, say). Example:
#   cargo build --release && cp target/release/lbd /tmp/lbd-new
#   git stash && cargo build --release && cp target/release/lbd /tmp/lbd-old && git stash pop
#   bench/ab.sh cpu h2 old=/tmp/lbd-old new=/tmp/lbd-new
# ROUNDS (cpu, default 3); IO_BACKEND (auto, uring or epoll; default auto) and PIN_WORKERS (true
# or false; default true), also per build ('epoll=IO_BACKEND=epoll@BINARY auto=IO_BACKEND=auto@BINARY'
# compares runtimes, 'free=PIN_WORKERS=false@BINARY' unpinned workers). lbd's config is
# bench/lib.sh's, as in compare.sh. Every server listens on 127.0.0.1 (ports 19200-19241) and is
# stopped by its PID; every load is bounded in requests.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: bench/ab.sh mem|cpu h1|h2|h3|l4 LABEL=BINARY ...}; shift
if [ "$MODE" = cpu ]; then PROTO=${1:?cpu needs h1, h2, h3 or l4}; shift; fi
[ $# -ge 1 ] || { echo "name at least one build: LABEL=BINARY" >&2; exit 2; }
if [ "$MODE" = cpu ]; then
  command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
fi
cargo build --release -q -p lb-bench
BENCH=./target/release/lb-bench
# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch ab
ORIGIN=19200
make_cert "$DIR"
lbd_conf "${IO_BACKEND:-auto}" 19201 19202 19209 19241 > "$DIR/lbd.toml"
$BENCH origin --listen 127.0.0.1:$ORIGIN --threads 1 2>/dev/null & PIDS+=($!)
wait_port $ORIGIN || exit 1

LBD_PID=
start() { # spec: starts that build of lbd, sets LBD_PID
  local rest=${1#*=} envs=() bin
  bin=${rest##*@}
  if [ "$bin" != "$rest" ]; then read -r -a envs <<<"${rest%@*}"; fi
  [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 1; }
  local conf="$DIR/lbd.toml" e backend=${IO_BACKEND:-auto} pin=${PIN_WORKERS:-}
  for e in "${envs[@]}"; do
    # IO_BACKEND=... or PIN_WORKERS=... in a build's spec: that build runs with its own
    # io_backend or pin_workers.
    case ${e%%=*} in
      IO_BACKEND) backend=${e#*=}; conf="$DIR/lbd-$backend-$pin.toml" ;;
      PIN_WORKERS) pin=${e#*=}; conf="$DIR/lbd-$backend-$pin.toml" ;;
    esac
  done
  [ "$conf" = "$DIR/lbd.toml" ] || PIN_WORKERS=$pin lbd_conf "$backend" 19201 19202 19209 19241 > "$conf"
  env "${envs[@]}" "$bin" run --config "$conf" 2>>"$DIR/lbd.err" & LBD_PID=$!; PIDS+=($LBD_PID)
  wait_port 19241 || { tail -5 "$DIR/lbd.err" >&2; exit 1; }
  sleep 0.3
}
stop() { kill "$LBD_PID"; wait "$LBD_PID" 2>/dev/null || true; }

if [ "$MODE" = mem ]; then
  for kind in ${KINDS:-plain tls h2tls h3 h2tls-burst h3-burst}; do
    case $kind in
      plain) args=(127.0.0.1:19201 -n 8000) ;;
      tls) args=(127.0.0.1:19241 -n 3000 --kind tls) ;;
      h2tls) args=(127.0.0.1:19241 -n 3000 --kind h2tls) ;;
      h3) args=(127.0.0.1:19241 -n 1000 --kind h3) ;;
      h2tls-burst) args=(127.0.0.1:19241 -n 300 --kind h2tls --burst 100) ;;
      h3-burst) args=(127.0.0.1:19241 -n 300 --kind h3 --burst 100) ;;
      *) echo "unknown kind $kind" >&2; exit 2 ;;
    esac
    for spec in "$@"; do
      start "$spec"
      printf '%-12s %-10s ' "$kind" "${spec%%=*}"
      $BENCH conns "${args[@]}" --hold 2 --meter "$LBD_PID" | grep -o "[0-9]* opened, .*"
      stop
    done
  done
  exit 0
fi

case $PROTO in
  h1) URL=http://127.0.0.1:19201/; ARGS=(-c 64); N=100000 ;;
  h2) URL=https://127.0.0.1:19241/; ARGS=(--h2 -c 16 -m 32); N=100000 ;;
  h3) URL=https://localhost:19241/; ARGS=(--h3 -c 16 -m 32); N=50000 ;;
  l4) URL=http://127.0.0.1:19202/large; ARGS=(-c 16); N=20000 ;;
  *) echo "cpu takes h1, h2, h3 or l4" >&2; exit 2 ;;
esac
TCK=$(getconf CLK_TCK)
EVENTS=syscalls:sys_enter_madvise,syscalls:sys_enter_munmap,syscalls:sys_enter_mmap,syscalls:sys_enter_brk,page-faults
for r in $(seq "${ROUNDS:-3}"); do
  for spec in "$@"; do
    start "$spec"
    $BENCH load "$URL" "${ARGS[@]}" -n $((N / 10)) >/dev/null
    read -r u0 s0 < <(awk '{print $14, $15}' /proc/$LBD_PID/stat)
    perf stat -x, -o "$DIR/perf" -p "$LBD_PID" -e "$EVENTS" & PERF=$!
    sleep 0.2
    rate=$($BENCH load "$URL" "${ARGS[@]}" -n "$N" | grep -o "[0-9.]* req/s" | head -1)
    kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
    read -r u1 s1 < <(awk '{print $14, $15}' /proc/$LBD_PID/stat)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$LBD_PID/status)
    calls=$(awk -F, -v n="$N" '/^[0-9]/ { e = $3; sub(/.*sys_enter_/, "", e); printf "%s %.3f  ", e, $1 / n }' "$DIR/perf")
    awk -v l="${spec%%=*}" -v r="$r" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$N" -v t="$TCK" -v rate="$rate" -v rss="$rss" -v c="$calls" \
      'BEGIN { printf "round %d %-10s user %5.2f  kernel %5.2f  total %5.2f µs/req  %s  RSS %d KB  per request: %s\n", r, l, u/t/n*1e6, s/t/n*1e6, (u+s)/t/n*1e6, rate, rss, c }'
    stop
  done
done
