"""The protocol every log store implements (SPEC §9); backends live one per module beside it.

Stores are written by the telemetry writer task only (never on a request's path) and read by the
admin API. Each enforces ``logs.max_logs`` itself: ``DELETE_OLDEST`` trims the oldest rows after
a write, ``STOP_INSERTING`` refuses new rows once full (counted in ``refused``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..query import LogQuery
from ..records import LogRecord

PATCHABLE = ("feedback", "score", "metadata")


@runtime_checkable
class LogStore(Protocol):
    """What the telemetry writer and the admin API need from a store.

    Optional: ``async write_built(build) -> int``, for a store with a thread of its own: it calls
    ``build()`` (which turns queued requests into rows) on that thread and writes the result, so a
    batch costs one thread handoff instead of two (see `SQLiteLogStore`).

    Optional: ``async write_unredacted(build) -> int``, for a store that redacts on its own side:
    ``build()`` gives each row unredacted beside its request's credentials, and the store must
    redact them before they are stored (see `ProcessSQLiteLogStore`). The writer prefers it.
    """

    kind: str
    refused: int  # rows not stored because the store was full (STOP_INSERTING)

    async def write(self, records: Sequence[LogRecord]) -> int:
        """Store rows (a batch); returns how many were stored."""
        ...

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None: ...

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        """One page of matching rows (without bodies) and the total number of matches."""
        ...

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None: ...

    async def delete(self, q: LogQuery) -> int: ...

    async def analytics(self, q: LogQuery) -> dict[str, Any]: ...

    async def count(self) -> int: ...

    async def aclose(self) -> None: ...
