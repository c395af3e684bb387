#!/usr/bin/env bash
# Ingest benchmark: the same signed ~3 KB Stripe events, the same concurrency and the same
# load generator (wrk, from Debian's packages) against
#   (a) a bare actix-web handler that answers 200 (ingest/examples/bare_server.rs),
#   (b) revline ingest on the embedded log,
#   (c) revline ingest on Kafka (a Tansu broker on loopback, in-memory storage).
# Every request carries a distinct event id, signed just before the run. Prints requests/s,
# p50/p99 latency, peak RSS per target and the ratios b/a and c/a.
#
# Knobs: CONNECTIONS (64), DURATION (15 s), WRK_THREADS (2), PER_THREAD (bodies per wrk
# thread; enough that none repeats), PARTITIONS (6), REVLINE_BIN (a given revline binary
# instead of this tree's release build, for A/B comparisons; bench/ab.sh uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. infra/services.sh

# shellcheck source=bench/wrk_lib.sh
. bench/wrk_lib.sh
BENCH_KAFKA_PORT=19092
install_tansu

echo "building (release)" >&2
[ -n "${REVLINE_BIN:-}" ] || cargo build --release --locked --bin revline
cargo build --release --locked -p ingest --example bare_server
BIN="${REVLINE_BIN:-target/release/revline}"
BARE=target/release/examples/bare_server

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

: > "$OUT/results.jsonl"

# (a) bare actix-web
$BARE 127.0.0.1:18080 & PIDS+=($!); BARE_PID=$!
sleep 0.5
run_target bare 18080 "$BARE_PID" "$OUT/results.jsonl"
kill "$BARE_PID"; wait "$BARE_PID" 2>/dev/null || true

# (b) revline, embedded log
DATA=$(mktemp -d /tmp/revline-bench-XXXX)
REVLINE_LISTEN=127.0.0.1:18081 REVLINE_DATA_DIR="$DATA" STRIPE_WEBHOOK_SECRET=$SECRET RUST_LOG=warn \
  $BIN ingest 2>"$OUT/embedded.log" & PIDS+=($!); EMB_PID=$!
wait_http 18081 readyz
run_target embedded 18081 "$EMB_PID" "$OUT/results.jsonl"
kill "$EMB_PID"; wait "$EMB_PID" 2>/dev/null || true
STORED=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$DATA/events.sqlite")
echo "embedded log holds $STORED events" >&2
rm -rf "$DATA"

# (c) revline, Kafka (Tansu)
KAFKA_HOST=127.0.0.1 KAFKA_PORT=$BENCH_KAFKA_PORT start_tansu >"$OUT/tansu.log" 2>&1 & PIDS+=($!); TANSU_PID=$!
wait_port 127.0.0.1 $BENCH_KAFKA_PORT 30
"$TANSU_BIN" topic create bench.events --broker "tcp://127.0.0.1:$BENCH_KAFKA_PORT" --partitions "$PARTITIONS" >/dev/null
DATA=$(mktemp -d /tmp/revline-bench-XXXX)
REVLINE_LISTEN=127.0.0.1:18082 REVLINE_DATA_DIR="$DATA" STRIPE_WEBHOOK_SECRET=$SECRET RUST_LOG=warn \
  REVLINE_KAFKA_BROKERS=127.0.0.1:$BENCH_KAFKA_PORT REVLINE_KAFKA_TOPIC=bench.events \
  $BIN ingest 2>"$OUT/kafka.log" & PIDS+=($!); KAFKA_PID=$!
wait_http 18082 readyz
run_target kafka 18082 "$KAFKA_PID" "$OUT/results.jsonl"
echo "tansu peak RSS: $(peak_rss_mb "$TANSU_PID") MB" >&2
kill "$KAFKA_PID"; wait "$KAFKA_PID" 2>/dev/null || true
rm -rf "$DATA"

python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows = {r["target"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f"{'target':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>8}{'non-2xx':>9}{'repeats':>9}")
for name in ("bare", "embedded", "kafka"):
    r = rows[name]
    print(f"{name:<10}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['rss_mb']:>8.1f}{r['non_2xx']:>9}{r['wrapped']:>9}")
a = rows["bare"]["rps"]
print(f"b/a = {rows['embedded']['rps'] / a:.2f} (target >= 0.5)   c/a = {rows['kafka']['rps'] / a:.2f} (target >= 0.25)")
PY
