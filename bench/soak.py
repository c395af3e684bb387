#!/usr/bin/env python3
"""Soak: a steady rate of signed webhooks for a long while through ingest -> Kafka ->
reconcile -> ClickHouse, with the resident memory of every process sampled every 10 s.

Starts its own Tansu (in-memory storage, a free port), `revline ingest` and `revline
reconcile` (the release binary; the reconciler with a bounded state cache, so that its
memory does not grow with the history), against the ClickHouse on CLICKHOUSE_URL (a
database of its own). Posts RATE events per second (invoice.paid of rotating customers,
each a new event id, about 1.5 KB) for SECONDS, from WORKERS threads with keep-alive
connections, each request signed when sent. Prints the rate held, ingest latency p50 /
p99 / worst, non-2xx answers, how long reconcile took to catch up after the last post, and
each process's RSS first / last / peak; writes bench/out/soak-<process>.csv (seconds,
rss_mb) and the SVG plot given as PLOT (bench/figures/soak-rss.svg by default).

    bench/soak.py              # RATE=200 SECONDS=600 WORKERS=8 CACHE_MB=32

Needs Tansu (infra/services.sh installs it) and a running ClickHouse.
"""
import hashlib
import hmac
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

RATE = float(os.environ.get("RATE", "200"))
SECONDS = int(os.environ.get("SECONDS", "600"))
WORKERS = int(os.environ.get("WORKERS", "8"))
CACHE_MB = os.environ.get("CACHE_MB", "32")
BIN = os.environ.get("REVLINE_BIN", "target/release/revline")
TANSU = os.environ.get("TANSU_BIN", "tansu")
CLICKHOUSE = os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:8123")
PLOT = os.environ.get("PLOT", "bench/figures/soak-rss.svg")
SECRET = "whsec_soak_bench"
RUN = str(os.getpid())
OUT = "bench/out"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ch(sql):
    req = urllib.request.Request(CLICKHOUSE + "/", data=sql.encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def body(i):
    at = int(time.time())
    return json.dumps({
        "id": f"evt_soak_{RUN}_{i}", "object": "event", "type": "invoice.paid",
        "api_version": "2025-03-31.basil", "created": at, "livemode": False,
        "data": {"object": {
            "id": f"in_soak_{RUN}_{i}", "object": "invoice", "customer": f"cus_soak_{i % 500}",
            "currency": "usd", "status": "paid", "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically", "number": f"S-{i}", "created": at,
            "subtotal": 2000, "total": 2000, "total_excluding_tax": 2000,
            "amount_due": 2000, "amount_paid": 2000, "amount_remaining": 0,
            "total_discount_amounts": [], "total_taxes": [],
            "status_transitions": {"finalized_at": at, "paid_at": at,
                                   "voided_at": None, "marked_uncollectible_at": None},
            "lines": {"object": "list", "has_more": False, "data": [{
                "id": f"il_soak_{RUN}_{i}", "object": "line_item", "amount": 2000,
                "currency": "usd", "quantity": 1, "description": "Pro plan",
                "period": {"start": at, "end": at + 30 * 86400},
                "pricing": {"price_details": {"price": "price_soak", "product": "prod_soak"}},
                "parent": {"type": "subscription_item_details", "subscription_item_details": {
                    "subscription": f"sub_soak_{i % 500}", "subscription_item": f"si_soak_{i % 500}",
                    "proration": False}}}]}}}}).encode()


def sign(payload):
    t = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), t.encode() + b"." + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_http(port, path="/readyz", secs=30):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"nothing answers on port {port}")


