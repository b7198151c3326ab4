#!/usr/bin/env bash
# Applies kernel-tuning/99-lbd.conf to the running kernel and installs it for boot.
# Idempotent: running it again changes nothing. Knobs the kernel does not have (e.g. conntrack
# when the module is not loaded) are reported and skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "apply.sh: run as root" >&2; exit 1; }
install -m 0644 "$here/99-lbd.conf" /etc/sysctl.d/99-lbd.conf
while IFS='=' read -r key value; do
  key=$(echo "$key" | xargs); value=$(echo "$value" | xargs)
  case "$key" in ''|\#*) continue ;; esac
  path="/proc/sys/${key//.//}"
  if [ ! -w "$path" ]; then echo "skip $key (not available here)"; continue; fi
  current=$(xargs < "$path")
  if [ "$current" = "$value" ]; then continue; fi
  if echo "$value" > "$path" 2>/dev/null; then echo "set  $key = $value (was $current)"; else echo "fail $key = $value"; fi
done < "$here/99-lbd.conf"
echo "done; raise the lbd service's LimitNOFILE (systemd) to at least 1048576 as well"
