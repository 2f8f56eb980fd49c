"""Property: under any interleaving of reserve, settle and reclaim, spend never exceeds the budget.

Hypothesis generates the interleavings: which requests reserve on which counters, in which order
they settle, for how much (never more than they reserved — the estimate's promise), and when the
clock jumps far enough to reclaim leases whose process died. After every step no counter has
``spent + reserved`` above its limit, nothing goes negative, and once everything is settled
nothing stays reserved. The model runs first (fast, many examples); then the same generated
schedules run as real concurrent tasks against SQLite, Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from aigw_asgi.budgets.ledger import Counter, Ledger, LedgerState
from aigw_asgi.budgets.postgres import PostgresLedger
from aigw_asgi.budgets.redis import RedisLedger
from aigw_asgi.budgets.sqlite import SQLiteLedger

FAR = 4_000_000_000.0
COUNTERS = (
    Counter("gateway", "", "w", 1_000, FAR),
    Counter("token", "team-a", "w", 400, FAR),
    Counter("key:k", "", "total", 250, None),
)
TTL = 60.0


@dataclass(frozen=True)
class Reserve:
    counters: tuple[int, ...]
    amount: int


@dataclass(frozen=True)
class Settle:
    pick: int  # which outstanding lease (modulo how many there are)
    share: float  # actual = amount * share (0..1: the real cost never exceeds the reservation)


@dataclass(frozen=True)
class Tick:
    seconds: float  # may pass the TTL: leases whose process "died" get reclaimed


ops = st.lists(
    st.one_of(
        st.builds(
            Reserve,
            counters=st.sets(st.integers(0, 2), min_size=1).map(lambda s: tuple(sorted(s))),
            amount=st.integers(0, 300),
        ),
        st.builds(Settle, pick=st.integers(0, 1000), share=st.floats(0, 1)),
        st.builds(Tick, seconds=st.sampled_from([0.5, 10.0, TTL + 1])),
    ),
    max_size=60,
)


def check(state: LedgerState) -> None:
    for counter in COUNTERS:
        spent, reserved = state.counters.get(counter.ident, (0, 0))
        assert spent >= 0 and reserved >= 0
        assert spent + reserved <= counter.limit, (counter.budget, spent, reserved)


@settings(max_examples=500, deadline=None)
@given(ops)
def test_model_never_overspends(schedule: list) -> None:
    state = LedgerState()
    now = 1_000.0
    outstanding: list[tuple[str, tuple[Counter, ...], int]] = []
    for n, op in enumerate(schedule):
        if isinstance(op, Reserve):
            counters = tuple(COUNTERS[i] for i in op.counters)
            if state.reserve(f"l{n}", counters, op.amount, now=now, ttl=TTL) == -1:
                outstanding.append((f"l{n}", counters, op.amount))
        elif isinstance(op, Settle) and outstanding:
            lease, counters, amount = outstanding.pop(op.pick % len(outstanding))
            state.settle(lease, counters, amount, int(amount * op.share))
        elif isinstance(op, Tick):
            now += op.seconds
            state.reclaim(now)
        check(state)
    for lease, counters, amount in outstanding:
        state.settle(lease, counters, amount, amount)
        check(state)
    assert all(reserved == 0 for _, reserved in state.counters.values())


# -- the same schedules as real concurrent tasks against the shared storages ---------------------


async def run_concurrently(ledger: Ledger, schedule: list) -> None:
    """Every Reserve is a task that reserves, waits a little, then settles: they all overlap."""
    reserves = [op for op in schedule if isinstance(op, Reserve)]
    settles = [op.share for op in schedule if isinstance(op, Settle)] or [1.0]

    async def request(n: int, op: Reserve) -> None:
        counters = [COUNTERS[i] for i in op.counters]
        if await ledger.reserve(f"c{n}", counters, op.amount, now=1_000.0, ttl=3600) == -1:
            await asyncio.sleep(0)
            share = settles[n % len(settles)]
            await ledger.settle(f"c{n}", counters, op.amount, int(op.amount * share))

    await asyncio.gather(*(request(n, op) for n, op in enumerate(reserves)))
    for state in await ledger.read([(c.budget, c.window) for c in COUNTERS]):
        limit = next(c.limit for c in COUNTERS if c.budget == state.budget)
        assert state.reserved == 0 and 0 <= state.spent <= limit


_shared = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@_shared
@given(ops)
def test_sqlite_never_overspends(tmp_path: Path, schedule: list) -> None:
    path = tmp_path / "ledger.db"
    path.unlink(missing_ok=True)

    async def go() -> None:
        ledger = SQLiteLedger(str(path), "gw")
        try:
            await run_concurrently(ledger, schedule)
        finally:
            await ledger.aclose()

    asyncio.run(go())


@_shared
@given(ops)
def test_redis_never_overspends(redis_server, schedule: list) -> None:
    if not redis_server.running:
        redis_server.start()
    redis_server.flushall()

    async def go() -> None:
        ledger = RedisLedger(redis_server.url, "gw")
        try:
            await run_concurrently(ledger, schedule)
        finally:
            await ledger.aclose()

    asyncio.run(go())


@_shared
@given(ops)
def test_postgres_never_overspends(postgres_server, schedule: list) -> None:
    if not postgres_server.running:
        postgres_server.start()
    url = postgres_server.create_database(f"budgetprop{next(_databases)}")

    async def go() -> None:
        ledger = PostgresLedger(url, "gw", timeout_s=10)
        try:
            await run_concurrently(ledger, schedule)
        finally:
            await ledger.aclose()

    asyncio.run(go())


_databases = itertools.count(1)
