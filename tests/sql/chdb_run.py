#!/usr/bin/env python3
"""Runs SQL statements on current ClickHouse in-process (chDB, PyPI `chdb-core`).

Reads a JSON list of statements on stdin; prints a JSON list with, per statement,
{"ok": true, "output": "<TabSeparated result>"} or {"ok": false, "error": "..."}.
Used by tests/tests/sql_compat.rs to check that every DDL statement and query revline
sends also works on current ClickHouse, not only on the 18.16 test server.
"""
import json
import sys
import tempfile

from chdb import session

statements = json.load(sys.stdin)
results = []
with tempfile.TemporaryDirectory() as path:
    sess = session.Session(path)
    for sql in statements:
        try:
            output = sess.query(sql, "TabSeparated")
            results.append({"ok": True, "output": str(output)})
        except Exception as err:  # chDB raises its own error type per failed statement
            results.append({"ok": False, "error": str(err)})
    sess.close()
json.dump(results, sys.stdout)
