#!/usr/bin/env bash
# The fault suite at full size: tests/tests/faults_e2e.rs with a history of about 100,000
# events (CUSTOMERS=1900, MONTHS=24; more customers or months give more), on Kafka +
# ClickHouse (ClickHouse restarts, SIGKILLed reconcile and ingest; BROKER_RESTARTS=2 adds
# restarts of a Tansu on SQLite storage, which Tansu 0.6.0 does not survive reliably: see
# docs/operations.md) and on the embedded default (SIGKILLed serve, a full log). It prints, for each: events
# acknowledged, in the warehouse, missing (must be 0), duplicated facts (must be 0) and
# whether every report and fact equals an undisturbed run (must). SEED repeats a run.
#
# It starts its own Tansu (SQLite storage) and ClickHouse on free loopback ports; it needs
# `clickhouse-server` and Tansu with the `libsql` feature (installed here when missing).
# The CI runs the same tests at about 5,000 events (`infra/test.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
. infra/services.sh

CUSTOMERS="${CUSTOMERS:-1900}"
MONTHS="${MONTHS:-24}"

if ! command -v clickhouse-server >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi
install_tansu

echo "building (release)" >&2
cargo build --release --locked --bin revline >&2
export REVLINE_TEST_TANSU="$(command -v "$TANSU_BIN")"
export REVLINE_FAULTS_CUSTOMERS="$CUSTOMERS" REVLINE_FAULTS_MONTHS="$MONTHS"
if [ -n "${SEED:-}" ]; then export REVLINE_FAULTS_SEED="$SEED"; fi
export REVLINE_FAULTS_BROKER_RESTARTS="${BROKER_RESTARTS:-0}"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%Y-%m-%d)"
# revline is the release build; the driver (the test) is built as the tests are.
export REVLINE_BIN="$PWD/target/release/revline"
cargo nextest run --locked -p e2e --test faults_e2e --profile faults \
  --no-capture --test-threads 1 "$@"
