#!/usr/bin/env bash
# Runs upstream's own unit tests of the patched crates here against the patched source: quinn-proto
# (313 and the patch's 3), quinn (22, 3 ignored), h3 (227 and the patch's 5; they run HTTP/3 over
# the patched quinn), h2 (61 of its unit tests in src/, 1 ignored, and the patch's 2; its hpack
# fuzz and fixture suites need data the published crate does not ship, and its integration tests
# live in a separate crate upstream). The copies in this folder drop their dev-dependencies so the
# workspace does not build them; this puts them back in a scratch copy and runs `cargo test --lib`.
# Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")"
TMP=$(mktemp -d /tmp/lbd-upstream-tests.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for crate in quinn-proto quinn h3 h2; do
  cp -r "$crate" "$TMP/$crate"
  cat "$crate/upstream-tests.toml" >> "$TMP/$crate/Cargo.toml"
done
# See above: without quickcheck and the hpack-test-case fixtures.
: > "$TMP/h2/src/hpack/test/mod.rs"
# h3's tests compile in h3-quinn's source from next to h3 (as in their repository): the h3-quinn
# release the workspace uses.
H3_QUINN=$(cd .. && cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "h3-quinn").rsplit("/", 1)[0])')
cp -r "$H3_QUINN" "$TMP/h3-quinn"
# quinn's tests run against the patched quinn-proto, h3's against both.
printf '\n[patch.crates-io]\nquinn-proto = { path = "../quinn-proto" }\n' >> "$TMP/quinn/Cargo.toml"
printf '\n[patch.crates-io]\nquinn = { path = "../quinn" }\nquinn-proto = { path = "../quinn-proto" }\n' >> "$TMP/h3/Cargo.toml"
# One target folder for all, kept between runs, inside the workspace's.
export CARGO_TARGET_DIR="$PWD/../target/upstream-tests"
for crate in quinn-proto quinn h3 h2; do
  echo "upstream unit tests: $crate (patched)"
  features=()
  # h3's tests use the API behind this feature.
  [ "$crate" = h3 ] && features=(--features i-implement-a-third-party-backend-and-opt-into-breaking-changes)
  (cd "$TMP/$crate" && cargo test --lib "${features[@]}" --quiet)
done
