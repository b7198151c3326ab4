#!/usr/bin/env bash
# HTTP/1.1 keep-alive proxying benchmark, in one run on this machine:
#   origin   nginx returning a 6-byte body (1 worker), 127.0.0.1:18901
#   direct   h2load straight at the origin
#   lbd      h2load through lbd (release build, access log off)
#   nginx    h2load through nginx as a reverse proxy with upstream keep-alive (the peer)
# For each balancer it reads its own CPU time (utime+stime of all its processes) from /proc before
# and after the run and reports CPU-seconds per 10k requests (split into user and kernel time per
# request) and the ratio lbd / nginx.
# Usage: [IO_BACKEND=auto|uring|epoll] bench/h1.sh [requests] [connections]   (defaults 200000, 64)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
C=${2:-64}
ORIGIN=18901 LBD_PORT=18900 LBD_ADMIN=18909 NGINX_PORT=18902

for tool in h2load nginx; do
  if ! command -v $tool >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nghttp2-client nginx-light
  fi
done
cargo build --release -q

# shellcheck source=bench/lib.sh
. bench/lib.sh
scratch bench

nginx_conf() { # $1 name, $2 workers, $3 server block
  cat > "$DIR/$1.conf" <<NGX
worker_processes $2;
daemon off;
pid $DIR/$1.pid;
error_log $DIR/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  $3
}
NGX
}
nginx_conf origin 1 "server { listen 127.0.0.1:$ORIGIN; location / { return 200 'hello\n'; } }"
nginx_conf proxy 2 "upstream o { server 127.0.0.1:$ORIGIN; keepalive 128; }
  server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ''; } }"
cat > "$DIR/lbd.toml" <<TOML
workers = 2
io_backend = "${IO_BACKEND:-auto}"
[admin]
bind = "127.0.0.1:$LBD_ADMIN"
[access_log]
path = "off"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$LBD_PORT"
[[listeners.routes]]
cluster = "origin"
[[clusters]]
name = "origin"
endpoints = ["127.0.0.1:$ORIGIN"]
pool_size = 256
TOML

nginx -c "$DIR/origin.conf" & PIDS+=($!)
nginx -c "$DIR/proxy.conf" & NGINX_PID=$!; PIDS+=($NGINX_PID)
./target/release/lbd run --config "$DIR/lbd.toml" 2>"$DIR/lbd.err" & LBD_PID=$!; PIDS+=($LBD_PID)
for p in $ORIGIN $NGINX_PORT $LBD_PORT; do wait_port $p; done

HZ=$(getconf CLK_TCK)
cpu_ticks() { # "utime stime" summed over a process and its children processes
  local user=0 sys=0 p u s
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r /proc/$p/stat ] || continue
    read -r u s < <(awk '{print $14, $15}' /proc/$p/stat)
    user=$((user + u)); sys=$((sys + s))
  done
  echo "$user $sys"
}
run() { # $1 label, $2 port, $3 pid to meter (or "")
  h2load --h1 -n $((N / 10)) -c "$C" "http://127.0.0.1:$2/" >/dev/null 2>&1   # warm-up
  local u0=0 s0=0 u1=0 s1=0 out
  [ -n "$3" ] && read -r u0 s0 < <(cpu_ticks "$3")
  out=$(h2load --h1 -n "$N" -c "$C" "http://127.0.0.1:$2/")
  [ -n "$3" ] && read -r u1 s1 < <(cpu_ticks "$3")
  local rps ok
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  ok=$(echo "$out" | awk -F'[ ,]+' '/^requests:/ {print $8}')
  local cpu_s per10k split
  cpu_s=$(awk -v t=$((u1 + s1 - u0 - s0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
  per10k=$(awk -v t=$((u1 + s1 - u0 - s0)) -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.3f", t / hz / (n / 10000) }')
  # User and kernel time per request: the kernel's share is the same loopback TCP work for any
  # balancer making the same socket calls; the user share is the balancer's own code.
  split=$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v n="$N" \
    'BEGIN { printf "user %.2f + kernel %.2f us/req", u / hz * 1e6 / n, s / hz * 1e6 / n }')
  printf "%-8s %12s req/s  succeeded %s/%s  balancer CPU %s s  CPU-s per 10k req %s  (%s)\n" "$1" "$rps" "$ok" "$N" "$cpu_s" "$per10k" "$split"
  echo "$per10k" > "$DIR/$1.cpu"
}
echo "h2load --h1 -n $N -c $C, $(nproc) cores, $(date -u +%FT%TZ)"
run direct $ORIGIN ""
run lbd $LBD_PORT $LBD_PID
run nginx $NGINX_PORT $NGINX_PID
awk -v a="$(cat "$DIR/lbd.cpu")" -v b="$(cat "$DIR/nginx.cpu")" 'BEGIN { if (b > 0) printf "lbd CPU per request / nginx CPU per request = %.2f\n", a / b }'
grep -o 'io_backends=[^ ]*' "$DIR/lbd.err" | head -1 || true
