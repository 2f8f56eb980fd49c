"""Log filters, ordering and analytics, as pure functions every store shares.

`LogQuery` is what ``GET /admin/logs``, ``DELETE /admin/logs`` and ``GET /admin/analytics``
accept (parsed and validated by `parse_query`, so a typo is a 400, never a silently ignored
filter). Stores that cannot filter natively (memory, Redis) use `matches` and `select`; SQLite
translates the same query to SQL. `aggregate` computes the analytics of any rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ..errors import InvalidRequest
from .records import LogRecord, iso

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


# -- analytics ------------------------------------------------------------------------------------


class AnalyticsRow(NamedTuple):
    created_at: float
    provider: str | None
    model: str | None
    metadata: Mapping[str, Any] | None
    cost: float | None
    tokens_in: int | None
    tokens_out: int | None
    cached: bool
    success: bool
    duration_ms: float | None


def analytics_row(r: LogRecord) -> AnalyticsRow:
    return AnalyticsRow(
        r.created_at, r.provider, r.model, r.metadata, r.cost, r.tokens_in, r.tokens_out, r.cached, r.success,
        r.duration_ms,
    )  # fmt: skip


def summary(
    requests: int,
    errors: int,
    cached: int,
    tokens_in: int,
    tokens_out: int,
    cost: float,
    p50: float | None,
    p95: float | None,
) -> dict[str, Any]:
    """One total or group of ``GET /admin/analytics``: the same keys from every store.

    ``latency_p50_ms``/``latency_p95_ms`` are nearest-rank percentiles of ``duration_ms``
    (``None`` when no row has a duration); ``duration_ms_p50``/``duration_ms_p95`` are their
    older names, kept so existing clients keep working.
    """
    p50 = None if p50 is None else float(p50)
    p95 = None if p95 is None else float(p95)
    return {
        "requests": requests,
        "errors": errors,
        "cached": cached,
        "cache_hit_rate": round(cached / requests, 6) if requests else 0.0,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": round(cost, 10),
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
        "duration_ms_p50": p50,
        "duration_ms_p95": p95,
    }


def percentile_rank(p: float, n: int) -> int:
    """The 1-based nearest rank of percentile ``p`` among ``n`` ordered values (what SQL's
    ``percentile_disc`` picks: the first value whose cumulative share reaches ``p``)."""
    return max(math.ceil(p * n), 1)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (``None`` when empty)."""
    if not ordered:
        return None
    return ordered[percentile_rank(p, len(ordered)) - 1]


def walk_percentiles(
    ordered: Iterable[Sequence[Any]], counts: Mapping[tuple[Any, ...], int]
) -> tuple[dict[tuple[Any, ...], tuple[float | None, float | None]], tuple[float | None, float | None]]:
    """p50/p95 of every group and of all rows, from one pass over ``(*group key, duration)`` rows
    sorted by duration (ascending), given each group's number of durations.

    Why one global order serves every group: restricted to one group, the global order is that
    group's own order, so counting each group's rows as they pass finds its nearest ranks. A SQL
    store sorts once (``ORDER BY duration_ms``) instead of once per group, and the walk stops as
    soon as every group and the total have their 95th percentile.
    """
    todo: dict[tuple[Any, ...], list[Any]] = {}  # key -> [rank50, rank95, seen, p50, p95]
    total = 0
    for key, n in counts.items():
        if n:
            todo[key] = [percentile_rank(0.5, n), percentile_rank(0.95, n), 0, None, None]
            total += n
    all_ranks = (percentile_rank(0.5, total), percentile_rank(0.95, total)) if total else (0, 0)
    overall: list[float | None] = [None, None]
    pending = len(todo) + (1 if total else 0)
    seen_all = 0
    for row in ordered:
        if not pending:
            break
        duration = row[-1]
        seen_all += 1
        if seen_all == all_ranks[0]:
            overall[0] = duration
        if seen_all == all_ranks[1]:
            overall[1] = duration
            pending -= 1
        state = todo.get(tuple(row[:-1]))
        if state is None:
            continue
        state[2] += 1
        if state[2] == state[0]:
            state[3] = duration
        if state[2] == state[1]:
            state[4] = duration
            pending -= 1
    return {key: (state[3], state[4]) for key, state in todo.items()}, (overall[0], overall[1])


