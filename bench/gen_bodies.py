#!/usr/bin/env python3
"""Writes signed Stripe event bodies for the ingest benchmark, one request per line:
`<Stripe-Signature>\t<body>`. Every body has its own event id (so none is a duplicate),
is about 3 KB (the invoice.paid fixture with ids changed) and is signed now with the
given secret, as Stripe would.

usage: gen_bodies.py SECRET OUT_DIR THREADS PER_THREAD [PREFIX]
"""
import hashlib
import hmac
import json
import os
import sys
import time

secret, out_dir, threads, per_thread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
prefix = sys.argv[5] if len(sys.argv) > 5 else "bench"
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "fixtures", "stripe-events", "invoice.paid__2025-03-31.basil.json"), "rb") as f:
    event = json.loads(f.read())
# Pad to about 3 KB, the size the issue benchmarks with (a realistic invoice with a few
# more lines and metadata is larger still).
event["data"]["object"].setdefault("metadata", {})["notes"] = "n" * 780
template = json.dumps(event, separators=(",", ":"))
old_event_id = json.loads(template)["id"]
key = secret.encode()
t = str(int(time.time())).encode()
os.makedirs(out_dir, exist_ok=True)
run = f"{prefix}{int(time.time() * 1000) % 10**9}"
for thread in range(threads):
    with open(os.path.join(out_dir, f"bodies-{thread}.txt"), "wb") as out:
        for i in range(per_thread):
            body = template.replace(old_event_id, f"evt_{run}_{thread}_{i:07d}").encode()
            sig = hmac.new(key, t + b"." + body, hashlib.sha256).hexdigest()
            out.write(b"t=" + t + b",v1=" + sig.encode() + b"\t" + body + b"\n")
print(f"{threads * per_thread} bodies of {len(body)} bytes in {out_dir}", file=sys.stderr)
