"""Which ledger a config names: ``spend.storage``, else the log store's database (SPEC §16)."""

from __future__ import annotations

import sqlite3

from ..config import Config
from ..errors import ConfigError
from ..keys.store import sqlite_file
from .ledger import Ledger, MemoryLedger


def ledger_url(config: Config) -> str:
    return config.spend.storage or config.logs.store


def ledger_scheme(config: Config) -> str:
    """The scheme of the configured ledger's URL: what `make_ledger` builds (``memory``, ``redis``…)."""
    return ledger_url(config).split("://", 1)[0]


def make_ledger(config: Config, *, timeout_s: float = 1.0) -> Ledger:
    url = ledger_url(config)
    gateway_id = config.gateway.id
    scheme = ledger_scheme(config)
    if scheme == "memory":
        return MemoryLedger()
    if scheme == "sqlite":
        from .sqlite import SQLiteLedger

        return SQLiteLedger(sqlite_file(url), gateway_id)
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from .redis import RedisLedger

        return RedisLedger(url, gateway_id, timeout_s=timeout_s)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresLedger

        return PostgresLedger(url, gateway_id, timeout_s=timeout_s)
    raise ConfigError(f"spend.storage: unsupported storage {url!r}")


def split_per_worker(config: Config, workers: int) -> list[str]:
    """SPEC §16: what N workers would each keep alone, silently (an error naming the keys).

    Budgets counted in ``memory://`` by N workers could spend N times the budget; keys kept in
    ``memory://`` would each be known to one worker only.
    """
    if workers <= 1:
        return []
    errors = []
    uses_keys = config.gateway.authentication
    if (config.budgets or uses_keys) and ledger_url(config).startswith("memory://"):
        what = "[[budgets]] and per-key budgets" if config.budgets else "per-key budgets"
        errors.append(
            f"{workers} workers with budget counters in memory:// (spend.storage, else logs.store) would each "
            f"count {what} alone (up to {workers}x the budget); use sqlite:///, redis:// or postgresql://"
        )
    if uses_keys and (config.keys.store or config.logs.store).startswith("memory://"):
        errors.append(
            f"{workers} workers with keys in memory:// (keys.store, else logs.store) would each know only the "
            "keys made on them; use sqlite:///, redis:// or postgresql://"
        )
    return errors


def store_failures(kind: str) -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the budget storage is in trouble" (anything else is a bug).

    ``kind`` is the ledger's (`Ledger.kind`) or its URL's scheme (``memory``, ``sqlite``,
    ``redis…``, ``postgres…``): only its driver's errors are added, so a gateway on the defaults
    does not import redis-py and asyncpg at start-up (~250 ms) for a ledger it does not have.
    """
    failures: list[type[BaseException]] = [OSError, sqlite3.Error]
    if kind.startswith("redis"):
        try:
            from redis.exceptions import RedisError

            failures.append(RedisError)
        except ImportError:  # pragma: no cover - depends on the install
            pass
    if kind.startswith("postgres"):
        try:
            import asyncpg  # type: ignore[import-untyped]

            failures += [asyncpg.PostgresError, asyncpg.InterfaceError]
        except ImportError:  # pragma: no cover - depends on the install
            pass
    return tuple(failures)
