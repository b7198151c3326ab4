# Shared by the scripts in bench/ (sourced, after `cd` to the repository): a scratch folder, a
# port wait and the test certificate for all; the lbd, nginx and HAProxy configs the benchmarks use.

# A scratch folder $DIR for this run, removed at exit after every process in $PIDS is stopped by
# its PID. $1 names the folder: /tmp/lbd-$1.XXXXXX.
scratch() { DIR=$(mktemp -d "/tmp/lbd-$1.XXXXXX"); PIDS=(); trap cleanup EXIT; }
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$DIR"; }

# Waits for a TCP port on 127.0.0.1 to accept (10 s); fails with a message otherwise.
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; return 1; }

# One ECDSA P-256 certificate for bench.test and localhost: $1/cert.pem and $1/key.pem.
make_cert() {
  openssl req -x509 -nodes -days 2 -subj /CN=bench.test -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -addext subjectAltName=DNS:bench.test,DNS:localhost -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# lbd with an HTTP, a TCP (L4) and an HTTPS (+HTTP/3) listener in front of $ORIGIN, using the
# certificate in $DIR, access log off, idle timeouts long enough to hold idle connections.
# PIN_WORKERS=true|false: sets pin_workers (left out otherwise, so older builds read the config).
lbd_conf() { # $1 backend, $2 http port, $3 tcp port, $4 admin port, $5 https port
  cat <<TOML
workers = 2
io_backend = "$1"
${PIN_WORKERS:+pin_workers = $PIN_WORKERS}
[admin]
bind = "127.0.0.1:$4"
[access_log]
path = "off"
[[listeners]]
name = "http"
bind = "127.0.0.1:$2"
header_read_timeout = "1h"
idle_timeout = "1h"
max_connections = 100000
[[listeners.routes]]
cluster = "origin"
[[listeners]]
name = "tcp"
kind = "tcp"
bind = "127.0.0.1:$3"
cluster = "origin"
[[listeners]]
name = "https"
kind = "https"
bind = "127.0.0.1:$5"
header_read_timeout = "1h"
idle_timeout = "1h"
  [listeners.tls]
  certificates = [{ cert = "$DIR/cert.pem", key = "$DIR/key.pem" }]
  [[listeners.routes]]
  cluster = "origin"
[[clusters]]
name = "origin"
endpoints = ["127.0.0.1:$ORIGIN"]
pool_size = 256
TOML
}

# The peers, configured as lbd_conf's lbd is: two workers, keep-alive to $ORIGIN, the certificate
# in $DIR (HAProxy's as $DIR/haproxy.pem, key appended), and the same request reaching the origin:
# Host as the client sent it, then the forwarding headers lbd adds to every request by default
# (X-Forwarded-For with the client appended, X-Forwarded-Proto, X-Forwarded-Host, and
# X-Request-Id, the client's kept or else a fresh one), written the way each peer's operators
# write them. A last argument `bare` leaves them out, which is each peer's own default: less work
# per request than lbd does (bench/results/README.md says how much).
# bench/tests/peers.rs checks what reaches an origin through each.
nginx_proxy_conf() { # $1 http port, $2 https (HTTP/2) port, [$3 bare]
  local fwd="
  map \$http_x_request_id \$lbd_request_id { '' \$request_id; default \$http_x_request_id; }
  proxy_set_header Host \$http_host;
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto \$scheme;
  proxy_set_header X-Forwarded-Host \$http_host;
  proxy_set_header X-Request-Id \$lbd_request_id;"
  [ "${3:-}" = bare ] && fwd=
  cat <<NGX
worker_processes 2;
worker_rlimit_nofile 40000;
daemon off;
pid $DIR/nginx-$1.pid;
error_log $DIR/nginx-$1.err warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 3600s;
  client_header_timeout 3600s;
  upstream o { server 127.0.0.1:$ORIGIN; keepalive 256; }
  proxy_http_version 1.1;
  proxy_set_header Connection '';$fwd
  server { listen 127.0.0.1:$1;
    location / { proxy_pass http://o; } }
  server { listen 127.0.0.1:$2 ssl http2;
    ssl_certificate $DIR/cert.pem; ssl_certificate_key $DIR/key.pem; ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 256;
    location / { proxy_pass http://o; } }
}
NGX
}

haproxy_proxy_conf() { # $1 http port, $2 https (HTTP/2) port, $3 tcp port, [$4 bare]
  local fwd="
  option forwardfor
  http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }
  http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }"
  local http="$fwd
  http-request set-header X-Forwarded-Proto http" https="$fwd
  http-request set-header X-Forwarded-Proto https"
  [ "${4:-}" = bare ] && { http=; https=; }
  cat <<HAP
global
  nbthread 2
  maxconn 9900
defaults
  mode http
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  timeout http-request 1h
  timeout http-keep-alive 1h
frontend fe
  bind 127.0.0.1:$1$http
  default_backend be
backend be
  http-reuse always
  server o 127.0.0.1:$ORIGIN
frontend fe_tls
  bind 127.0.0.1:$2 ssl crt $DIR/haproxy.pem alpn h2,http/1.1$https
  default_backend be
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:$3
  default_backend be_tcp
backend be_tcp
  mode tcp
  server o 127.0.0.1:$ORIGIN
HAP
}

# Caddy, for the HTTP/1.1 and HTTP/3 scenarios, on any Host: its reverse_proxy adds
# X-Forwarded-For, -Proto and -Host by default, but appends to a client's X-Forwarded-For only
# from a trusted proxy: every address is one here, as lbd appends for any, and -Proto and -Host
# are set again so that a client's own are not trusted. The request id is added as elsewhere.
caddy_proxy_conf() { # $1 http port, $2 https (+HTTP/3) port, on localhost
  cat <<CAD
{
  admin off
  auto_https disable_redirects
  servers {
    protocols h1 h2 h3
    timeouts {
      idle 1h
    }
  }
}
(forward) {
  @fresh not header X-Request-Id *
  request_header @fresh X-Request-Id {http.request.uuid}
  reverse_proxy 127.0.0.1:$ORIGIN {
    trusted_proxies 0.0.0.0/0 ::/0
    header_up X-Forwarded-Proto {scheme}
    header_up X-Forwarded-Host {hostport}
  }
}
http://:$1 {
  bind 127.0.0.1
  import forward
}
# HTTP/3 (and TLS) for the HTTP/3 scenarios only.
https://:$2 {
  bind 127.0.0.1
  tls $DIR/cert.pem $DIR/key.pem
  import forward
}
CAD
}
