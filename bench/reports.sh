#!/usr/bin/env bash
# Reports benchmark: `revline demo`'s history of CUSTOMERS customers over MONTHS months,
# posted to a `revline serve` that reconciles into ClickHouse; then each report's time
# (`revline report <name>`, the CLI a user runs) next to a bare
# `SELECT count(), sum(…) FROM <table> FINAL` scan of the tables that report reads, in the
# same run. Median of RUNS runs each. Target: each report ≤ 3 × its bare scan.
#
# It also measures the webhook's latency while the largest report runs on the admin
# listener (wrk against /webhooks/stripe, with and without a report in flight).
#
# Knobs: CUSTOMERS (20000), MONTHS (24), RUNS (3), WRK_SECS (10).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. infra/services.sh

CUSTOMERS="${CUSTOMERS:-20000}"
MONTHS="${MONTHS:-24}"
RUNS="${RUNS:-3}"
WRK_SECS="${WRK_SECS:-10}"
OUT=bench/out
DB="revline_bench_reports_$$"
DATA="$OUT/reports-data-$$"
LISTEN=127.0.0.1:18280
ADMIN=127.0.0.1:18281
SECRET="whsec_bench_reports_0123456789abcdef"
NOW_AT="2026-11-30T00:00:00Z"
mkdir -p "$OUT"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$DATA"
}
trap cleanup EXIT

if ! clickhouse_up; then
  start_clickhouse >"$OUT/clickhouse.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 60); do clickhouse_up && break; sleep 0.5; done
fi
echo "building (release)" >&2
[ -n "${REVLINE_BIN:-}" ] || cargo build --release --locked --bin revline >&2
BIN="${REVLINE_BIN:-target/release/revline}"

export REVLINE_CLICKHOUSE_URL="$CLICKHOUSE_URL" REVLINE_CLICKHOUSE_DATABASE="$DB" \
  REVLINE_DATA_DIR="$DATA" REVLINE_LISTEN="$LISTEN" REVLINE_ADMIN_LISTEN="$ADMIN" \
  STRIPE_WEBHOOK_SECRET="$SECRET" REVLINE_REPORT_NOW="$NOW_AT" RUST_LOG=warn

"$BIN" serve 2>"$OUT/reports-serve.log" & PIDS+=($!); SERVE=$!
wait_port 127.0.0.1 "${LISTEN##*:}" 30

now() { date +%s.%N; }
ch() { curl -fsS "$CLICKHOUSE_URL/" --data-binary "$1"; }

echo "loading: revline demo --customers $CUSTOMERS --months $MONTHS" >&2
t0=$(now)
"$BIN" demo --customers "$CUSTOMERS" --months "$MONTHS" --seed 1 --wait-secs 7200 >/dev/null 2>"$OUT/reports-demo.log" \
  || { tail -5 "$OUT/reports-demo.log" >&2; exit 1; }
t1=$(now)
events=$(ch "SELECT count() FROM $DB.stripe_events FINAL")
# Let ClickHouse merge what the load left, so that every run meets the same parts.
for t in subscription_items discounts coupons invoices payments refunds disputes balance_transactions; do
  ch "OPTIMIZE TABLE $DB.$t FINAL" >/dev/null
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# A bare scan of the tables a report reads: count and a sum, FINAL, one query per table.
scan() {
  local s=0 t0 t1
  for spec in "$@"; do
    local table=${spec%%:*} column=${spec#*:}
    t0=$(now)
    ch "SELECT count(), sum($column) FROM $DB.$table FINAL WHERE livemode = 0 FORMAT Null" >/dev/null
    t1=$(now)
    s=$(echo "$s + $t1 - $t0" | bc -l)
  done
  echo "$s"
}

report() {
  local t0 t1
  t0=$(now)
  "$BIN" report "$1" --livemode false --format csv >/dev/null 2>>"$OUT/reports-warnings.log"
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

declare -A TABLES=(
  [mrr]="subscription_items:quantity discounts:amount_off coupons:amount_off"
  [mrr-movements]="subscription_items:quantity discounts:amount_off coupons:amount_off"
  [revenue]="invoices:total payments:amount_captured refunds:amount disputes:amount balance_transactions:fee"
  [invoices]="invoices:total"
  [customers]="subscription_items:quantity discounts:amount_off coupons:amount_off invoices:amount_paid payments:amount_captured refunds:amount disputes:amount"
)

printf '\nmachine: %s, %s cores; date %s\n' "$(uname -m)" "$(nproc)" "$(date -u +%F)"
printf 'history: %s customers, %s months, %s events (load + reconcile %.0f s)\n\n' \
  "$CUSTOMERS" "$MONTHS" "$events" "$(echo "$t1 - $t0" | bc -l)"
printf '%-14s %10s %10s %7s\n' report report_s scan_s ratio
for name in mrr mrr-movements revenue invoices customers; do
  # shellcheck disable=SC2086
  s=$(for _ in $(seq "$RUNS"); do scan ${TABLES[$name]}; done | median)
  r=$(for _ in $(seq "$RUNS"); do report "$name"; done | median)
  printf '%-14s %10.3f %10.3f %7.2f\n' "$name" "$r" "$s" "$(echo "$r / $s" | bc -l)"
done

# Webhook latency with and without the largest report in flight on the admin listener.
wrk_run() {
  python3 bench/gen_bodies.py "$SECRET" "$OUT/reports-bodies-$1" 1 400000 "$1" 2>/dev/null
  wrk -t1 -c16 -d"${WRK_SECS}s" --latency -s bench/wrk_replay.lua "http://$LISTEN/webhooks/stripe" \
    -- "$OUT/reports-bodies-$1" | tail -n 1 \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("{:,.0f} req/s, p99 {:.2f} ms, non-2xx {}".format(r["rps"], r["p99_ms"], r["non_2xx"]))'
  rm -rf "$OUT/reports-bodies-$1"
}
if command -v wrk >/dev/null; then
  echo
  echo "webhook alone:                        $(wrk_run alone)"
  ( while kill -0 "$SERVE" 2>/dev/null; do
      curl -fsS "http://$ADMIN/reports/customers?livemode=false&format=csv" >/dev/null || true
    done ) &
  LOOP=$!
  sleep 1
  echo "webhook while 'customers' runs:       $(wrk_run during)"
  kill "$LOOP" 2>/dev/null || true
else
  echo "wrk not installed (apt-get install wrk): webhook latency not measured" >&2
fi
