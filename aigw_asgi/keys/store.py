"""Where keys live: the log store's database, in a table of their own (SPEC §14, §16).

    KeyStore (protocol)
    ├── MemoryKeyStore     memory://            one process; tests and demos
    ├── SQLiteKeyStore     sqlite:///PATH        the default: the same file as the logs
    ├── RedisKeyStore      redis://              shared by every instance (redis_store.py)
    └── PostgresKeyStore   postgresql://         shared by every instance (postgres_store.py)

Every change bumps a per-gateway ``version`` in the same transaction, so an instance learns that
something changed with one cheap read and reloads the (small) table only then (`KeyResolver`).
Names are unique among a gateway's keys that are not revoked: they are the ``token`` scope of
rate limits and budgets, and two live keys sharing one would share those counters.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..sqlite_thread import SQLiteOnThread
from .model import GatewayKey, NameTaken, policy_fields

__all__ = ["KeyStore", "MemoryKeyStore", "NameTaken", "SQLiteKeyStore", "make_key_store", "sqlite_file", "store_url"]


@runtime_checkable
class KeyStore(Protocol):
    kind: str

    async def version(self) -> int:
        """A number that changes whenever a key of this gateway is created or changed."""
        ...

    async def load(self) -> tuple[int, list[GatewayKey]]:
        """Every key of this gateway (revoked ones included) and the version they are at."""
        ...

    async def get(self, key_id: str) -> GatewayKey | None: ...

    async def insert(self, key: GatewayKey) -> None:
        """Store a new key; raises `NameTaken`."""
        ...

    async def update(self, key: GatewayKey) -> bool:
        """Replace a key that is not revoked (``False`` if it is, or is unknown); raises `NameTaken`.

        Writing a key whose ``revoked_at`` is set revokes it; a revoked key never changes again,
        so a PATCH racing a revocation cannot bring a key back.
        """
        ...

    async def aclose(self) -> None: ...


def store_url(keys_store: str, logs_store: str) -> str:
    """``keys.store``, or the log store's database when it is empty."""
    return keys_store or logs_store


def make_key_store(url: str, gateway_id: str, *, timeout_s: float = 5.0) -> KeyStore:
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryKeyStore(gateway_id)
    if scheme == "sqlite":
        return SQLiteKeyStore(sqlite_file(url), gateway_id)
    if scheme in ("redis", "rediss"):
        from .redis_store import RedisKeyStore

        return RedisKeyStore(url, gateway_id, timeout_s=timeout_s)
    if scheme in ("postgresql", "postgres"):
        from .postgres_store import PostgresKeyStore

        return PostgresKeyStore(url, gateway_id, timeout_s=timeout_s)
    raise ConfigError(f"keys.store: unsupported store {url!r}")


