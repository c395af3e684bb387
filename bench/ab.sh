#!/usr/bin/env bash
# A/B of two revline binaries on the same machine, in the same session: bench/ingest.sh and
# bench/reconcile.sh run alternately for A and B (A, B, A, B, …), RUNS times each, and the
# medians are printed side by side with B's change against A.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY
#
# Knobs: RUNS (3), plus every knob of the two scripts (EVENTS, CUSTOMERS, DURATION, …).
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"; RUNS="${RUNS:-3}"
OUT=bench/out/ab
mkdir -p "$OUT"; : > "$OUT/ingest.jsonl"; : > "$OUT/reconcile.txt"
for i in $(seq 1 "$RUNS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    echo "== run $i, $side: ingest" >&2
    REVLINE_BIN="$bin" bench/ingest.sh > "$OUT/ingest-$side-$i.txt"
    sed "s/^{/{\"side\":\"$side\",/" bench/out/results.jsonl >> "$OUT/ingest.jsonl"
    echo "== run $i, $side: reconcile" >&2
    REVLINE_BIN="$bin" bench/reconcile.sh > "$OUT/reconcile-$side-$i.txt"
    rate=$(sed -n 's/^revline reconcile (Tansu -> facts in ClickHouse): \([0-9,]*\) events\/s.*peak RSS \([0-9]*\) MB$/\1 \2/p' "$OUT/reconcile-$side-$i.txt" | tr -d ,)
    echo "$side $rate" >> "$OUT/reconcile.txt"
  done
done
python3 - "$OUT/ingest.jsonl" "$OUT/reconcile.txt" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(side, target, key):
    return statistics.median(r[key] for r in rows if r["side"] == side and r["target"] == target)
print(f"{'figure':<34}{'A (median)':>12}{'B (median)':>12}{'B/A':>8}")
for target in ("embedded", "kafka"):
    for key, label in (("rps", "req/s"), ("p99_ms", "p99 ms"), ("rss_mb", "RSS MB")):
        a, b = med("A", target, key), med("B", target, key)
        print(f"{'ingest ' + target + ' ' + label:<34}{a:>12.1f}{b:>12.1f}{b / a:>8.2f}")
rec = {"A": [], "B": []}
for line in open(sys.argv[2]):
    side, rate, rss = line.split()
    rec[side].append((float(rate), float(rss)))
for i, label in ((0, "reconcile events/s"), (1, "reconcile peak RSS MB")):
    a = statistics.median(r[i] for r in rec["A"]); b = statistics.median(r[i] for r in rec["B"])
    print(f"{label:<34}{a:>12.1f}{b:>12.1f}{b / a:>8.2f}")
print("runs:", {s: [r[0] for r in v] for s, v in rec.items()})
PY
