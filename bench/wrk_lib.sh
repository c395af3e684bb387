# What the HTTP load benchmarks (bench/ingest.sh, bench/peer.sh) share: their knobs, wrk,
# and helpers. Sourced from the repository's root.

CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-15}"
WRK_THREADS="${WRK_THREADS:-2}"
PER_THREAD="${PER_THREAD:-300000}"
PARTITIONS="${PARTITIONS:-6}"
SECRET="whsec_bench_secret"
OUT="bench/out"
mkdir -p "$OUT"

command -v wrk >/dev/null || { s=""; [ "$(id -u)" = 0 ] || s=sudo; $s apt-get install -y -qq wrk >/dev/null; }

# Peak resident memory of a process, in MB.
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# wait_http PORT PATH: until http://127.0.0.1:PORT/PATH answers 2xx (10 s at most).
wait_http() {
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$1/$2" && return 0; sleep 0.1; done
  echo "server on port $1 did not come up" >&2; return 1
}

# run_target NAME PORT PID RESULTS: fresh signed bodies, one wrk run against the webhook
# path, and one JSON line (wrk's figures and the peak RSS of PID) appended to RESULTS.
run_target() {
  local name=$1 port=$2 pid=$3 results=$4
  rm -rf "$OUT/bodies"
  python3 bench/gen_bodies.py "$SECRET" "$OUT/bodies" "$WRK_THREADS" "$PER_THREAD" "$name"
  local result
  result=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
    -s bench/wrk_replay.lua "http://127.0.0.1:$port/webhooks/stripe" -- "$OUT/bodies" | tail -n 1)
  echo "{\"target\":\"$name\",\"rss_mb\":$(peak_rss_mb "$pid"),${result#\{}" | tee -a "$results"
}
