"""Log stores behind one protocol, one backend per module (SPEC §9), chosen by URL scheme.

    LogStore (protocol, base.py)
    ├── MemoryLogStore   memory://           one process, lost on restart; tests and demos
    ├── SQLiteLogStore   sqlite:///PATH      stdlib sqlite3 on one worker thread, WAL, batched inserts
    └── RedisLogStore    redis://HOST/DB     shared by every gateway instance, capped (redis extra)

Backends are imported when their scheme is asked for, so an install without an optional
driver only fails when its store is configured.
"""

from __future__ import annotations

from ...config import LogsConfig
from ...errors import ConfigError
from .base import PATCHABLE, LogStore

__all__ = ["PATCHABLE", "LogStore", "make_store"]


def make_store(config: LogsConfig, gateway_id: str = "default") -> LogStore:
    """The store a ``logs.store`` URL names."""
    url = config.store
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from .memory import MemoryLogStore

        return MemoryLogStore(max_logs=config.max_logs, strategy=config.strategy)
    if scheme == "sqlite":
        from .sqlite import SQLiteLogStore, sqlite_path

        return SQLiteLogStore(sqlite_path(url), max_logs=config.max_logs, strategy=config.strategy)
    if scheme in ("redis", "rediss"):
        from .redis import RedisLogStore

        return RedisLogStore(url, max_logs=config.max_logs, strategy=config.strategy, gateway_id=gateway_id)
    raise ConfigError(f"logs.store: unsupported store {url!r}")
