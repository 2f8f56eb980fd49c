"""Target selection without ASGI: fairness, weights, latency preference, breaker, recovery."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from aigw_asgi.config import RouteConfig, RouteTarget
from aigw_asgi.routing.balance import (
    FallbackSelector,
    LeastLatencySelector,
    RoundRobinSelector,
    WeightedSelector,
    compile_routes,
    is_target_failure,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fallback_is_config_order() -> None:
    sel = FallbackSelector(3)
    assert [sel.order() for _ in range(3)] == [[0, 1, 2]] * 3


def test_round_robin_rotates_and_keeps_the_ring_as_fallback() -> None:
    sel = RoundRobinSelector(3)
    assert [sel.order() for _ in range(4)] == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]


async def test_round_robin_is_exactly_fair_under_concurrency() -> None:
    sel = RoundRobinSelector(3)

    async def one() -> int:
        await asyncio.sleep(0)  # interleave with the others
        choice = sel.order()[0]
        await asyncio.sleep(0)
        return choice

    picks = await asyncio.gather(*(one() for _ in range(99)))
    assert Counter(picks) == {0: 33, 1: 33, 2: 33}


def test_weighted_is_exact_per_cycle_and_smooth() -> None:
    sel = WeightedSelector([5, 1, 1])
    first_cycle = [sel.order()[0] for _ in range(7)]
    assert first_cycle == [0, 0, 1, 0, 2, 0, 0]  # nginx's smooth sequence: a a b a c a a
    assert Counter(sel.order()[0] for _ in range(700)) == {0: 500, 1: 100, 2: 100}


def test_weighted_fallback_order_lists_every_other_target() -> None:
    sel = WeightedSelector([1, 3])
    order = sel.order()
    assert order == [1, 0]


def test_weighted_fractional_weights_split_within_tolerance() -> None:
    sel = WeightedSelector([0.7, 0.2, 0.1])
    counts = Counter(sel.order()[0] for _ in range(1000))
    assert abs(counts[0] - 700) <= 2 and abs(counts[1] - 200) <= 2 and abs(counts[2] - 100) <= 2


def test_least_latency_measures_everyone_then_prefers_the_fast() -> None:
    sel = LeastLatencySelector(2, explore_every=1000)
    assert sel.order()[0] == 0  # never measured: try it
    sel.record_success(0, 0.5)
    assert sel.order()[0] == 1  # the other one was never measured either
    sel.record_success(1, 0.05)
    assert [sel.order()[0] for _ in range(10)] == [1] * 10
    assert sel.order() == [1, 0]


def test_least_latency_explores_and_recovers_a_healed_target() -> None:
    sel = LeastLatencySelector(2, explore_every=5)
    sel.order()
    sel.record_success(0, 0.5)  # slow
    sel.order()
    sel.record_success(1, 0.05)
    chosen = []
    for _ in range(40):
        first = sel.order()[0]
        chosen.append(first)
        sel.record_success(first, 0.01 if first == 0 else 0.2)  # 0 healed, 1 got slow
    assert chosen[:2] == [1, 1]  # still believed fast …
    assert 0 in chosen[:6]  # … until 0 is looked at again …
    assert Counter(chosen[-10:])[0] >= 8, chosen  # … and, once its EWMA caught up, preferred
    assert 1 in chosen[-10:]  # while the slow one is still looked at now and then


def test_failures_penalise_and_open_the_circuit_until_a_probe_succeeds() -> None:
    clock = Clock()
    sel = LeastLatencySelector(2, failure_threshold=3, cooldown_s=30, explore_every=1000, clock=clock)
    sel.record_success(0, 0.01)
    sel.record_success(1, 0.2)
    assert sel.order()[0] == 0
    sel.record_failure(0)  # one failure: the penalty alone demotes it
    assert sel.order() == [1, 0]
    sel.record_failure(0)
    sel.record_failure(0)  # third in a row: circuit open
    assert sel.health[0].open_until == clock.now + 30
    sel.record_success(1, 0.001)  # even if 1 were slower than 0's old EWMA, 0 stays last
    clock.now += 29
    assert sel.order() == [1, 0]
    clock.now += 2  # cooldown over: exactly one probe goes to 0
    assert sel.order() == [0, 1]
    assert sel.order() == [1, 0]  # no second probe while the first is out
    sel.record_failure(0)  # the probe failed: open again at once
    clock.now += 31
    assert sel.order()[0] == 0  # next probe
    sel.record_success(0, 0.01)
    assert sel.health[0].open_until is None and sel.health[0].failures == 0


def test_a_lost_probe_is_retried_after_another_cooldown() -> None:
    clock = Clock()
    sel = LeastLatencySelector(2, failure_threshold=1, cooldown_s=10, explore_every=1000, clock=clock)
    sel.record_success(1, 0.1)
    sel.record_failure(0)
    clock.now += 11
    assert sel.order()[0] == 0  # probe … whose verdict never comes back
    clock.now += 5
    assert sel.order()[0] == 1
    clock.now += 6
    assert sel.order()[0] == 0


def test_compile_routes() -> None:
    routes = compile_routes(
        {
            "r": RouteConfig(
                targets=[RouteTarget("openai", "a"), RouteTarget("anthropic", "b", alias="k2", weight=2)],
                strategy="round-robin",
            )
        }
    )
    plan = routes["r"].plan()
    assert [(i, t.label) for i, t in plan] == [(0, "openai/a"), (1, "anthropic/b#k2")]
    assert [i for i, _ in routes["r"].plan()] == [1, 0]


@pytest.mark.parametrize(
    ("status", "code", "failed"),
    [
        (None, None, True),
        (500, None, True),
        (429, None, True),
        (504, 2006, True),
        (429, 2003, False),
        (400, None, False),
        (404, None, False),
    ],
)
def test_is_target_failure(status: int | None, code: int | None, failed: bool) -> None:
    assert is_target_failure(status, code) is failed
