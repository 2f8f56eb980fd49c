"""Every ledger storage applies the same rules: memory, SQLite, real Redis (and Cluster), real PostgreSQL.

The same script runs against each, and a burst of concurrent reservations against each proves the
storage's own atomicity (SQLite's write lock, Redis' Lua scripts), not just the rules.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aigw_asgi.budgets.ledger import Counter, CounterState, Ledger, MemoryLedger
from aigw_asgi.budgets.postgres import PostgresLedger
from aigw_asgi.budgets.redis import RedisLedger
from aigw_asgi.budgets.sqlite import SQLiteLedger

NOW = 1_750_000_000.0
FAR = 4_000_000_000.0  # counters expire by the real clock in Redis: keep them


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster", "postgresql"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    kind = request.param
    if kind == "memory":
        made: Ledger = MemoryLedger()
    elif kind == "sqlite":
        made = SQLiteLedger(str(tmp_path / "aigw.db"), "gw")
    elif kind == "redis":
        made = RedisLedger(request.getfixturevalue("redis_url"), "gw")
    elif kind == "postgresql":
        made = PostgresLedger(request.getfixturevalue("postgres_url"), "gw")
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        made = RedisLedger(f"redis+cluster://127.0.0.1:{cluster.port}/0", "gw")
    yield made
    await made.aclose()


A = Counter("monthly", "", "2025-06", 100, FAR)
B = Counter("per-token", "team%2Fa", "2025-06", 50, FAR)
T = Counter("key:k1", "", "total", 1000, None)


async def state(ledger: Ledger, *counters: Counter) -> dict[str, tuple[int, int]]:
    read = await ledger.read([(c.budget, c.window) for c in counters])
    return {s.budget: (s.spent, s.reserved) for s in read}


async def test_reserve_refuse_settle(ledger: Ledger) -> None:
    assert await ledger.reserve("l1", [A, B], 30, now=NOW, ttl=60) == -1
    assert await state(ledger, A, B) == {"monthly": (0, 30), "per-token": (0, 30)}
    # B has 20 left: refused, naming B (index 1), and A is not touched (all or nothing).
    assert await ledger.reserve("l2", [A, B], 21, now=NOW, ttl=60) == 1
    assert await state(ledger, A, B) == {"monthly": (0, 30), "per-token": (0, 30)}
    assert await ledger.reserve("l3", [A, B], 20, now=NOW, ttl=60) == -1  # fits exactly
    assert await ledger.reserve("l4", [B], 0, now=NOW, ttl=60) == 0  # full: even a free request waits
    await ledger.settle("l1", [A, B], 30, 12)
    await ledger.settle("l3", [A, B], 20, 20)
    assert await state(ledger, A, B) == {"monthly": (32, 0), "per-token": (32, 0)}
    await ledger.settle("l3", [A, B], 20, 20)  # settled already: nothing happens
    await ledger.settle("never", [A, B], 20, 0)  # never reserved: nothing happens
    assert await state(ledger, A, B) == {"monthly": (32, 0), "per-token": (32, 0)}


async def test_a_lease_whose_process_died_is_charged_in_full_then_corrected(ledger: Ledger) -> None:
    assert await ledger.reserve("dead", [A], 40, now=NOW, ttl=60) == -1
    assert await ledger.reserve("live", [T], 5, now=NOW + 61, ttl=60) == -1  # any reserve reclaims
    assert await state(ledger, A) == {"monthly": (40, 0)}
    await ledger.settle("dead", [A], 40, 15)  # the request did finish after all, late
    assert await state(ledger, A) == {"monthly": (15, 0)}
    await ledger.settle("live", [T], 5, 5)
    assert await state(ledger, T) == {"key:k1": (5, 0)}


async def test_scope_values_are_counted_apart(ledger: Ledger) -> None:
    other = Counter("per-token", "team-b", "2025-06", 50, FAR)
    assert await ledger.reserve("1", [B], 50, now=NOW, ttl=60) == -1
    assert await ledger.reserve("2", [other], 50, now=NOW, ttl=60) == -1
    read = await ledger.read([("per-token", "2025-06")])
    assert sorted(read, key=lambda s: s.scope) == [
        CounterState("per-token", "team%2Fa", "2025-06", 0, 50),
        CounterState("per-token", "team-b", "2025-06", 0, 50),
    ]
    assert await ledger.read([("per-token", "2025-07")]) == []


async def test_a_burst_of_concurrent_reservations_never_overbooks(ledger: Ledger) -> None:
    """200 reservations at once on a counter that fits 10: exactly 10 are admitted."""
    counter = Counter("burst", "", "2025-06", 10 * 7, FAR)
    results = await asyncio.gather(*(ledger.reserve(f"b{i}", [counter], 7, now=NOW, ttl=60) for i in range(200)))
    assert results.count(-1) == 10 and results.count(0) == 190
    admitted = [f"b{i}" for i, r in enumerate(results) if r == -1]
    rng = random.Random(7)
    await asyncio.gather(*(ledger.settle(lease, [counter], 7, rng.randint(0, 7)) for lease in admitted))
    (final,) = await ledger.read([("burst", "2025-06")])
    assert final.reserved == 0 and final.spent <= counter.limit
