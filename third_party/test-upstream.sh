#!/usr/bin/env bash
# Runs upstream's own unit tests of the patched crates here (quinn-proto: 313 tests, quinn: 22 and 3 ignored)
# against the patched source. The copies in this folder drop their dev-dependencies so the
# workspace does not build them; this puts them back in a scratch copy and runs `cargo test --lib`.
# Called by scripts/test.sh. h2's tests live in a separate crate upstream and are not run here.
set -euo pipefail
cd "$(dirname "$0")"
TMP=$(mktemp -d /tmp/lbd-upstream-tests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for crate in quinn-proto quinn; do
  cp -r "$crate" "$TMP/$crate"
  cat "$crate/upstream-tests.toml" >> "$TMP/$crate/Cargo.toml"
done
# quinn's tests run against the patched quinn-proto too.
printf '\n[patch.crates-io]\nquinn-proto = { path = "../quinn-proto" }\n' >> "$TMP/quinn/Cargo.toml"
# One target folder for both, kept between runs, inside the workspace's.
export CARGO_TARGET_DIR="$PWD/../target/upstream-tests"
for crate in quinn-proto quinn; do
  echo "upstream unit tests: $crate (patched)"
  (cd "$TMP/$crate" && cargo test --lib --quiet)
done
