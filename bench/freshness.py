#!/usr/bin/env python3
"""Freshness: from a webhook's 200 to its facts being visible in the warehouse.

Starts `revline serve` (the release binary) on the embedded default or on Kafka +
ClickHouse, posts COUNT signed `invoice.paid` events at RATE per second, and polls the
warehouse every 10 ms for each event's raw row (written after its batch's facts, so a
visible raw event means visible facts). Prints p50, p99 and the worst latency.

    bench/freshness.py embedded            # data in a temporary directory
    bench/freshness.py kafka               # needs Tansu on 127.0.0.1:9092 and ClickHouse
                                           # on 127.0.0.1:8123 (infra/services.sh)

COUNT (1000) and RATE (20) come from the environment; REVLINE_BIN overrides the binary.
"""
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MODE = sys.argv[1] if len(sys.argv) > 1 else "embedded"
COUNT = int(os.environ.get("COUNT", "1000"))
RATE = float(os.environ.get("RATE", "20"))
BIN = os.environ.get("REVLINE_BIN", "target/release/revline")
SECRET = "whsec_freshness_bench"
CLICKHOUSE = os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:8123")
RUN = f"{os.getpid()}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body(i):
    at = int(time.time())
    inv = f"in_fresh_{RUN}_{i}"
    return json.dumps({
        "id": f"evt_fresh_{RUN}_{i}", "object": "event", "type": "invoice.paid",
        "api_version": "2025-03-31.basil", "created": at, "livemode": False,
        "data": {"object": {
            "id": inv, "object": "invoice", "customer": f"cus_fresh_{i % 50}",
            "currency": "usd", "status": "paid", "billing_reason": "manual",
            "collection_method": "charge_automatically", "number": f"F-{i}", "created": at,
            "subtotal": 1000, "total": 1000, "total_excluding_tax": 1000,
            "amount_due": 1000, "amount_paid": 1000, "amount_remaining": 0,
            "total_discount_amounts": [], "total_taxes": [],
            "status_transitions": {"finalized_at": at, "paid_at": at,
                                   "voided_at": None, "marked_uncollectible_at": None},
            "lines": {"object": "list", "has_more": False, "data": []}}}}).encode()


def post(url, data):
    t = int(time.time())
    sig = hmac.new(SECRET.encode(), f"{t}.".encode() + data, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status


def ch(query):
    req = urllib.request.Request(CLICKHOUSE + "/", data=query.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def main():
    tmp = tempfile.mkdtemp(prefix="revline-fresh-")
    port, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVLINE_", "STRIPE_"))}
    env.update({"REVLINE_LISTEN": f"127.0.0.1:{port}", "REVLINE_ADMIN_LISTEN": f"127.0.0.1:{admin}",
                "REVLINE_DATA_DIR": tmp, "STRIPE_WEBHOOK_SECRET": SECRET, "RUST_LOG": "warn"})
    db = f"revline_fresh_{RUN}"
    if MODE == "kafka":
        topic = f"fresh.{RUN}"
        env.update({"REVLINE_KAFKA_BROKERS": "127.0.0.1:9092", "REVLINE_KAFKA_TOPIC": topic,
                    "REVLINE_KAFKA_DLQ_TOPIC": topic + ".dlq", "REVLINE_KAFKA_GROUP_ID": "g" + topic,
                    "REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES": "1",
                    "REVLINE_CLICKHOUSE_URL": CLICKHOUSE, "REVLINE_CLICKHOUSE_DATABASE": db})
        subprocess.run([BIN, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    server = subprocess.Popen([BIN, "serve"], env=env, stderr=open(os.path.join(tmp, "serve.log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        acked, seen = {}, {}
        done = threading.Event()

        def visible_ids():
            if MODE == "kafka":
                return set(ch(f"SELECT id FROM {db}.stripe_events WHERE id LIKE 'evt_fresh_{RUN}_%'").split())
            try:
                conn = sqlite3.connect(f"file:{tmp}/warehouse.sqlite?mode=ro", uri=True, timeout=1)
                rows = conn.execute("SELECT id FROM stripe_events WHERE id LIKE ?", (f"evt_fresh_{RUN}_%",)).fetchall()
                conn.close()
                return {r[0] for r in rows}
            except sqlite3.Error:
                return set()

        def poll():
            while not done.is_set():
                now = time.monotonic()
                for i in visible_ids():
                    seen.setdefault(i, now)
                if len(seen) >= COUNT:
                    done.set()
                time.sleep(0.01)

        poller = threading.Thread(target=poll)
        poller.start()
        url = f"http://127.0.0.1:{port}/webhooks/stripe"
        start = time.monotonic()
        for i in range(COUNT):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            data = body(i)
            assert post(url, data) == 200
            acked[f"evt_fresh_{RUN}_{i}"] = time.monotonic()
        done.wait(timeout=120)
        done.set()
        poller.join()
        lat = sorted(max(0.0, seen[i] - t) for i, t in acked.items() if i in seen)
        missing = COUNT - len(lat)
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
        print(f"{MODE}: {COUNT} events at {RATE:g}/s, {missing} not visible within 120 s")
        print(f"{MODE}: 200 -> facts visible: p50 {q(0.50):.0f} ms, p99 {q(0.99):.0f} ms, worst {lat[-1] * 1000:.0f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if MODE == "kafka":
            try:
                ch(f"DROP DATABASE IF EXISTS {db}")
            except Exception:
                pass


if __name__ == "__main__":
    main()
