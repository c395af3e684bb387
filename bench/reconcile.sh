#!/usr/bin/env bash
# Reconcile benchmark: a backlog of realistic events in Tansu, reconciled by one
# `revline reconcile` into ClickHouse; throughput (events/s until every event's facts are
# written) and peak RSS, against the ceiling of inserting the same raw events into a
# ClickHouse table with FORMAT JSONEachRow over HTTP, in the same run.
#
# Knobs: EVENTS (200000), CUSTOMERS (2000; more events = more months, not more customers),
# PARTITIONS (6), BATCH (2000 events per reconcile batch), REPLAY (1: afterwards, stop the
# consumer and time `revline replay` of the same events from stripe_events, with its peak
# RSS; 0 to skip), RESTART (1: after the consumer caught up, stop it, append BATCH more
# events and time a new consumer of the same group from its start to its first committed
# batch, with the whole history behind it; 0 to skip). CACHE_MB sets
# REVLINE_RECONCILE_STATE_CACHE_MB (default: revline's).
# LOG sets the reconcile process's RUST_LOG (warn), e.g. LOG=warn,reconcile=debug.
# CPU per event: revline's own CPU time (utime + stime from /proc) over the events, and
# ClickHouse's from revline's start until its merges are done after the last event (the
# parts an insert makes are merged later; that work is the insert's too), in microseconds.
# Before the ceiling, the script waits until ClickHouse has no merge running, so the
# ceiling and revline start from an idle server.
# CLICKHOUSE (private): a ClickHouse of the benchmark's own with its data in memory
# (/dev/shm), on ports 18123/19000, removed at the end. On a disk, every part an insert makes
# is a few files, and ext4's inode allocator slows down as parts are created and dropped
# (`recently_deleted` in `ext4_create`): on this machine that tripled ClickHouse's CPU per
# event over an afternoon of runs. `CLICKHOUSE=shared` uses the server at $CLICKHOUSE_URL.
# Resident memory is sampled every 2 s into $OUT/rss-reconcile.csv and rss-replay.csv, and
# every 50 ms of the restart into rss-restart.csv (seconds, MB); bench/plot_rss.py draws them.
# rss-reconcile.csv also has the matcher's own estimate of its state (state_mb, from the
# revline_reconcile_state_bytes gauge), to tell the state from everything else.
# KEEP_DB=1 with CLICKHOUSE=shared keeps the warehouse's database at the end (its name is
# printed), to study its tables afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. infra/services.sh

EVENTS="${EVENTS:-200000}"
CUSTOMERS="${CUSTOMERS:-2000}"
PARTITIONS="${PARTITIONS:-6}"
BATCH="${BATCH:-2000}"
REPLAY="${REPLAY:-1}"
if [ -n "${CACHE_MB:-}" ]; then export REVLINE_RECONCILE_STATE_CACHE_MB="$CACHE_MB"; fi
PORT=19094
ADMIN_PORT=19097
OUT=bench/out
DB="revline_bench_$$"
TOPIC="bench.reconcile.$$"
mkdir -p "$OUT"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP_DB:-0}" = 1 ] && [ "${CLICKHOUSE:-private}" = shared ]; then
    echo "kept database $DB on $CLICKHOUSE_URL" >&2
  else
    curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  fi
  [ -z "${CH_DIR:-}" ] || rm -rf "$CH_DIR"
}
trap cleanup EXIT

install_tansu
CH_PID=""
if [ "${CLICKHOUSE:-private}" = private ]; then
  CH_DIR=$(mktemp -d /dev/shm/revline-bench-ch.XXXXXX)
  CLICKHOUSE_URL=http://127.0.0.1:18123
  clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
    --http_port=18123 --tcp_port=19000 --interserver_http_port=19009 --listen_host=127.0.0.1 \
    --path="$CH_DIR/data/" --tmp_path="$CH_DIR/tmp/" --user_files_path="$CH_DIR/user_files/" \
    --format_schema_path="$CH_DIR/format_schemas/" \
    --logger.log="$CH_DIR/server.log" --logger.errorlog="$CH_DIR/server.err.log" \
    >"$OUT/clickhouse.log" 2>&1 & CH_PID=$!; PIDS+=($CH_PID)
  for _ in $(seq 1 60); do clickhouse_up && break; sleep 0.5; done
  clickhouse_up || { echo "the benchmark's ClickHouse did not start:" >&2; tail "$CH_DIR/server.err.log" >&2; exit 1; }
