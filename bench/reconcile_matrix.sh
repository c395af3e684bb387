#!/usr/bin/env bash
# The scale benchmark's matrix: bench/reconcile.sh RUNS times for each backlog size and
# shape of history, then the median of each figure per cell, as a Markdown table.
#
# Knobs: SIZES ("250000 1000000"), SHAPES (customers: "2000 20000"), RUNS (3), PAUSE
# (seconds between runs, 20: ClickHouse merges the previous run's parts first; reconcile.sh
# also waits for merges to end), and every knob of bench/reconcile.sh (CACHE_MB, BATCH,
# REPLAY, RESTART, REVLINE_BIN). Each run's output is kept in bench/out/matrix/, and its RSS
# samples beside it (rss-<events>-<customers>-<run>.csv, for bench/plot_rss.py).
# SUMMARY_ONLY=1 prints the table from the runs already there.
# AB="OLD_BINARY NEW_BINARY" compares two builds in one session: each run of each cell runs
# both, alternately (old, new, old, new, …, so a machine that changes speed during the
# session weighs on both alike), into bench/out/matrix/a/ and b/, and one table per build
# is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${SIZES:-250000 1000000}"
SHAPES="${SHAPES:-2000 20000}"
RUNS="${RUNS:-3}"
PAUSE="${PAUSE:-20}"
DIR=bench/out/matrix
read -r -a BINS <<<"${AB:-}"
if [ "${#BINS[@]}" = 0 ]; then SIDES=(.); BINS=("${REVLINE_BIN:-}")
elif [ "${#BINS[@]}" = 2 ]; then SIDES=(a b)
else echo "AB takes two binaries: AB=\"OLD NEW\"" >&2; exit 2; fi
for side in "${SIDES[@]}"; do mkdir -p "$DIR/$side"; done

[ "${SUMMARY_ONLY:-0}" = 1 ] ||
for events in $SIZES; do
  for customers in $SHAPES; do
    for run in $(seq 1 "$RUNS"); do
      for i in "${!SIDES[@]}"; do
        d="$DIR/${SIDES[$i]}"
        out="$d/run-$events-$customers-$run.txt"
        echo "== $events events, $customers customers, run $run of $RUNS ${BINS[$i]}" >&2
        REVLINE_BIN="${BINS[$i]}" EVENTS=$events CUSTOMERS=$customers bench/reconcile.sh >"$out" 2>"$out.log" ||
          { echo "run failed; see $out.log" >&2; tail -20 "$out.log" >&2; exit 1; }
        cat "$out" >&2
        cp bench/out/rss-reconcile.csv "$d/rss-$events-$customers-$run.csv"
        [ ! -f bench/out/rss-replay.csv ] || cp bench/out/rss-replay.csv "$d/rss-replay-$events-$customers-$run.csv"
        sleep "$PAUSE"
      done
    done
  done
done

for i in "${!SIDES[@]}"; do
[ "${#SIDES[@]}" = 1 ] || echo -e "\n${SIDES[$i]}: ${BINS[$i]}"
python3 - "$DIR/${SIDES[$i]}" "$SIZES" "$SHAPES" "$RUNS" <<'PY'
import re, statistics, sys
d, sizes, shapes, runs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
PATTERNS = {
    "ceiling": r"ceiling .*?: ([\d,]+) events/s",
    "rate": r"revline reconcile .*?: ([\d,]+) events/s",
    "rss": r"revline reconcile .*peak RSS (\d+) MB",
    "ratio": r"ratio: ([\d.]+)",
    "cpu_rev": r"CPU per event: revline ([\d.]+) us",
    "cpu_ch": r"ClickHouse ([\d.]+) us with the merges after",
    "start": r"first batch committed ([\d.]+) s",
    "start_rss": r"peak RSS by then (\d+) MB",
    "replay": r"revline replay .*?: ([\d,]+) events/s",
    "replay_rss": r"revline replay .*peak RSS (\d+) MB",
}
def figures(path):
    text = open(path).read()
    out = {}
    for k, p in PATTERNS.items():
        m = re.search(p, text)
        if m:
            out[k] = float(m.group(1).replace(",", ""))
    return out
print("| events | customers | ceiling ev/s | reconcile ev/s | ratio | revline µs/ev | ClickHouse µs/ev | peak RSS MB | restart s | restart RSS MB | replay ev/s | replay/reconcile | replay RSS MB |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for e in sizes:
    for c in shapes:
        rs = [figures(f"{d}/run-{e}-{c}-{i}.txt") for i in range(1, runs + 1)]
        med = lambda k: statistics.median(r[k] for r in rs) if all(k in r for r in rs) else float("nan")
        ratios = [r["replay"] / r["rate"] for r in rs if "replay" in r]
        rr = statistics.median(ratios) if ratios else float("nan")
        print(f"| {int(e):,} | {int(c):,} | {med('ceiling'):,.0f} | {med('rate'):,.0f} | {med('ratio'):.2f} | "
              f"{med('cpu_rev'):.1f} | {med('cpu_ch'):.1f} | {med('rss'):.0f} | {med('start'):.2f} | "
              f"{med('start_rss'):.0f} | {med('replay'):,.0f} | {rr:.2f} | {med('replay_rss'):.0f} |")
print(f"\nmedians of {runs} runs per row; each run's figures are in {d}/run-*.txt")
PY
done
