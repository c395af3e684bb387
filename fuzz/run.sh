#!/usr/bin/env bash
# Coverage-guided fuzzing of revline's fuzz targets (fuzz/src/lib.rs) with AFL++ through
# cargo-afl, on the stable toolchain.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 s each, every target)
#
# Installs cargo-afl and builds AFL++ once per machine, builds the instrumented harness
# (fuzz/afl, into target/afl), then runs each target from its seeds (fuzz/corpus/<target>
# and, for the body targets, the Stripe fixtures) for the given time. Prints executions,
# executions per second, paths found, crashes and hangs per target; exits 1 when a target
# crashed, after copying each crashing input to fuzz/corpus/<target>/crash-* so that
# `cargo test -p fuzz` replays it from then on (commit it with the fix).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECS="${1:-20}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(signature envelope reconcile)

if ! command -v cargo-afl >/dev/null 2>&1; then
  echo "==> installing cargo-afl (cargo install; once per machine)" >&2
  cargo install cargo-afl --locked --version '^0.18'
fi
# AFL++ itself (afl-fuzz and its runtime), built once per machine under ~/.local/share.
if ! ls "$HOME"/.local/share/afl.rs/*/*/afl/bin/afl-fuzz >/dev/null 2>&1; then
  echo "==> building AFL++ (cargo afl config --build; once per machine)" >&2
  cargo afl config --build >&2
fi

echo "==> building the instrumented harness" >&2
(cd fuzz/afl && CARGO_TARGET_DIR=../../target/afl cargo afl build --release --locked >&2)

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_SKIP_CRASHES=1
status=0
printf '%-10s %6s %10s %8s %7s %8s %6s\n' target seconds execs execs/s paths crashes hangs
for target in "${TARGETS[@]}"; do
  in="target/afl-in/$target"
  out="target/afl-out/$target"
  rm -rf "$in" "$out"
  mkdir -p "$in" "$(dirname "$out")"
  find "fuzz/corpus/$target" -type f -size +0 -exec cp {} "$in/" \;
  if [ "$target" != signature ]; then cp fixtures/stripe-events/*.json "$in/"; fi
  cargo afl fuzz -V "$SECS" -i "$in" -o "$out" "target/afl/release/$target" \
    >"target/afl-$target.log" 2>&1 || { tail -30 "target/afl-$target.log" >&2; exit 1; }
  stats="$out/default/fuzzer_stats"
  get() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
  crashes=$(get saved_crashes)
  printf '%-10s %6s %10s %8s %7s %8s %6s\n' "$target" "$(get run_time)" "$(get execs_done)" \
    "$(get execs_per_sec)" "$(get corpus_count)" "$crashes" "$(get saved_hangs)"
  if [ "${crashes:-0}" != 0 ]; then
    status=1
    for f in "$out"/default/crashes/id*; do
      cp "$f" "fuzz/corpus/$target/crash-$(sha256sum "$f" | cut -c1-16)"
    done
    echo "$target crashed: the inputs are in fuzz/corpus/$target/crash-* (cargo test -p fuzz replays them)" >&2
  fi
done
exit $status