def main():
    os.makedirs(OUT, exist_ok=True)
    kport, iport = free_port(), free_port()
    db = f"revline_soak_{RUN}"
    data = tempfile.mkdtemp(prefix="revline-soak-")
    procs = {}
    logs = []

    def spawn(name, args, env=None):
        log = open(f"{OUT}/soak-{name}.log", "w")
        logs.append(log)
        procs[name] = subprocess.Popen(args, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    try:
        spawn("tansu", [TANSU, "broker", "--listener-url", f"tcp://127.0.0.1:{kport}",
                        "--advertised-listener-url", f"tcp://127.0.0.1:{kport}",
                        "--storage-engine", "memory://tansu/"])
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", kport), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, STRIPE_WEBHOOK_SECRET=SECRET, RUST_LOG="warn",
                   REVLINE_DATA_DIR=data, REVLINE_ADMIN_LISTEN="off",
                   REVLINE_KAFKA_BROKERS=f"127.0.0.1:{kport}", REVLINE_KAFKA_TOPIC="soak.events",
                   REVLINE_KAFKA_DLQ_TOPIC="soak.events.dlq", REVLINE_KAFKA_PARTITIONS="4",
                   REVLINE_CLICKHOUSE_URL=CLICKHOUSE, REVLINE_CLICKHOUSE_DATABASE=db,
                   REVLINE_RECONCILE_STATE_CACHE_MB=CACHE_MB,
                   # Tansu 0.6.0 skips records when a consumer resumes inside a batch.
                   REVLINE_KAFKA_RDKAFKA_BATCH_NUM_MESSAGES="1")
        subprocess.run([BIN, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        spawn("ingest", [BIN, "ingest"], dict(env, REVLINE_LISTEN=f"127.0.0.1:{iport}"))
        spawn("reconcile", [BIN, "reconcile"], env)
        wait_http(iport)

        samples = {name: [] for name in procs}
        started = time.time()
        stop_sampling = threading.Event()

        def sampler():
            while not stop_sampling.is_set():
                at = time.time() - started
                for name, p in procs.items():
                    samples[name].append((at, rss_mb(p.pid)))
                stop_sampling.wait(10)

        threading.Thread(target=sampler, daemon=True).start()

        jobs = queue.Queue(maxsize=10_000)
        latencies, failures, lock = [], {}, threading.Lock()

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", iport, timeout=30)
            while True:
                job = jobs.get()
                if job is None:
                    return
                payload = body(job)
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/webhooks/stripe", payload, {
                        "Stripe-Signature": sign(payload),
                        "Content-Type": "application/json; charset=utf-8"})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as e:
                    status = type(e).__name__
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", iport, timeout=30)
                elapsed = time.perf_counter() - t0
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        failures[status] = failures.get(status, 0) + 1

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        total = int(RATE * SECONDS)
        print(f"soak: {RATE:.0f} events/s for {SECONDS} s ({total} events), {WORKERS} workers", file=sys.stderr)
        for i in range(total):
            due = started + i / RATE
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            jobs.put(i)
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        posted_for = time.time() - started
        last_post = time.time()
        caught_up = None
        while time.time() - last_post < 600:
            try:
                n = int(ch(f"SELECT count() FROM {db}.stripe_events").strip())
            except Exception:
                n = 0
            if n >= len(latencies):
                caught_up = time.time() - last_post
                break
            time.sleep(0.5)
        stop_sampling.set()
        for name, p in procs.items():
            samples[name].append((time.time() - started, rss_mb(p.pid)))

        latencies.sort()
        q = lambda f: latencies[min(len(latencies) - 1, int(len(latencies) * f))] * 1000
        print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d', time.gmtime())}")
        print(f"rate held: {len(latencies) / posted_for:.1f} events/s acknowledged over {posted_for:.0f} s "
              f"({len(latencies)} of {total}; non-2xx or errors: {failures or 'none'})")
        print(f"ingest latency: p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, worst {latencies[-1] * 1000:.1f} ms")
        print("reconcile caught up " + (f"{caught_up:.1f} s after the last post" if caught_up is not None
                                         else "NOT within 600 s"))
        files = []
        for name, pts in samples.items():
            path = f"{OUT}/soak-{name}.csv"
            with open(path, "w") as f:
                f.write("seconds,rss_mb\n")
                f.writelines(f"{s:.0f},{m:.1f}\n" for s, m in pts)
            files.append(f"{name}={path}")
            vals = [m for _, m in pts if m > 0]
            print(f"RSS {name:<9} first {vals[0]:6.1f} MB, last {vals[-1]:6.1f} MB, peak {max(vals):6.1f} MB")
        subprocess.run([sys.executable, "bench/plot_rss.py", PLOT,
                        f"soak: {RATE:.0f} events/s for {SECONDS} s, RSS sampled every 10 s"] + files, check=True)
        print(f"plot: {PLOT}")
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        try:
            ch(f"DROP DATABASE IF EXISTS {db}")
        except Exception:
            pass


if __name__ == "__main__":
    main()
