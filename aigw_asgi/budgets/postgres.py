"""Budget counters in PostgreSQL: the ledger's steps as transactions, one gateway's at a time.

Each reserve and settle runs in one transaction that first takes a transaction-scoped advisory
lock for the gateway, so the read-check-write of a reservation cannot interleave with another on
any instance — the same serialisation SQLite's write lock and Redis' single thread give. A step
is a few indexed statements (about a millisecond); a gateway with thousands of budgeted requests
per second should keep its counters in Redis (``spend.storage``) and its logs and keys here.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from ..pgpool import LoopPool
from .ledger import RECLAIMED_KEEP_S, Counter, CounterState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_counters (
    gateway TEXT NOT NULL, budget TEXT NOT NULL, scope TEXT NOT NULL, win TEXT NOT NULL,
    spent BIGINT NOT NULL DEFAULT 0, reserved BIGINT NOT NULL DEFAULT 0, expires_at DOUBLE PRECISION,
    PRIMARY KEY (gateway, budget, win, scope));
CREATE TABLE IF NOT EXISTS budget_leases (
    gateway TEXT NOT NULL, id TEXT NOT NULL, amount BIGINT NOT NULL, counters TEXT NOT NULL,
    deadline DOUBLE PRECISION NOT NULL, reclaimed BOOLEAN NOT NULL DEFAULT FALSE, PRIMARY KEY (gateway, id));
CREATE INDEX IF NOT EXISTS budget_leases_deadline ON budget_leases (gateway, deadline);
"""
_SCHEMA_LOCK = 0x6169_6777_6275_6467  # "aigwbudg"
_ADD = (
    "INSERT INTO budget_counters (gateway, budget, scope, win, spent, reserved, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gateway, budget, win, scope) DO UPDATE SET "
    "spent = budget_counters.spent + EXCLUDED.spent, reserved = budget_counters.reserved + EXCLUDED.reserved, "
    "expires_at = COALESCE(EXCLUDED.expires_at, budget_counters.expires_at)"
)
_RECLAIM_BATCH = 64
_FORGET_EVERY_S = 3600.0


class PostgresLedger:
    kind = "postgresql"

    def __init__(self, url: str, gateway_id: str = "default", *, timeout_s: float = 1.0) -> None:
        self.url = url
        self.gateway_id = gateway_id
        self.timeout_s = timeout_s
        # The gateway's lock id: a stable 63-bit number from its name.
        self._gateway_lock = zlib.crc32(f"aigw-budgets:{gateway_id}".encode()) | (0x6169 << 32)
        # Creating the tables may take longer than one budget step is allowed to.
        self._pools = LoopPool(url, timeout_s=max(timeout_s, 10.0), lock=_SCHEMA_LOCK, schema=_SCHEMA)
        self._forgotten_at = 0.0

    async def _db(self) -> Any:
        return await self._pools.get()

    async def _add(self, conn: Any, ident: Sequence[str], spent: int, reserved: int, expires_at: float | None) -> None:
        await conn.execute(_ADD, self.gateway_id, ident[0], ident[1], ident[2], spent, reserved, expires_at)

    async def _reclaim(self, conn: Any, now: float) -> None:
        rows = await conn.fetch(
            "SELECT id, amount, counters FROM budget_leases WHERE gateway = $1 AND deadline <= $2 AND NOT reclaimed "
            "LIMIT $3",
            self.gateway_id,
            now,
            _RECLAIM_BATCH,
        )
        for row in rows:
            for ident in json.loads(row["counters"]):
                await self._add(conn, ident, row["amount"], -row["amount"], None)
            await conn.execute(
                "UPDATE budget_leases SET reclaimed = TRUE, deadline = $1 WHERE gateway = $2 AND id = $3",
                now + RECLAIMED_KEEP_S,
                self.gateway_id,
                row["id"],
            )

    async def reserve(self, lease: str, counters: Sequence[Counter], amount: int, *, now: float, ttl: float) -> int:
        pool = await self._db()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._gateway_lock)
            await self._reclaim(conn, now)
            if now - self._forgotten_at > _FORGET_EVERY_S:
                self._forgotten_at = now
                await conn.execute(
                    "DELETE FROM budget_counters WHERE gateway = $1 AND expires_at <= $2 AND reserved = 0",
                    self.gateway_id,
                    now,
                )
                await conn.execute(
                    "DELETE FROM budget_leases WHERE gateway = $1 AND reclaimed AND deadline <= $2",
                    self.gateway_id,
                    now,
                )
            for i, c in enumerate(counters):
                row = await conn.fetchrow(
                    "SELECT spent, reserved FROM budget_counters WHERE gateway = $1 AND budget = $2 AND win = $3 "
                    "AND scope = $4",
                    self.gateway_id,
                    c.budget,
                    c.window,
                    c.scope,
                )
                spent, reserved = (row["spent"], row["reserved"]) if row else (0, 0)
                if spent + reserved >= c.limit or spent + reserved + amount > c.limit:
                    return i  # the transaction commits what reclaim did
            for c in counters:
                await self._add(conn, c.ident, 0, amount, c.expires_at)
            await conn.execute(
                "INSERT INTO budget_leases (gateway, id, amount, counters, deadline) VALUES ($1, $2, $3, $4, $5)",
                self.gateway_id,
                lease,
                amount,
                json.dumps([c.ident for c in counters]),
                now + ttl,
            )
        return -1

    async def settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None:
        pool = await self._db()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._gateway_lock)
            reclaimed = await conn.fetchval(
                "DELETE FROM budget_leases WHERE gateway = $1 AND id = $2 RETURNING reclaimed", self.gateway_id, lease
            )
            if reclaimed is None:
                return  # never reserved (a reserve that timed out before it ran)
            for c in counters:
                if reclaimed:
                    await self._add(conn, c.ident, actual - amount, 0, c.expires_at)
                else:
                    await self._add(conn, c.ident, actual, -amount, c.expires_at)

    async def read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        pool = await self._db()
        out: list[CounterState] = []
        for budget, win in windows:
            rows = await pool.fetch(
                "SELECT scope, spent, reserved FROM budget_counters WHERE gateway = $1 AND budget = $2 AND win = $3",
                self.gateway_id,
                budget,
                win,
            )
            out += [CounterState(budget, r["scope"], win, r["spent"], r["reserved"]) for r in rows]
        return out

    async def aclose(self) -> None:
        await self._pools.aclose()
