# Shared settings and helpers for the local services (sourced by infra/test.sh and the
# benchmark scripts; infra/docker-compose.yml uses the same ports and topic names).

KAFKA_HOST="${KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
CLICKHOUSE_URL="${CLICKHOUSE_URL:-http://127.0.0.1:8123}"
TANSU_BIN="${TANSU_BIN:-tansu}"

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() {
  local host=$1 port=$2 secs=$3
  for _ in $(seq 1 $((secs * 10))); do port_open "$host" "$port" && return 0; sleep 0.1; done
  echo "nothing listens on $host:$port after ${secs}s" >&2
  return 1
}

# Tansu's features: `dynostore` (in-memory storage, the shared test broker) and `libsql`
# (SQLite storage that survives a restart, for the fault suite).
TANSU_FEATURES="dynostore,libsql"

# Whether the `tansu` on PATH was installed by cargo with every feature above (a Tansu
# given through TANSU_BIN is taken as it is).
tansu_complete() {
  [ "$TANSU_BIN" = tansu ] || return 0
  command -v tansu >/dev/null 2>&1 || return 1
  python3 - "$TANSU_FEATURES" <<'PY'
import json, os, sys
wanted = set(sys.argv[1].split(","))
try:
    installs = json.load(open(os.path.expanduser("~/.cargo/.crates2.json")))["installs"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
ok = any(k.startswith("tansu ") and wanted <= set(v.get("features", [])) for k, v in installs.items())
sys.exit(0 if ok else 1)
PY
}

# Installs (or rebuilds, when a feature is missing) Tansu: about 15 minutes on 2 cores.
install_tansu() {
  tansu_complete || cargo install tansu --locked --features "$TANSU_FEATURES"
}

# Tansu with in-memory storage, in the foreground (callers background it).
start_tansu() {
  exec "$TANSU_BIN" broker \
    --listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
    --advertised-listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
    --storage-engine memory://tansu/
}

clickhouse_up() { curl -fsS "$CLICKHOUSE_URL/ping" >/dev/null 2>&1; }

# Debian's clickhouse-server with its packaged config (HTTP on 127.0.0.1:8123), in the
# foreground (callers background it).
start_clickhouse() {
  exec clickhouse-server --config-file=/etc/clickhouse-server/config.xml
}
