"""Analytics of log rows (``GET /admin/analytics``), as pure functions every store shares.

A store hands rows (or its own SQL sums) over as `AnalyticsRow`s; `aggregate` groups them by
the query's ``group_by`` dimensions (time buckets, provider, model, a metadata key) and computes
requests, errors, cache hits, tokens, cost and the latency percentiles. Stores that sum natively (SQLite,
PostgreSQL) build the same result with `summary`, `walk_percentiles` and `analytics_result`,
so every store answers the same query with the same shape. Kept apart from `query` (what a
request may ask for and which rows match) because it only consumes a parsed `LogQuery`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from .query import LogQuery, meta_text
from .records import LogRecord, iso


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
