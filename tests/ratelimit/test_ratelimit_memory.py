"""`LoopMemoryStorage`: `limits`' in-memory counters without a task and a lock per hit."""

from __future__ import annotations

import asyncio

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter

from aigw_asgi.ratelimit import memory
from aigw_asgi.ratelimit.memory import LoopMemoryStorage
from aigw_asgi.ratelimit.storage import close_storage, storage_from_uri


@pytest.mark.parametrize("strategy", [FixedWindowRateLimiter, SlidingWindowCounterRateLimiter])
async def test_admits_exactly_what_limits_own_memory_storage_admits(strategy) -> None:
    item = parse("5/minute")
    ours, theirs = strategy(LoopMemoryStorage()), strategy(MemoryStorage())
    ours_said, theirs_said = [], []
    for cost in [1, 2, 1, 3, 1, 1]:
        ours_said.append(await ours.hit(item, "k", cost=cost))
        theirs_said.append(await theirs.hit(item, "k", cost=cost))
    assert ours_said == theirs_said
    assert ours_said[:3] == [True, True, True] and ours_said[3] is False  # 4 + 3 > 5
    ours_stats, theirs_stats = await ours.get_window_stats(item, "k"), await theirs.get_window_stats(item, "k")
    assert ours_stats.remaining == theirs_stats.remaining
    assert await ours.test(item, "other") and not await ours.test(item, "k")


async def test_no_task_per_hit_and_counters_expire() -> None:
    storage = LoopMemoryStorage()
    before = len(asyncio.all_tasks())
    for _ in range(50):
        await storage.incr("k", 0.05)
    assert len(asyncio.all_tasks()) == before  # limits' own starts an expiry task per increment
    assert await storage.get("k") == 50
    await asyncio.sleep(0.06)
    assert await storage.get("k") == 0  # an expired window reads as empty
    assert await storage.incr("k", 60) == 1  # and a new one starts from zero
    assert await storage.decr("k", 5) == 0  # never below zero


async def test_the_sweep_drops_expired_counters_nobody_reads(monkeypatch) -> None:
    monkeypatch.setattr(memory, "_SWEEP_EVERY_S", 0.02)
    storage = storage_from_uri("memory://", timeout_s=1, key_prefix="x")
    assert isinstance(storage, LoopMemoryStorage)
    await storage.incr("gone", 0.01)
    await storage.incr("kept", 60)
    await asyncio.sleep(0.1)
    assert "gone" not in storage.storage and "gone" not in storage.expirations
    assert storage.storage["kept"] == 1
    await close_storage(storage)
    assert storage._sweep is None  # closed: no timer left behind in the loop
