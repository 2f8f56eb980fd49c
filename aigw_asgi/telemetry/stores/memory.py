"""The memory log store (``memory://``): one process, lost on restart; tests and demos."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..analytics import aggregate, analytics_row
from ..query import LogQuery, matches, order, page
from ..records import LogRecord


class MemoryLogStore:
    """Rows in a dict, insertion-ordered (so the oldest row is the first one)."""

    kind = "memory"

    def __init__(self, *, max_logs: int = 1_000_000, strategy: str = "DELETE_OLDEST", max_age: int = 0) -> None:
        self.max_logs = max_logs
        self.strategy = strategy
        self.max_age = max_age
        self.refused = 0
        self._rows: dict[str, LogRecord] = {}

    async def write(self, records: Sequence[LogRecord]) -> int:
        if self.strategy == "STOP_INSERTING":
            room = max(self.max_logs - len(self._rows), 0)
            self.refused += max(len(records) - room, 0)
            records = records[:room]
        for r in records:
            self._rows[r.id] = r
        while len(self._rows) > self.max_logs:
            del self._rows[next(iter(self._rows))]
        if self.max_age:  # oldest first: stop at the first row young enough
            cutoff = time.time() - self.max_age
            while self._rows and (oldest := next(iter(self._rows.values()))).created_at < cutoff:
                del self._rows[oldest.id]
        return len(records)

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        return self._rows.get(log_id)

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        found = order([r for r in self._rows.values() if matches(r, q)], q)
        return page(found, q), len(found)

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        row = self._rows.get(log_id)
        if row is not None:
            for key, value in changes.items():
                setattr(row, key, value)
        return row

    async def delete(self, q: LogQuery) -> int:
        doomed = order([r for r in self._rows.values() if matches(r, q)], q)[: q.limit]
        for r in doomed:
            del self._rows[r.id]
        return len(doomed)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        return aggregate((analytics_row(r) for r in self._rows.values() if matches(r, q)), q)

    async def count(self) -> int:
        return len(self._rows)

    async def aclose(self) -> None:
        return None
