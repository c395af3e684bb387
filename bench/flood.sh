#!/usr/bin/env bash
# A flood of unsigned requests (64 connections as fast as they go for 10 s) against
# `revline serve` while 100 valid events are posted at 10 per second: prints how many
# flood requests were refused and the valid events' p50, p99 and worst latency. The test
# (tests/tests/bad_input_e2e.rs) asserts that every valid event got 200 and was stored and
# that nothing of the flood was; this runs it against a release build and shows its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%Y-%m-%d)"
cargo build --release --locked --bin revline >&2
# The server is the release build; the test (the two clients) is built as the tests are.
REVLINE_BIN="$PWD/target/release/revline" cargo nextest run --locked -p e2e --test bad_input_e2e --no-capture \
  -E 'test(a_flood_of_unsigned_requests)' 2>&1 | grep -E "^flood:|PASS|FAIL"