elif ! clickhouse_up; then
  start_clickhouse >"$OUT/clickhouse.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 60); do clickhouse_up && break; sleep 0.5; done
fi
echo "building (release)" >&2
[ -n "${REVLINE_BIN:-}" ] || cargo build --release --locked --bin revline >&2
cargo build --release --locked -p testkit --example backlog >&2

KAFKA_PORT=$PORT start_tansu >"$OUT/tansu-reconcile.log" 2>&1 & PIDS+=($!)
wait_port 127.0.0.1 $PORT 30
"$TANSU_BIN" topic create "$TOPIC" --broker "tcp://127.0.0.1:$PORT" --partitions "$PARTITIONS" >/dev/null
"$TANSU_BIN" topic create "$TOPIC.dlq" --broker "tcp://127.0.0.1:$PORT" --partitions 1 >/dev/null

echo "producing $EVENTS events to Tansu" >&2
target/release/examples/backlog "127.0.0.1:$PORT" "$TOPIC" "$EVENTS" "$CUSTOMERS" "$OUT/backlog.jsonl"

ch() { curl -fsS "$CLICKHOUSE_URL/" --data-binary "$1"; }
now() { date +%s.%N; }
# CPU seconds (user + system) a process has used; 0 when it is gone.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
[ -n "$CH_PID" ] || CH_PID=$(pgrep -o -x clickhouse-serv || pgrep -o -f clickhouse-server || echo 0)
# Previous runs' databases and their merges would share the ceiling's and revline's cores.
for db in $(ch "SELECT name FROM system.databases WHERE name LIKE 'revline_bench_%'"); do
  ch "DROP DATABASE IF EXISTS $db" >/dev/null
done
merges_done() {
  for _ in $(seq 1 240); do
    [ "$(ch 'SELECT count() FROM system.merges')" = 0 ] && return
    sleep 0.5
  done
  echo "ClickHouse still merging after 120 s" >&2
}
merges_done

# Ceiling: the same raw events, one HTTP INSERT … FORMAT JSONEachRow.
ch "CREATE DATABASE IF NOT EXISTS $DB"
ch "CREATE TABLE $DB.raw_ceiling (id String, event_type Nullable(String), received_at_ms Int64, payload String) ENGINE = MergeTree ORDER BY id"
t0=$(now); ch0=$(cpu_s "$CH_PID")
# Streamed from the file (-T): --data-binary would read it all into memory first.
curl -fsS -X POST -T "$OUT/backlog.jsonl" "$CLICKHOUSE_URL/?query=INSERT%20INTO%20$DB.raw_ceiling%20FORMAT%20JSONEachRow"
t1=$(now)
ceiling_rows=$(ch "SELECT count() FROM $DB.raw_ceiling")
ch1=$(cpu_s "$CH_PID")
merges_done

