"""Cache storages: the memory LRU, and Redis against a real redis-server (killed mid-test too)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from aigw_asgi.cache.storage import CachedResponse, MemoryStorage, RedisStorage, storage_from_config
from aigw_asgi.config import CacheConfig
from tests.servers import RedisServer


def entry(body: bytes = b'{"ok":true}', provider: str = "openai", **kw: object) -> CachedResponse:
    return CachedResponse(200, [(b"content-type", b"application/json")], body, provider=provider, **kw)  # type: ignore[arg-type]


def test_encoding_round_trips_without_pickle() -> None:
    original = CachedResponse(
        201,
        [(b"content-type", b"text/event-stream"), (b"x-odd", "é".encode("latin-1"))],
        b"data: {}\n\n\x00\xff",
        provider="anthropic",
        stored_at=1234.5,
        stream=True,
        model="claude-fake-1",
    )
    data = original.encode()
    assert data.startswith(b"AGC1") and b"pickle" not in data
    decoded = CachedResponse.decode(data)
    assert decoded is not None
    assert (decoded.status, decoded.headers, decoded.body, decoded.provider) == (
        201,
        original.headers,
        original.body,
        "anthropic",
    )
    assert decoded.stream and decoded.stored_at == 1234.5 and decoded.model == "claude-fake-1"
    assert decoded.content_length == str(len(original.body)).encode()


@pytest.mark.parametrize(
    "junk", [b"", b"AGC1", b"\x80\x04pickle", b"AGC1\x00\x00\x00\x05{bad}", b"AGC1\x00\x00\x00\x02[]"]
)
def test_decoding_junk_is_a_miss(junk: bytes) -> None:
    assert CachedResponse.decode(junk) is None


async def test_memory_get_set_delete_and_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStorage(max_bytes=10_000, max_entry_bytes=5_000)
    await store.set("openai:a", entry(), ttl=60)
    got = await store.get("openai:a")
    assert got is not None and got.body == b'{"ok":true}'
    assert await store.get("openai:b") is None
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 61)
    assert await store.get("openai:a") is None  # expired
    assert len(store) == 0 and store.size == 0
    monkeypatch.undo()
    await store.set("openai:a", entry(), ttl=60)
    assert await store.delete("openai:a") and not await store.delete("openai:a")


async def test_memory_lru_is_bounded_by_bytes_and_keeps_recently_used() -> None:
    one = entry(b"x" * 1000)
    store = MemoryStorage(max_bytes=one.size * 3, max_entry_bytes=one.size)
    for name in "abc":
        await store.set(f"openai:{name}", entry(b"x" * 1000), ttl=60)
    assert await store.get("openai:a") is not None  # a is now the most recent
    await store.set("openai:d", entry(b"x" * 1000), ttl=60)
    assert await store.get("openai:b") is None  # b was least recently used
    assert all([await store.get(f"openai:{n}") for n in "acd"])
    assert store.size <= store.max_bytes
    await store.set("openai:big", entry(b"x" * 1001), ttl=60)  # above the per-entry cap
    assert await store.get("openai:big") is None


async def test_memory_purge_by_provider_and_all() -> None:
    store = MemoryStorage()
    await store.set("openai:1", entry(), ttl=60)
    await store.set("openai:2", entry(), ttl=60)
    await store.set("anthropic:1", entry(provider="anthropic"), ttl=60)
    assert await store.purge("openai") == 2
    assert await store.get("anthropic:1") is not None
    assert await store.purge() == 1 and len(store) == 0 and store.size == 0


def test_storage_from_config() -> None:
    assert isinstance(storage_from_config(CacheConfig()), MemoryStorage)
    redis_store = storage_from_config(CacheConfig(storage="redis://127.0.0.1:1/0", key_prefix="p"), "gw")
    assert isinstance(redis_store, RedisStorage) and redis_store.prefix == "p:cache:gw:"


async def test_cluster_url_builds_a_cluster_client_without_connecting() -> None:
    from redis.asyncio.cluster import RedisCluster

    for url in ("redis+cluster://127.0.0.1:7000/0", "redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001"):
        client = RedisStorage(url)._make_client()
        assert isinstance(client, RedisCluster)
        if "," in url:
            assert set(client.nodes_manager.startup_nodes) == {"10.0.0.1:7000", "10.0.0.2:7001"}
        await client.aclose()


async def test_redis_round_trip_ttl_and_purge(redis_url: str) -> None:
    import redis.asyncio as redis

    store = RedisStorage(redis_url, gateway_id="gw")
    other = RedisStorage(redis_url, gateway_id="other-gw")
    try:
        await store.set("openai:1", entry(), ttl=60)
        await store.set("openai:2", entry(), ttl=60)
        await store.set("anthropic:1", entry(provider="anthropic"), ttl=60)
        await other.set("openai:1", entry(), ttl=60)
        got = await store.get("openai:1")
        assert got is not None and got.body == b'{"ok":true}' and got.provider == "openai"
        raw = redis.Redis.from_url(redis_url)
        assert 0 < await raw.ttl("aigw:cache:gw:openai:1") <= 60
        assert await store.purge("openai") == 2
        assert await store.get("openai:2") is None and await store.get("anthropic:1") is not None
        assert await other.get("openai:1") is not None  # another gateway's entries are untouched
        assert await store.delete("anthropic:1") and await store.purge() == 0
        await raw.set("aigw:cache:gw:openai:junk", b"not ours")
        assert await store.get("openai:junk") is None
        await raw.aclose()
    finally:
        await store.aclose()
        await other.aclose()


async def test_redis_down_is_a_fast_miss_with_one_warning(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStorage(redis_url, timeout_ms=200, breaker_s=0.3)
    try:
        await store.set("openai:1", entry(), ttl=60)
        assert await store.get("openai:1") is not None
        redis_server.stop()
        caplog.set_level(logging.INFO, "aigw_asgi.cache")
        started = time.perf_counter()
        for _ in range(20):
            assert await store.get("openai:1") is None
            await store.set("openai:2", entry(), ttl=60)
        assert time.perf_counter() - started < 5  # bounded: never a hang (a generous bound)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
        assert "redis://" not in warnings[0].getMessage()
        redis_server.start()
        await asyncio.sleep(0.35)  # let the breaker close
        for _ in range(50):  # the server may need a moment to accept connections again
            await store.set("openai:3", entry(), ttl=60)
            if await store.get("openai:3") is not None:
                break
            await asyncio.sleep(0.1)
        assert await store.get("openai:3") is not None
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await store.aclose()


async def test_redis_purge_raises_when_redis_is_down(redis_url: str, redis_server: RedisServer) -> None:
    store = RedisStorage(redis_url, timeout_ms=100)
    try:
        redis_server.stop()
        with pytest.raises(Exception):  # noqa: B017 - any redis error: a purge must not silently do nothing
            await store.purge()
    finally:
        await store.aclose()


async def test_hung_redis_is_bounded_and_the_breaker_stops_trying() -> None:
    # A TCP server that accepts and never answers: the worst kind of dead Redis.
    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStorage(f"redis://127.0.0.1:{port}/0", timeout_ms=150, breaker_s=30, breaker_failures=3)
    try:
        started = time.perf_counter()
        for _ in range(3):  # each timeout is a MISS for that request; the third opens the circuit
            assert await store.get("openai:1") is None
        assert time.perf_counter() - started < 5  # bounded by the timeout, not a hang
        contacted = len(connections)
        assert 1 <= contacted <= 3
        for _ in range(10):  # breaker open: Redis is not even contacted
            assert await store.get("openai:1") is None
            await store.set("openai:1", entry(), ttl=60)
        assert len(connections) == contacted
    finally:
        await store.aclose()
        for writer in connections:
            writer.close()
        server.close()


def test_redis_storage_reopens_in_a_new_event_loop_after_aclose(redis_url: str) -> None:
    # A host may run the app in several loops over its life (one per TestClient, each closing
    # the gateway at its end): the storage must reopen in the next loop, not stay closed or bound.
    store = RedisStorage(redis_url)

    async def roundtrip(name: str) -> bool:
        await store.set(name, entry(), ttl=60)
        found = await store.get(name) is not None
        await store.aclose()
        return found

    assert asyncio.run(roundtrip("openai:1"))
    assert asyncio.run(roundtrip("openai:2"))


async def test_stats_count_entries_and_bytes_where_the_storage_can(redis_url: str) -> None:
    memory = MemoryStorage()
    assert await memory.stats() == {"entries": 0, "bytes": 0}
    await memory.set("openai:1", entry(), ttl=60)
    await memory.set("anthropic:1", entry(provider="anthropic"), ttl=60)
    assert await memory.stats() == {"entries": 2, "bytes": 2 * entry().size}

    store = RedisStorage(redis_url, gateway_id="gw")
    other = RedisStorage(redis_url, gateway_id="gw*")  # a glob character in the id counts only itself
    try:
        assert await store.stats() == {"entries": 0, "bytes": None}
        await store.set("openai:1", entry(), ttl=60)
        await store.set("openai:2", entry(), ttl=60)
        await other.set("openai:1", entry(), ttl=60)
        assert await store.stats() == {"entries": 2, "bytes": None}  # Redis cannot tell bytes cheaply
        assert await other.stats() == {"entries": 1, "bytes": None}
    finally:
        await store.aclose()
        await other.aclose()
