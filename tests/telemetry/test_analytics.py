"""`analytics`: the pure functions every store's ``GET /admin/analytics`` answer is built from.

The stores' own tests (test_store*.py) check the answers end to end; these pin the pieces: the
nearest-rank percentile, the one-pass walk a SQL store uses against a per-group sort, and the
grouping and ordering of `aggregate`.
"""

from __future__ import annotations

import random

from aigw_asgi.telemetry.analytics import AnalyticsRow, aggregate, percentile, percentile_rank, walk_percentiles
from aigw_asgi.telemetry.query import LogQuery


def _row(created_at: float, provider: str | None, duration: float | None, **kw: object) -> AnalyticsRow:
    fields: dict[str, object] = {
        "created_at": created_at, "provider": provider, "model": "m", "metadata": None, "cost": None,
        "tokens_in": None, "tokens_out": None, "cached": False, "success": True, "duration_ms": duration,
    }  # fmt: skip
    fields.update(kw)
    return AnalyticsRow(**fields)  # type: ignore[arg-type]


def test_nearest_rank_percentiles() -> None:
    assert percentile_rank(0.5, 1) == 1 and percentile_rank(0.95, 1) == 1
    assert percentile_rank(0.5, 4) == 2 and percentile_rank(0.95, 20) == 19 and percentile_rank(0.95, 21) == 20
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0  # the first value whose share reaches 50 %
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_one_walk_finds_every_groups_percentiles() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        n = rnd.randint(0, 40)
        rows = [(rnd.choice("abc"), rnd.choice((None, "x")), float(rnd.randint(0, 50))) for _ in range(n)]
        ordered = sorted(rows, key=lambda r: r[2])
        counts: dict[tuple[object, ...], int] = {}
        for a, b, _ in rows:
            counts[(a, b)] = counts.get((a, b), 0) + 1
        groups, overall = walk_percentiles(ordered, counts)
        for key in counts:
            durations = sorted(d for a, b, d in rows if (a, b) == key)
            assert groups[key] == (percentile(durations, 0.5), percentile(durations, 0.95))
        every = sorted(d for *_, d in rows)
        assert overall == (percentile(every, 0.5), percentile(every, 0.95))


def test_aggregate_groups_by_time_then_requests() -> None:
    rows = [
        _row(0, "openai", 10.0, tokens_in=3, cost=0.5),
        _row(10, "openai", 30.0, success=False, cached=True),
        _row(20, "anthropic", None),
        _row(3600, "anthropic", 5.0),
    ]
    out = aggregate(rows, LogQuery(group_by=["time", "provider"], interval=3600))
    totals = out["totals"]
    assert (totals["requests"], totals["errors"], totals["cached"], totals["tokens_in"]) == (4, 1, 1, 3)
    assert totals["cost"] == 0.5 and totals["cache_hit_rate"] == 0.25
    assert totals["latency_p50_ms"] == 10.0 and totals["latency_p95_ms"] == 30.0  # rows without one are left out
    listed = [(g["provider"], g["requests"]) for g in out["groups"]]
    assert listed == [("openai", 2), ("anthropic", 1), ("anthropic", 1)]
    assert out["groups"][0]["time"] == out["groups"][1]["time"] != out["groups"][2]["time"]
    assert out["groups"][1]["latency_p50_ms"] is None
    assert out["interval"] == 3600 and out["group_by"] == ["time", "provider"]
    assert aggregate(rows, LogQuery())["groups"] == []