# revline reconcile from the start of the topic.
start_reconcile() {
  REVLINE_LISTEN=127.0.0.1:0 REVLINE_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT REVLINE_DATA_DIR="$OUT/reconcile-data" RUST_LOG="${LOG:-warn}" \
  REVLINE_KAFKA_BROKERS=127.0.0.1:$PORT REVLINE_KAFKA_TOPIC="$TOPIC" REVLINE_KAFKA_DLQ_TOPIC="$TOPIC.dlq" \
  REVLINE_KAFKA_GROUP_ID="bench-$$" REVLINE_CLICKHOUSE_URL="$CLICKHOUSE_URL" REVLINE_CLICKHOUSE_DATABASE="$DB" \
  REVLINE_RECONCILE_BATCH_EVENTS="$BATCH" \
    "${REVLINE_BIN:-target/release/revline}" reconcile 2>"$1" & PIDS+=($!); REC=$!
}
t2=$(now); ch2=$(cpu_s "$CH_PID")
start_reconcile "$OUT/reconcile.log"
rss=0
first=""
last_sample=0
echo "seconds,rss_mb,state_mb" >"$OUT/rss-reconcile.csv"
while :; do
  n=$(ch "SELECT count() FROM $DB.stripe_events" 2>/dev/null || echo 0)
  r=$(awk '/VmHWM/ {print $2}' "/proc/$REC/status" 2>/dev/null || echo 0)
  [ "${r:-0}" -gt "$rss" ] && rss=$r
  [ -z "$first" ] && [ "${n:-0}" -gt 0 ] && first=$(now)
  elapsed=$(python3 -c "import sys; print(int(float(sys.argv[1]) - float(sys.argv[2])))" "$(now)" "$t2")
  if [ "$elapsed" -ge "$last_sample" ]; then
    cur=$(awk '/VmRSS/ {print $2}' "/proc/$REC/status" 2>/dev/null || echo 0)
    state=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null | awk '$1 == "revline_reconcile_state_bytes" {printf "%.0f", $2 / 1048576}')
    echo "$elapsed,$(( ${cur:-0} / 1024 )),${state:-}" >>"$OUT/rss-reconcile.csv"
    last_sample=$(( elapsed + 2 ))
  fi
  if [ "${n:-0}" -ge "$EVENTS" ]; then rec_cpu=$(cpu_s "$REC"); break; fi
  kill -0 "$REC" 2>/dev/null || { echo "reconcile died:" >&2; tail -20 "$OUT/reconcile.log" >&2; exit 1; }
  sleep 0.5
done
t3=$(now); ch3run=$(cpu_s "$CH_PID")
# One writer of matcher state: the consumer stops before the restart and the replay.
kill "$REC" 2>/dev/null || true
wait "$REC" 2>/dev/null || true
merges_done
ch3=$(cpu_s "$CH_PID")
restart_line=""
if [ "${RESTART:-1}" = 1 ]; then
  # BATCH more events (the backlog's first ones again: duplicates, which a batch still
  # reads, matches against the state and commits), then a new member of the same group.
  target/release/examples/backlog "127.0.0.1:$PORT" "$TOPIC" "$BATCH" "$CUSTOMERS" /dev/null >/dev/null
  t6=$(now)
  start_reconcile "$OUT/reconcile-restart.log"
  batches() {
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null |
      awk '/^revline_reconcile_batch_events_count/ {print $2}' || true
  }
  rrss0=0
  echo "seconds,rss_mb" >"$OUT/rss-restart.csv"
  until [ "$(batches)" -ge 1 ] 2>/dev/null; do
    kill -0 "$REC" 2>/dev/null || { echo "restarted reconcile died:" >&2; tail -20 "$OUT/reconcile-restart.log" >&2; exit 1; }
    r=$(awk '/VmHWM/ {print $2}' "/proc/$REC/status" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$rrss0" ] && rrss0=$r
    cur=$(awk '/VmRSS/ {print $2}' "/proc/$REC/status" 2>/dev/null || echo 0)
    echo "$(awk -v a="$(now)" -v b="$t6" 'BEGIN {printf "%.2f", a - b}'),$(( ${cur:-0} / 1024 ))" >>"$OUT/rss-restart.csv"
    sleep 0.05
  done
  t7=$(now)
  r=$(awk '/VmHWM/ {print $2}' "/proc/$REC/status" 2>/dev/null || echo 0)
  [ "${r:-0}" -gt "$rrss0" ] && rrss0=$r
  state_mb=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null |
    awk '/^revline_reconcile_state_bytes/ {printf "%.0f", $2 / 1048576}' || true)
  kill "$REC" 2>/dev/null || true
  wait "$REC" 2>/dev/null || true
  restart_line=$(python3 -c "import sys; t6,t7,r=float(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]); print(f'restart with {int(sys.argv[4]):,} events of history: first batch committed {t7-t6:.2f} s after the process started (polled every 50 ms), peak RSS by then {r/1024:.0f} MB, matcher state {sys.argv[5]} MB (its own estimate)')" "$t6" "$t7" "$rrss0" "$EVENTS" "${state_mb:-?}")