class _Stats:
    __slots__ = ("cached", "cost", "durations", "errors", "requests", "tokens_in", "tokens_out")

    def __init__(self) -> None:
        self.requests = self.errors = self.cached = self.tokens_in = self.tokens_out = 0
        self.cost = 0.0
        self.durations: list[float] = []

    def add(self, r: AnalyticsRow) -> None:
        self.requests += 1
        self.errors += not r.success
        self.cached += bool(r.cached)
        self.tokens_in += r.tokens_in or 0
        self.tokens_out += r.tokens_out or 0
        if r.cost is not None:
            self.cost += r.cost
        if r.duration_ms is not None:
            self.durations.append(r.duration_ms)

    def result(self) -> dict[str, Any]:
        self.durations.sort()
        return summary(
            self.requests, self.errors, self.cached, self.tokens_in, self.tokens_out, self.cost,
            percentile(self.durations, 0.50), percentile(self.durations, 0.95),
        )  # fmt: skip


class Aggregator:
    """Running analytics for stores that aggregate in Python (memory, Redis): ``add`` rows one
    at a time (memory: the groups and one float per duration, never the rows), then ``result``."""

    def __init__(self, q: LogQuery) -> None:
        self.q = q
        self.totals = _Stats()
        self.groups: dict[tuple[Any, ...], _Stats] = {}

    def add(self, r: AnalyticsRow) -> None:
        self.totals.add(r)
        dims = self.q.group_by
        if dims:
            key = tuple(_dimension(r, d, self.q.interval) for d in dims)
            stats = self.groups.get(key)
            if stats is None:
                stats = self.groups[key] = _Stats()
            stats.add(r)

    def result(self) -> dict[str, Any]:
        groups = [(key, stats.result()) for key, stats in self.groups.items()]
        return analytics_result(self.q, self.totals.result(), groups)


def aggregate(rows: Iterable[AnalyticsRow], q: LogQuery) -> dict[str, Any]:
    """Totals plus one entry per group of ``q.group_by`` (time buckets of ``q.interval`` seconds)."""
    running = Aggregator(q)
    for r in rows:
        running.add(r)
    return running.result()


def analytics_result(
    q: LogQuery, totals: dict[str, Any], groups: Iterable[tuple[tuple[Any, ...], dict[str, Any]]]
) -> dict[str, Any]:
    """The ``GET /admin/analytics`` answer from totals and ``(group key, summary)`` pairs.

    Group keys hold one value per ``q.group_by`` dimension (a time bucket as epoch seconds).
    Groups are ordered by time bucket, then by request count (most first), then by their values
    (no value first), so every store lists equal groups in the same order.
    """
    dims = q.group_by
    out_groups = []
    for key, stats in groups:
        entry: dict[str, Any] = {}
        for dim, value in zip(dims, key, strict=True):
            entry[dim] = iso(float(value)) if dim == "time" else value
        entry.update(stats)
        out_groups.append((key, entry))
    t = dims.index("time") if "time" in dims else None

    def rank(item: tuple[tuple[Any, ...], dict[str, Any]]) -> tuple[Any, ...]:
        key, entry = item
        others = tuple(("", "") if v is None else ("~", str(v)) for i, v in enumerate(key) if i != t)
        return (0.0 if t is None else float(key[t]), -entry["requests"], others)

    out_groups.sort(key=rank)
    return {
        "totals": totals,
        "group_by": dims,
        "interval": q.interval if "time" in dims else None,
        "groups": [entry for _, entry in out_groups],
    }


def _dimension(r: AnalyticsRow, dim: str, interval: int) -> Any:
    if dim == "time":
        return float(int(r.created_at // interval) * interval)
    if dim == "provider":
        return r.provider
    if dim == "model":
        return r.model
    meta = r.metadata or {}
    value = meta.get(dim[9:])
    return None if value is None else meta_text(value)
