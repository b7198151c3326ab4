#!/usr/bin/env bash
# Runs lbd's whole test suite on a fresh machine: installs what the tests use (Debian packages
# via apt-get, Python packages via pip), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
# nginx and Caddy: bench/tests/peers.rs checks the configs the benchmarks run them with.
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
command -v gtlsclient >/dev/null 2>&1 || missing+=(ngtcp2-client)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# quiche (the independent HTTP/3 client stack in bench/) builds BoringSSL with cmake and bindgen.
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  # The tests start their own HAProxy, nginx and Caddy instances; packaged services are not needed.
  $SUDO systemctl stop haproxy nginx caddy >/dev/null 2>&1 || true
fi
if ! python3 -c 'import aiohttp, grpc, aioquic' >/dev/null 2>&1; then
  python3 -m pip install -q -r tests/requirements.txt || python3 -m pip install -q --break-system-packages -r tests/requirements.txt
fi

# A clean clone (CI) gains nothing from incremental caches or full debug info, which are most of
# the disk a debug build takes. Without them the whole run's target folder peaked at 3.1 GB (the
# workspace and the upstream tests' folder); a run out of disk fails to link.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_DEBUG=line-tables-only
  export CARGO_PROFILE_TEST_DEBUG=line-tables-only
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# Upstream's unit tests of the patched quinn, quinn-proto and h3 (third_party/), on the patched source.
third_party/test-upstream.sh