fi
replay_line=""
if [ "$REPLAY" = 1 ]; then
  t4=$(now)
  REVLINE_DATA_DIR="$OUT/replay-data" RUST_LOG=warn \
  REVLINE_CLICKHOUSE_URL="$CLICKHOUSE_URL" REVLINE_CLICKHOUSE_DATABASE="$DB" \
    "${REVLINE_BIN:-target/release/revline}" replay --restart >"$OUT/replay.out" 2>"$OUT/replay.log" & REP=$!
  rrss=0
  ticks=0
  echo "seconds,rss_mb" >"$OUT/rss-replay.csv"
  while kill -0 "$REP" 2>/dev/null; do
    r=$(awk '/VmHWM/ {print $2}' "/proc/$REP/status" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$rrss" ] && rrss=$r
    if [ $(( ticks % 10 )) = 0 ]; then
      cur=$(awk '/VmRSS/ {print $2}' "/proc/$REP/status" 2>/dev/null || echo 0)
      echo "$(( ticks / 5 )),$(( ${cur:-0} / 1024 ))" >>"$OUT/rss-replay.csv"
    fi
    ticks=$(( ticks + 1 ))
    sleep 0.2
  done
  wait "$REP" || { echo "replay failed:" >&2; tail -20 "$OUT/replay.log" >&2; exit 1; }
  t5=$(now)
  replay_line=$(python3 -c "import sys; e,t4,t5,r=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),int(sys.argv[4]); print(f'revline replay (stripe_events -> facts, ClickHouse): {e/(t5-t4):,.0f} events/s ({t5-t4:.1f} s, including the state load), peak RSS {r/1024:.0f} MB')" "$EVENTS" "$t4" "$t5" "$rrss")
fi
facts=$(ch "SELECT sum(c) FROM (SELECT count() AS c FROM $DB.invoices FINAL UNION ALL SELECT count() FROM $DB.invoice_lines FINAL UNION ALL SELECT count() FROM $DB.payments FINAL UNION ALL SELECT count() FROM $DB.subscription_items FINAL UNION ALL SELECT count() FROM $DB.refunds FINAL UNION ALL SELECT count() FROM $DB.invoice_history FINAL)")

python3 - "$EVENTS" "$ceiling_rows" "$t0" "$t1" "$t2" "$t3" "$rss" "$facts" "$first" \
  "$rec_cpu" "$ch0" "$ch1" "$ch2" "$ch3" "$ch3run" <<'PY'
import sys
events, ceiling_rows = int(sys.argv[1]), int(sys.argv[2])
t0, t1, t2, t3 = map(float, sys.argv[3:7])
rss_mb, facts = int(sys.argv[7]) / 1024, int(sys.argv[8])
first = float(sys.argv[9])
rec_cpu, ch0, ch1, ch2, ch3, ch3run = map(float, sys.argv[10:16])
ceiling = ceiling_rows / (t1 - t0)
rec = events / (t3 - t2)
print(f"events: {events}  fact rows (deduplicated): {facts}")
print(f"ceiling (JSONEachRow insert of the raw events): {ceiling:,.0f} events/s ({t1 - t0:.1f} s)")
print(f"revline reconcile (Tansu -> facts in ClickHouse): {rec:,.0f} events/s ({t3 - t2:.1f} s), peak RSS {rss_mb:.0f} MB")
print(f"ratio: {rec / ceiling:.2f} (target >= 0.25)")
print(f"CPU per event: revline {rec_cpu / events * 1e6:.1f} us, ClickHouse {(ch3 - ch2) / events * 1e6:.1f} us with the merges after, {(ch3run - ch2) / events * 1e6:.1f} us during the run (ceiling: ClickHouse {(ch1 - ch0) / ceiling_rows * 1e6:.1f} us)")
print(f"start: first facts visible {first - t2:.1f} s after the process started (polled every 0.5 s)")
PY
[ -z "$restart_line" ] || echo "$restart_line"
[ -z "$replay_line" ] || echo "$replay_line"
