"""SQLiteOnThread: a new file opened by two processes at once (two workers, two gateways on one
budget file) must not fail the loser with "database is locked".

SQLite answers the second process's ``PRAGMA journal_mode=WAL`` "database is locked" at once, busy
timeout or not, while the first converts the new file: about 1 open in 10 here before
`enable_wal` retried it, seen as a 503 from the budget store in a two-process test.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each process opens files 0..N-1 at the same scheduled instants as the other one.
OPENER = """
import sqlite3, sys, time
sys.path.insert(0, sys.argv[1])
from aigw_asgi.sqlite_thread import SQLiteOnThread
folder, t0, n = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
failed = 0
for i in range(n):
    while time.time() < t0 + i * 0.05:
        pass
    store = SQLiteOnThread(f"{folder}/{i}.db", ["CREATE TABLE IF NOT EXISTS t (x)"], name="t")
    try:
        db = store.db()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (1)")
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        failed += 1
        print("failed:", exc)
print("failures", failed)
"""


def test_two_processes_open_new_files_at_once(tmp_path: Path) -> None:
    n = 40
    t0 = time.time() + 1.0  # both interpreters started by then
    args = [sys.executable, "-c", OPENER, str(ROOT), str(tmp_path), str(t0), str(n)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert [out.strip().splitlines()[-1] for out in outputs] == ["failures 0", "failures 0"], outputs
    for i in range(n):
        with sqlite3.connect(tmp_path / f"{i}.db") as db:
            assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
