"""Keys in PostgreSQL (``postgresql://``), shared by every instance: the SQLite schema, in SQL.

asyncpg (the ``postgres`` extra), a small pool created on first use in the running loop. The
tables are created once under an advisory lock, so instances starting together do not race.
Name uniqueness among live keys is the partial unique index's job, as in SQLite.
"""

from __future__ import annotations

import json
from typing import Any

from ..pgpool import LoopPool
from .model import GatewayKey, NameTaken, policy_fields

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateway_keys (
    id TEXT PRIMARY KEY, gateway TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION, policy TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS gateway_keys_live_name ON gateway_keys (gateway, name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS gateway_keys_version (gateway TEXT PRIMARY KEY, version BIGINT NOT NULL);
"""
_LOCK = 0x6169_6777_6B65_7973  # "aigwkeys": the advisory lock the schema is created under
_COLUMNS = ("id", "gateway", "name", "digest", "prefix", "created_at", "updated_at", "expires_at", "revoked_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)}, policy FROM gateway_keys"
_VERSION = "SELECT version FROM gateway_keys_version WHERE gateway = $1"
_BUMP = (
    "INSERT INTO gateway_keys_version (gateway, version) VALUES ($1, 1) "
    "ON CONFLICT (gateway) DO UPDATE SET version = gateway_keys_version.version + 1"
)


def _key(row: Any) -> GatewayKey:
    data = {c: row[c] for c in _COLUMNS}
    return GatewayKey(**data, **policy_fields(json.loads(row["policy"])))


def _values(key: GatewayKey) -> list[Any]:
    return [*(getattr(key, c) for c in _COLUMNS), json.dumps(key.policy(), separators=(",", ":"))]


class PostgresKeyStore:
    kind = "postgresql"

    def __init__(self, url: str, gateway_id: str = "default", *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.gateway_id = gateway_id
        self.timeout_s = timeout_s
        self._pools = LoopPool(url, timeout_s=timeout_s, lock=_LOCK, schema=_SCHEMA)

    async def _db(self) -> Any:
        return await self._pools.get()

    async def version(self) -> int:
        pool = await self._db()
        found = await pool.fetchval(_VERSION, self.gateway_id)
        return int(found or 0)

    async def load(self) -> tuple[int, list[GatewayKey]]:
        pool = await self._db()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            version = await conn.fetchval(
                "SELECT version FROM gateway_keys_version WHERE gateway = $1", self.gateway_id
            )
            rows = await conn.fetch(f"{_SELECT} WHERE gateway = $1", self.gateway_id)
        return int(version or 0), [_key(r) for r in rows]

    async def get(self, key_id: str) -> GatewayKey | None:
        pool = await self._db()
        row = await pool.fetchrow(f"{_SELECT} WHERE id = $1 AND gateway = $2", key_id, self.gateway_id)
        return _key(row) if row else None

    async def insert(self, key: GatewayKey) -> None:
        import asyncpg  # type: ignore[import-untyped]

        pool = await self._db()
        marks = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 2))
        statement = f"INSERT INTO gateway_keys ({', '.join(_COLUMNS)}, policy) VALUES ({marks})"
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(statement, *_values(key))
                await conn.execute(_BUMP, self.gateway_id)
        except asyncpg.UniqueViolationError:
            raise NameTaken(f"name: a key named {key.name!r} already exists") from None

    async def update(self, key: GatewayKey) -> bool:
        import asyncpg  # type: ignore[import-untyped]

        pool = await self._db()
        values = _values(key)
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(_COLUMNS[2:], start=1))
        n = len(_COLUMNS) - 2
        statement = (
            f"UPDATE gateway_keys SET {sets}, policy = ${n + 1} "
            f"WHERE id = ${n + 2} AND gateway = ${n + 3} AND revoked_at IS NULL"
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                done = await conn.execute(statement, *values[2:], key.id, self.gateway_id)
                changed = done.endswith(" 1")
                if changed:
                    await conn.execute(_BUMP, self.gateway_id)
        except asyncpg.UniqueViolationError:
            raise NameTaken(f"name: a key named {key.name!r} already exists") from None
        return changed

    async def aclose(self) -> None:
        await self._pools.aclose()
