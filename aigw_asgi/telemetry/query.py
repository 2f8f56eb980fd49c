"""Log filters, ordering and analytics, as pure functions every store shares.

`LogQuery` is what ``GET /admin/logs``, ``DELETE /admin/logs`` and ``GET /admin/analytics``
accept (parsed and validated by `parse_query`, so a typo is a 400, never a silently ignored
filter). Stores that cannot filter natively (memory, Redis) use `matches` and `select`; SQLite
translates the same query to SQL. The analytics over the matching rows are `analytics`'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InvalidRequest
from .records import LogRecord

MAX_PER_PAGE = 100
# Filter name -> LogRecord attribute for the min_/max_ range filters.
RANGES = {
    "cost": "cost",
    "duration": "duration_ms",
    "tokens": "total_tokens",
    "tokens_in": "tokens_in",
    "tokens_out": "tokens_out",
}
ORDER_BY = {
    "created_at": "created_at",
    "cost": "cost",
    "duration": "duration_ms",
    "tokens_in": "tokens_in",
    "tokens_out": "tokens_out",
    "tokens": "total_tokens",
    "provider": "provider",
    "model": "model",
    "status_code": "status_code",
}
TEXT_FILTERS = ("id", "provider", "model", "event_id", "request_id", "token_name", "path", "cache_status")
INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}
_PAGING = ("page", "per_page", "order_by", "direction", "limit", "all", "group_by", "interval")


@dataclass(slots=True)
class LogQuery:
    text: dict[str, str] = field(default_factory=dict)  # exact match on TEXT_FILTERS
    success: bool | None = None
    cached: bool | None = None
    status_code: int | None = None
    feedback: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # metadata.KEY=VALUE, compared as text
    start: float | None = None
    end: float | None = None
    ranges: list[tuple[str, str, float]] = field(default_factory=list)  # (attribute, ">=" | "<=", value)
    order_by: str = "created_at"  # a LogRecord attribute (see ORDER_BY)
    descending: bool = True
    page: int = 1
    per_page: int = 20
    limit: int | None = None  # DELETE: at most this many rows
    all: bool = False  # DELETE with no filter must say so
    group_by: list[str] = field(default_factory=list)  # analytics: time, provider, model, metadata.KEY
    interval: int = 3600  # analytics time bucket, seconds

    def has_filters(self) -> bool:
        return bool(
            self.text
            or self.metadata
            or self.ranges
            or self.start is not None
            or self.end is not None
            or self.success is not None
            or self.cached is not None
            or self.status_code is not None
            or self.feedback is not None
        )


def meta_text(value: Any) -> str:
    """How a metadata value compares with a query string: ``true``, ``42``, ``1.5``, ``text``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidRequest(f"Invalid query parameter {name}: expected true or false")


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid query parameter {name}: expected a number") from None
    if not math.isfinite(value):
        raise InvalidRequest(f"Invalid query parameter {name}: expected a number")
    return value


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Invalid query parameter {name}: expected an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"Invalid query parameter {name}: expected {lo} to {hi}")
    return value


def parse_time(name: str, raw: str) -> float:
    """ISO 8601 (``2025-01-31``, ``2025-01-31T12:00:00Z``) or epoch seconds."""
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):  # "nan" and "inf" parse as floats but are no time
            raise InvalidRequest(f"Invalid query parameter {name}: expected ISO 8601 or epoch seconds")
        return seconds
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise InvalidRequest(f"Invalid query parameter {name}: expected ISO 8601 or epoch seconds") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_query(params: Mapping[str, Sequence[str]]) -> LogQuery:
    """A `LogQuery` from query parameters; unknown parameters are a 400 naming them."""
    q = LogQuery()
    for name, values in params.items():
        raw = values[-1]
        if name in TEXT_FILTERS:
            q.text[name] = raw
        elif name.startswith("metadata.") and len(name) > 9:
            q.metadata[name[9:]] = raw
        elif name in ("success", "cached"):
            setattr(q, name, _bool(name, raw))
        elif name == "status_code":
            q.status_code = _int(name, raw, 100, 599)
        elif name == "feedback":
            q.feedback = _int(name, raw, -1, 1)
        elif name in ("start", "start_date"):
            q.start = parse_time(name, raw)
        elif name in ("end", "end_date"):
            q.end = parse_time(name, raw)
        elif name.startswith(("min_", "max_")) and name[4:] in RANGES:
            q.ranges.append((RANGES[name[4:]], ">=" if name.startswith("min_") else "<=", _number(name, raw)))
        elif name == "order_by":
            if raw not in ORDER_BY:
                raise InvalidRequest(f"Invalid query parameter order_by: expected one of {', '.join(ORDER_BY)}")
            q.order_by = ORDER_BY[raw]
        elif name in ("direction", "order_by_direction"):
            if raw not in ("asc", "desc"):
                raise InvalidRequest(f"Invalid query parameter {name}: expected asc or desc")
            q.descending = raw == "desc"
        elif name == "page":
            q.page = _int(name, raw, 1, 1_000_000)
        elif name == "per_page":
            q.per_page = _int(name, raw, 1, MAX_PER_PAGE)
        elif name == "limit":
            q.limit = _int(name, raw, 1, 100_000_000)
        elif name == "all":
            q.all = _bool(name, raw)
        elif name == "group_by":
            q.group_by = [g.strip() for g in raw.split(",") if g.strip()]
            for g in q.group_by:
                if g not in ("time", "provider", "model") and not (g.startswith("metadata.") and len(g) > 9):
                    raise InvalidRequest(
                        "Invalid query parameter group_by: expected time, provider, model or metadata.KEY"
                    )
        elif name == "interval":
            if raw in INTERVALS:
                q.interval = INTERVALS[raw]
            else:
                q.interval = _int(name, raw, 1, 31 * 86400)
        else:
            raise InvalidRequest(f"Unknown query parameter {name[:64]}")
    return q


# -- filtering and ordering in Python (memory and Redis stores) -----------------------------------


def matches(r: LogRecord, q: LogQuery) -> bool:
    for name, value in q.text.items():
        if getattr(r, name) != value:
            return False
    if q.success is not None and r.success != q.success:
        return False
    if q.cached is not None and r.cached != q.cached:
        return False
    if q.status_code is not None and r.status_code != q.status_code:
        return False
    if q.feedback is not None and r.feedback != q.feedback:
        return False
    if q.start is not None and r.created_at < q.start:
        return False
    if q.end is not None and r.created_at > q.end:
        return False
    for attr, op, bound in q.ranges:
        value = getattr(r, attr)
        if value is None or (value < bound if op == ">=" else value > bound):
            return False
    if q.metadata:
        meta = r.metadata or {}
        for key, want in q.metadata.items():
            if key not in meta or meta_text(meta[key]) != want:
                return False
    return True


def order(rows: list[LogRecord], q: LogQuery) -> list[LogRecord]:
    """Sorted by ``q.order_by`` (rows without a value last), ties broken by id (creation order)."""
    attr = q.order_by
    known = [r for r in rows if getattr(r, attr) is not None]
    unknown = [r for r in rows if getattr(r, attr) is None]
    known.sort(key=lambda r: (getattr(r, attr), r.id), reverse=q.descending)
    unknown.sort(key=lambda r: r.id, reverse=q.descending)
    return known + unknown


def page(rows: list[LogRecord], q: LogQuery) -> list[LogRecord]:
    first = (q.page - 1) * q.per_page
    return rows[first : first + q.per_page]
