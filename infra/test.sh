#!/usr/bin/env bash
# The one command that passes all the tests on a fresh Debian machine with Rust:
#   1. installs what is missing (Debian's clickhouse-server, chromium, openssl, stunnel4 and
#      prometheus (for promtool), Tansu from crates.io, the Python packages the SQL and
#      deployment tests use),
#   2. starts Tansu (Kafka protocol) and ClickHouse on loopback unless they already run,
#   3. builds the workspace and runs every test (cargo-nextest when present),
#   4. fuzzes every fuzz target for a short while (fuzz/run.sh, AFL++ on stable Rust),
#   5. stops what it started, whatever the outcome.
# Extra arguments go to the test runner (e.g. `infra/test.sh -E 'test(kafka)'`).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=infra/services.sh
. infra/services.sh

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

log() { printf '\n==> %s\n' "$*" >&2; }

# --- 1. install -----------------------------------------------------------------------
if ! command -v curl >/dev/null 2>&1; then
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl >/dev/null
fi
if ! command -v clickhouse-server >/dev/null 2>&1; then
  log "installing clickhouse-server (Debian package)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi
# TLS: OpenSSL for librdkafka (built with SSL) and for the tests' certificates; stunnel4
# terminates TLS in front of Tansu, which serves none itself.
if ! command -v openssl >/dev/null 2>&1 || ! command -v stunnel4 >/dev/null 2>&1 \
  || ! dpkg -s libssl-dev >/dev/null 2>&1; then
  log "installing openssl, libssl-dev and stunnel4 (Debian packages; the TLS tests)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl libssl-dev pkg-config stunnel4 >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium (Debian package; the dashboard's browser test)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# promtool checks infra/prometheus (tests/tests/deploy_config.rs); Debian ships it in the
# prometheus package, whose server is not wanted here: if the install started it (systemd,
# or the init script where no policy forbids it), it is stopped right away.
if ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus (Debian package; promtool checks the alerting rules)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
fi
if ! tansu_complete; then
  log "installing tansu with $TANSU_FEATURES (cargo install; about 15 minutes on 2 cores, once per machine)"
  install_tansu
fi

# chDB (current ClickHouse, in-process) for the SQL compatibility test and PyYAML for the
# deployment files' test, in a venv of its own.
PY_VENV="${PY_VENV:-$PWD/target/test-venv}"
if ! "$PY_VENV/bin/python" -c "import chdb, yaml" >/dev/null 2>&1; then
  log "installing chdb-core and pyyaml (PyPI) into $PY_VENV"
  python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check chdb-core pyyaml
fi

# --- 2. start services ------------------------------------------------------------------
STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
  log "a Kafka-protocol broker already listens on $KAFKA_HOST:$KAFKA_PORT; using it"
else
  log "starting tansu on $KAFKA_HOST:$KAFKA_PORT"
  start_tansu >/tmp/revline-test-tansu.log 2>&1 &
  STARTED+=($!)
  wait_port "$KAFKA_HOST" "$KAFKA_PORT" 30 || { cat /tmp/revline-test-tansu.log; exit 1; }
fi

if clickhouse_up; then
  log "ClickHouse already answers on $CLICKHOUSE_URL; using it"
else
  log "starting clickhouse-server on $CLICKHOUSE_URL"
  start_clickhouse >/tmp/revline-test-clickhouse.log 2>&1 &
  STARTED+=($!)
  for _ in $(seq 1 60); do clickhouse_up && break; sleep 0.5; done
  clickhouse_up || { tail -50 /tmp/revline-test-clickhouse.log; exit 1; }
fi

# --- 3. build and test ------------------------------------------------------------------
export REVLINE_TEST_KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT"
export REVLINE_TEST_CLICKHOUSE_URL="$CLICKHOUSE_URL"
REVLINE_TEST_TANSU="$(command -v "$TANSU_BIN")"
export REVLINE_TEST_TANSU
export REVLINE_TEST_PYTHON="$PY_VENV/bin/python"
REVLINE_TEST_CHROMIUM="$(command -v chromium)"
export REVLINE_TEST_CHROMIUM
REVLINE_TEST_PROMTOOL="$(command -v promtool)"
export REVLINE_TEST_PROMTOOL

log "building"
cargo build --locked --workspace --bins
log "testing"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast "$@"
else
  cargo test --locked --workspace --no-fail-fast "$@"
fi

# --- 4. fuzz ----------------------------------------------------------------------------
# A short coverage-guided run of every fuzz target (20 s each; fuzz/run.sh installs
# cargo-afl and builds AFL++ and the instrumented harness the first time, about 10 minutes
# on 2 cores). REVLINE_FUZZ_SECS changes the time per target; 0 skips it.
FUZZ_SECS="${REVLINE_FUZZ_SECS:-20}"
if [ "$FUZZ_SECS" != 0 ]; then
  log "fuzzing (${FUZZ_SECS} s per target)"
  fuzz/run.sh "$FUZZ_SECS"
fi
