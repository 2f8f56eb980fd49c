"""Log stores behind one protocol, one backend per module (SPEC §9), chosen by URL scheme.

    LogStore (protocol, base.py)
    ├── MemoryLogStore   memory://           one process, lost on restart; tests and demos
    ├── SQLiteLogStore   sqlite:///PATH      stdlib sqlite3 on one worker thread, WAL, batched inserts
    │   └── ProcessSQLiteLogStore            the same, rows redacted and written in a child process
    ├── RedisLogStore    redis://HOST/DB     shared by every instance, sorted-set indexes (redis extra)
    └── PostgresLogStore postgresql://…      shared by every instance, SQL filters and analytics
                                             (postgres extra: asyncpg)

Backends are imported when their scheme is asked for, so an install without an optional
driver only fails when its store is configured.
"""

from __future__ import annotations

from ...config import LogsConfig
from ...errors import ConfigError
from .base import PATCHABLE, LogStore

__all__ = ["PATCHABLE", "LogStore", "make_store"]


def make_store(config: LogsConfig, gateway_id: str = "default", secrets: frozenset[str] = frozenset()) -> LogStore:
    """The store a ``logs.store`` URL names. ``secrets``: what the gateway redacts, for a store
    that redacts in a process of its own (``logs.writer = "process"``)."""
    url = config.store
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from .memory import MemoryLogStore

        return MemoryLogStore(max_logs=config.max_logs, strategy=config.strategy, max_age=config.max_age)
    if scheme == "sqlite":
        from .sqlite import SQLiteLogStore, in_memory, sqlite_path

        path = sqlite_path(url)
        if config.writer == "process" and not in_memory(path):
            from .sqlite_process import ProcessSQLiteLogStore

            return ProcessSQLiteLogStore(
                path, secrets=secrets, max_logs=config.max_logs, strategy=config.strategy, max_age=config.max_age
            )
        return SQLiteLogStore(path, max_logs=config.max_logs, strategy=config.strategy, max_age=config.max_age)
    if scheme in ("redis", "rediss"):
        from .redis import RedisLogStore

        return RedisLogStore(
            url,
            max_logs=config.max_logs,
            strategy=config.strategy,
            max_age=config.max_age,
            gateway_id=gateway_id,
            timeout=config.timeout_ms / 1000,
        )
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresLogStore

        return PostgresLogStore(
            url,
            max_logs=config.max_logs,
            strategy=config.strategy,
            max_age=config.max_age,
            pool_size=config.pool_size,
            timeout=config.timeout_ms / 1000,
        )
    raise ConfigError(f"logs.store: unsupported store {url!r}")
