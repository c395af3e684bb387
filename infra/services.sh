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
