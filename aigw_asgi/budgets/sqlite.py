"""Budget counters in SQLite: the log store's file, tables of their own, one transaction per step.

``BEGIN IMMEDIATE`` takes SQLite's write lock before the counters are read, so a reservation's
read-check-write cannot interleave with another one — in this process or in any other process
using the same file (``aigw serve --workers N`` on one host). The statements run on one
dedicated thread, never on the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..sqlite_thread import SQLiteOnThread
from .ledger import RECLAIMED_KEEP_S, Counter, CounterState

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS budget_counters (
        gateway TEXT NOT NULL, budget TEXT NOT NULL, scope TEXT NOT NULL, win TEXT NOT NULL,
        spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0, expires_at REAL,
        PRIMARY KEY (gateway, budget, win, scope))""",
    """CREATE TABLE IF NOT EXISTS budget_leases (
        gateway TEXT NOT NULL, id TEXT NOT NULL, amount INTEGER NOT NULL, counters TEXT NOT NULL,
        deadline REAL NOT NULL, reclaimed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (gateway, id))""",
    "CREATE INDEX IF NOT EXISTS budget_leases_deadline ON budget_leases (gateway, deadline)",
)
_RECLAIM_BATCH = 64
_FORGET_EVERY_S = 3600.0


class SQLiteLedger:
    kind = "sqlite"

    def __init__(self, path: str, gateway_id: str = "default") -> None:
        self.path = path
        self.gateway_id = gateway_id
        self._sql = SQLiteOnThread(path, _SCHEMA, name="aigw-budgets", busy_timeout_ms=10000, synchronous="NORMAL")
        self._forgotten_at = 0.0

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self._sql.run(fn, *args)

    def _db(self) -> Any:
        return self._sql.db()

    def _add(self, db: Any, ident: Sequence[str], spent: int, reserved: int, expires_at: float | None) -> None:
        db.execute(
            "INSERT INTO budget_counters (gateway, budget, scope, win, spent, reserved, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway, budget, win, scope) DO UPDATE SET "
            "spent = spent + excluded.spent, reserved = reserved + excluded.reserved, "
            "expires_at = COALESCE(excluded.expires_at, expires_at)",
            (self.gateway_id, ident[0], ident[1], ident[2], spent, reserved, expires_at),
        )

    def _reclaim(self, db: Any, now: float) -> None:
        rows = db.execute(
            "SELECT id, amount, counters FROM budget_leases WHERE gateway = ? AND deadline <= ? AND reclaimed = 0 "
            "LIMIT ?",
            (self.gateway_id, now, _RECLAIM_BATCH),
        ).fetchall()
        for lease_id, amount, counters in rows:
            for ident in json.loads(counters):
                self._add(db, ident, amount, -amount, None)
            db.execute(
                "UPDATE budget_leases SET reclaimed = 1, deadline = ? WHERE gateway = ? AND id = ?",
                (now + RECLAIMED_KEEP_S, self.gateway_id, lease_id),
            )

    def _reserve(self, lease: str, counters: Sequence[Counter], amount: int, now: float, ttl: float) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._reclaim(db, now)
            if now - self._forgotten_at > _FORGET_EVERY_S:
                db.execute(
                    "DELETE FROM budget_counters WHERE gateway = ? AND expires_at <= ? AND reserved = 0",
                    (self.gateway_id, now),
                )
                db.execute(
                    "DELETE FROM budget_leases WHERE gateway = ? AND reclaimed = 1 AND deadline <= ?",
                    (self.gateway_id, now),
                )
                self._forgotten_at = now
            for i, c in enumerate(counters):
                row = db.execute(
                    "SELECT spent, reserved FROM budget_counters WHERE gateway = ? AND budget = ? AND win = ? "
                    "AND scope = ?",
                    (self.gateway_id, c.budget, c.window, c.scope),
                ).fetchone()
                spent, reserved = row if row else (0, 0)
                if spent + reserved >= c.limit or spent + reserved + amount > c.limit:
                    db.execute("COMMIT")  # keep what reclaim did
                    return i
            for c in counters:
                self._add(db, c.ident, 0, amount, c.expires_at)
            db.execute(
                "INSERT INTO budget_leases (gateway, id, amount, counters, deadline) VALUES (?, ?, ?, ?, ?)",
                (self.gateway_id, lease, amount, json.dumps([c.ident for c in counters]), now + ttl),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return -1

    async def reserve(self, lease: str, counters: Sequence[Counter], amount: int, *, now: float, ttl: float) -> int:
        return int(await self._run(self._reserve, lease, counters, amount, now, ttl))

    def _settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            held = db.execute(
                "SELECT reclaimed FROM budget_leases WHERE gateway = ? AND id = ?", (self.gateway_id, lease)
            ).fetchone()
            db.execute("DELETE FROM budget_leases WHERE gateway = ? AND id = ?", (self.gateway_id, lease))
            for c in counters:
                if held is None:
                    break  # never reserved (a reserve that timed out before it ran)
                if not held[0]:
                    self._add(db, c.ident, actual, -amount, c.expires_at)
                else:  # reclaimed: it was charged ``amount`` already
                    self._add(db, c.ident, actual - amount, 0, c.expires_at)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None:
        await self._run(self._settle, lease, counters, amount, actual)

    def _read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        db = self._db()
        out: list[CounterState] = []
        for budget, win in windows:
            rows = db.execute(
                "SELECT scope, spent, reserved FROM budget_counters WHERE gateway = ? AND budget = ? AND win = ?",
                (self.gateway_id, budget, win),
            ).fetchall()
            out += [CounterState(budget, scope, win, spent, reserved) for scope, spent, reserved in rows]
        return out

    async def read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        return await self._run(self._read, list(windows))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._sql.aclose()
