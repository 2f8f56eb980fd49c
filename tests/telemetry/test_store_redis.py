"""What only the Redis store has: a page costs what the page holds (sorted-set indexes), no
temporary key outlives a query, and rows an older version wrote get indexed on first use."""

from __future__ import annotations

from typing import Any

import redis

from aigw_asgi.telemetry.query import parse_query
from aigw_asgi.telemetry.stores.redis import RedisLogStore
from tests.telemetry.test_store import row, varied_rows


def q(**params: Any) -> Any:
    return parse_query({k: [str(v)] for k, v in params.items()})


def commands(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_a_page_reads_the_page_not_the_history(redis_url: str) -> None:
    rows = varied_rows(2000)
    store = RedisLogStore(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        await store.write(rows)
        for params in ({}, {"provider": "openai", "page": 5}, {"per_page": 50, "page": 20, "direction": "asc"}):
            client.config_resetstat()
            found, total = await store.query(q(**params))
            assert total > 100 and len(found) == q(**params).per_page
            calls = commands(client)
            calls.pop("config|resetstat", None)
            # One count, one ranged read of ids, one MGET of exactly the page's rows.
            assert calls.get("mget") == 1 and sum(calls.values()) <= 4, calls
        client.config_resetstat()
        found, total = await store.query(q(provider="openai", model="m2", success="true", order_by="cost"))
        calls = commands(client)
        assert calls.get("mget") == 1 and calls.get("zinterstore"), calls  # intersected in Redis, one page read
        assert not client.keys(f"{store.prefix}:tmp:*")  # no temporary key left behind
    finally:
        client.close()
        await store.aclose()


async def test_rows_of_the_previous_layout_are_indexed_on_first_use(redis_url: str) -> None:
    """The previous store kept only ``P:row:{id}`` and the ``P:index`` zset."""
    old = [row(0, provider="anthropic"), row(1), row(2, provider="anthropic", metadata={"team": "a"})]
    client = redis.Redis.from_url(redis_url)
    prefix = "aigw:logs:default"
    try:
        for r in old:
            client.set(f"{prefix}:row:{r.id}", r.to_json())
            client.zadd(f"{prefix}:index", {r.id: r.created_at})
        store = RedisLogStore(redis_url)
        try:
            found, total = await store.query(q(provider="anthropic"))
            assert total == 2 and {r.id for r in found} == {old[0].id, old[2].id}
            found, _ = await store.query(q(**{"metadata.team": "a"}))
            assert [r.id for r in found] == [old[2].id]
            assert client.get(f"{prefix}:schema") == b"2"
            assert await store.delete(q(provider="anthropic")) == 2
            assert await store.count() == 1 and not client.zcard(f"{prefix}:ix:provider:anthropic")
        finally:
            await store.aclose()
    finally:
        client.close()