def sqlite_file(url: str) -> str:
    """``sqlite:///aigw.db`` -> ``aigw.db`` (relative), ``sqlite:////var/x.db`` -> ``/var/x.db``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError("expected sqlite:///PATH")
    return rest[1:]


# -- memory ---------------------------------------------------------------------------------------


class MemoryKeyStore:
    kind = "memory"

    def __init__(self, gateway_id: str = "default") -> None:
        self.gateway_id = gateway_id
        self._keys: dict[str, GatewayKey] = {}
        self._version = 0

    async def version(self) -> int:
        return self._version

    async def load(self) -> tuple[int, list[GatewayKey]]:
        return self._version, list(self._keys.values())

    async def get(self, key_id: str) -> GatewayKey | None:
        return self._keys.get(key_id)

    def _check_name(self, key: GatewayKey) -> None:
        if key.revoked_at is None and any(
            k.name == key.name and k.id != key.id and k.revoked_at is None for k in self._keys.values()
        ):
            raise NameTaken(f"name: a key named {key.name!r} already exists")

    async def insert(self, key: GatewayKey) -> None:
        self._check_name(key)
        self._keys[key.id] = key
        self._version += 1

    async def update(self, key: GatewayKey) -> bool:
        current = self._keys.get(key.id)
        if current is None or current.revoked_at is not None:
            return False
        self._check_name(key)
        self._keys[key.id] = key
        self._version += 1
        return True

    async def aclose(self) -> None:
        return None


# -- SQLite ---------------------------------------------------------------------------------------

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS gateway_keys (
        id TEXT PRIMARY KEY, gateway TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        expires_at REAL, revoked_at REAL, policy TEXT NOT NULL)""",
    # One live key per name and gateway, enforced by the database itself (every process agrees).
    """CREATE UNIQUE INDEX IF NOT EXISTS gateway_keys_live_name
        ON gateway_keys (gateway, name) WHERE revoked_at IS NULL""",
    "CREATE TABLE IF NOT EXISTS gateway_keys_version (gateway TEXT PRIMARY KEY, version INTEGER NOT NULL)",
)
_COLUMNS = ("id", "gateway", "name", "digest", "prefix", "created_at", "updated_at", "expires_at", "revoked_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)}, policy FROM gateway_keys"


def _row(key: GatewayKey) -> tuple[Any, ...]:
    return (*(getattr(key, c) for c in _COLUMNS), json.dumps(key.policy(), separators=(",", ":")))


def _key(row: tuple[Any, ...]) -> GatewayKey:
    data = dict(zip(_COLUMNS, row[:-1], strict=True))
    key = GatewayKey(**data)
    return replace(key, **policy_fields(json.loads(row[-1])))


class SQLiteKeyStore:
    """stdlib ``sqlite3`` on one dedicated thread, in the log store's file (WAL: many processes)."""

    kind = "sqlite"

    def __init__(self, path: str, gateway_id: str = "default") -> None:
        self.path = path
        self.gateway_id = gateway_id
        self._sql = SQLiteOnThread(path, _SCHEMA, name="aigw-keys", busy_timeout_ms=5000)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self._sql.run(fn, *args)

    def _db(self) -> Any:
        return self._sql.db()

    def _version(self, db: Any) -> int:
        row = db.execute("SELECT version FROM gateway_keys_version WHERE gateway = ?", (self.gateway_id,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, db: Any) -> None:
        db.execute(
            "INSERT INTO gateway_keys_version (gateway, version) VALUES (?, 1) "
            "ON CONFLICT (gateway) DO UPDATE SET version = version + 1",
            (self.gateway_id,),
        )

    async def version(self) -> int:
        return int(await self._run(lambda: self._version(self._db())))

    def _load(self) -> tuple[int, list[GatewayKey]]:
        db = self._db()
        db.execute("BEGIN")
        try:
            version = self._version(db)
            rows = db.execute(f"{_SELECT} WHERE gateway = ?", (self.gateway_id,)).fetchall()
        finally:
            db.execute("COMMIT")
        return version, [_key(r) for r in rows]

    async def load(self) -> tuple[int, list[GatewayKey]]:
        return await self._run(self._load)  # type: ignore[no-any-return]

    def _get(self, key_id: str) -> GatewayKey | None:
        row = self._db().execute(f"{_SELECT} WHERE id = ? AND gateway = ?", (key_id, self.gateway_id)).fetchone()
        return _key(row) if row else None

    async def get(self, key_id: str) -> GatewayKey | None:
        return await self._run(self._get, key_id)  # type: ignore[no-any-return]

    def _write(self, key: GatewayKey, new: bool) -> bool:
        import sqlite3

        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if new:
                placeholders = ", ".join("?" * (len(_COLUMNS) + 1))
                db.execute(
                    f"INSERT INTO gateway_keys ({', '.join(_COLUMNS)}, policy) VALUES ({placeholders})", _row(key)
                )
                changed = True
            else:
                sets = ", ".join(f"{c} = ?" for c in _COLUMNS[2:])
                cursor = db.execute(
                    f"UPDATE gateway_keys SET {sets}, policy = ? WHERE id = ? AND gateway = ? AND revoked_at IS NULL",
                    (*_row(key)[2:], key.id, self.gateway_id),
                )
                changed = cursor.rowcount == 1
            if changed:
                self._bump(db)
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise NameTaken(f"name: a key named {key.name!r} already exists") from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return changed

    async def insert(self, key: GatewayKey) -> None:
        await self._run(self._write, key, True)

    async def update(self, key: GatewayKey) -> bool:
        return bool(await self._run(self._write, key, False))

    async def aclose(self) -> None:
        await self._sql.aclose()
