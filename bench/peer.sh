#!/usr/bin/env bash
# revline ingest side by side with what users would otherwise write (bench/peer/server.js:
# Express + the official `stripe` package's constructEvent + kafkajs, acks=all), both
# producing to the same Tansu broker, in the same run, with the same load generator (wrk)
# and the same kind of signed ~3 KB bodies (each request a distinct event). Prints
# requests/s, p50, p99 and peak RSS for each, and revline's throughput as a multiple of the
# peer's (target >= 10x, at a lower p99).
#
# Knobs: CONNECTIONS (64), DURATION (15 s), WRK_THREADS (2), PER_THREAD (bodies per wrk
# thread), PARTITIONS (6).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. infra/services.sh

# shellcheck source=bench/wrk_lib.sh
. bench/wrk_lib.sh
KPORT=19093
command -v node >/dev/null || { echo "node (20 or later) is needed for the peer" >&2; exit 1; }
install_tansu
(cd bench/peer && npm ci --no-audit --no-fund --silent)
echo "building (release)" >&2
cargo build --release --locked --bin revline >&2

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

KAFKA_HOST=127.0.0.1 KAFKA_PORT=$KPORT start_tansu >"$OUT/tansu-peer.log" 2>&1 & PIDS+=($!)
wait_port 127.0.0.1 $KPORT 30
for t in peer.node peer.revline; do
  "$TANSU_BIN" topic create "$t" --broker "tcp://127.0.0.1:$KPORT" --partitions "$PARTITIONS" >/dev/null
done
: > "$OUT/peer.jsonl"

PORT=18091 KAFKA_BROKERS=127.0.0.1:$KPORT KAFKA_TOPIC=peer.node STRIPE_WEBHOOK_SECRET=$SECRET \
  node bench/peer/server.js 2>"$OUT/peer-node.log" & PIDS+=($!); NODE_PID=$!
wait_http 18091 readyz
run_target node 18091 "$NODE_PID" "$OUT/peer.jsonl"
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true

DATA=$(mktemp -d /tmp/revline-peer-XXXX)
REVLINE_LISTEN=127.0.0.1:18092 REVLINE_DATA_DIR="$DATA" STRIPE_WEBHOOK_SECRET=$SECRET RUST_LOG=warn \
  REVLINE_ADMIN_LISTEN=off REVLINE_KAFKA_BROKERS=127.0.0.1:$KPORT REVLINE_KAFKA_TOPIC=peer.revline \
  target/release/revline ingest 2>"$OUT/peer-revline.log" & PIDS+=($!); REV_PID=$!
wait_http 18092 readyz
run_target revline 18092 "$REV_PID" "$OUT/peer.jsonl"
kill "$REV_PID"; wait "$REV_PID" 2>/dev/null || true
rm -rf "$DATA"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%Y-%m-%d)"
python3 - "$OUT/peer.jsonl" <<'PY'
import json, sys
rows = {r["target"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f"{'target':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>8}{'non-2xx':>9}{'errors':>8}")
for name in ("node", "revline"):
    r = rows[name]
    print(f"{name:<9}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['rss_mb']:>8.1f}{r['non_2xx']:>9}{r['socket_errors']:>8}")
n, r = rows["node"], rows["revline"]
print(f"revline / node: {r['rps'] / n['rps']:.1f}x the requests/s (target >= 10), "
      f"p99 {r['p99_ms']:.1f} ms vs {n['p99_ms']:.1f} ms")
PY
