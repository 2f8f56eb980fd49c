"""The shared circuit breaker: one failure is that request's problem; a streak opens the circuit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aigw_asgi.breaker import Breaker, StorageDown

logger = logging.getLogger("tests.breaker")


class Store:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def get(self) -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError("down")
        return "value"


async def test_one_failure_does_not_open_the_circuit() -> None:
    store, breaker = Store(), Breaker(what="store", logger=logger, timeout_s=1, threshold=3)
    store.failing = True
    with pytest.raises(StorageDown):
        await breaker.call(store.get)
    store.failing = False
    assert breaker.available() and await breaker.call(store.get) == "value"
    assert breaker.streak == 0 and store.calls == 2


async def test_consecutive_failures_open_it_and_a_failed_probe_reopens_it_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger.name)
    store, breaker = Store(), Breaker(what="store", logger=logger, timeout_s=1, backoff_s=0.05, threshold=3)
    store.failing = True
    for _ in range(3):
        with pytest.raises(StorageDown):
            await breaker.call(store.get)
    assert not breaker.available()
    with pytest.raises(StorageDown):  # open: the store is not even asked
        await breaker.call(store.get)
    assert store.calls == 3
    await asyncio.sleep(0.06)
    with pytest.raises(StorageDown):  # the probe fails: open again without another streak
        await breaker.call(store.get)
    assert store.calls == 4 and not breaker.available()
    await asyncio.sleep(0.06)
    store.failing = False
    assert await breaker.call(store.get) == "value" and breaker.available()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "unavailable" in warnings[0] and "reachable again" in warnings[1]


async def test_a_slow_call_is_bounded_and_counts_as_one_failure() -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    breaker = Breaker(what="store", logger=logger, timeout_s=0.01, threshold=2)
    with pytest.raises(StorageDown):
        await breaker.call(slow)
    assert breaker.available() and breaker.streak == 1
