"""KeyResolver: lookups without I/O, bounded staleness, and what happens when the store is down."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aigw_asgi.breaker import StorageDown
from aigw_asgi.keys.model import GatewayKey, make_key, rotated
from aigw_asgi.keys.resolver import KeyResolver
from aigw_asgi.keys.store import MemoryKeyStore

NOW = 1_750_000_000.0


class CountingStore(MemoryKeyStore):
    """The memory store, counting reads and able to fail like a store that is down."""

    def __init__(self) -> None:
        super().__init__("gw")
        self.versions = self.loads = 0
        self.down = False

    async def version(self) -> int:
        self.versions += 1
        if self.down:
            raise OSError("store down")
        return await super().version()

    async def load(self) -> tuple[int, list[GatewayKey]]:
        self.loads += 1
        if self.down:
            raise OSError("store down")
        return await super().load()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def made(store: CountingStore, name: str = "team-a") -> tuple[GatewayKey, bytes]:
    key, secret = make_key("gw", f"id-{name}", {"name": name}, NOW)
    await store.insert(key)
    return key, secret.encode()


async def test_lookup_finds_the_key_and_only_rereads_when_due() -> None:
    store, clock = CountingStore(), Clock()
    resolver = KeyResolver(store, refresh_s=0.5, monotonic=clock)
    key, secret = await made(store)
    assert await resolver.lookup(secret) == key
    assert (store.versions, store.loads) == (1, 1)
    for _ in range(100):  # within the refresh interval: no store access at all
        assert await resolver.lookup(secret) == key
        assert await resolver.lookup(b"aigw_not-a-real-key") is None
    assert (store.versions, store.loads) == (1, 1)
    clock.now += 0.5
    await resolver.lookup(secret)
    assert (store.versions, store.loads) == (2, 1)  # the version did not move: no reload


async def test_tokens_that_are_not_keys_never_touch_the_store() -> None:
    store = CountingStore()
    resolver = KeyResolver(store, monotonic=Clock())
    assert await resolver.lookup(b"sk-some-provider-key") is None
    assert await resolver.lookup(b"") is None
    assert store.versions == 0


async def test_a_revocation_is_seen_once_the_interval_has_passed() -> None:
    store, clock = CountingStore(), Clock()
    resolver = KeyResolver(store, refresh_s=0.5, monotonic=clock)
    key, secret = await made(store)
    assert await resolver.lookup(secret) == key
    await store.update(replace(key, revoked_at=NOW))  # another instance revokes it
    stale = await resolver.lookup(secret)
    assert stale is not None and stale.revoked_at is None  # still within the interval
    clock.now += 0.5
    fresh = await resolver.lookup(secret)
    assert fresh is not None and fresh.status(NOW) == "revoked"
    assert await resolver.current(key) == fresh


async def test_a_rotated_secret_is_no_longer_the_key() -> None:
    store, clock = CountingStore(), Clock()
    resolver = KeyResolver(store, monotonic=clock)
    key, secret = await made(store)
    assert await resolver.current(key) == key
    new, new_secret = rotated(key, NOW + 1)
    await store.update(new)
    resolver.invalidate()  # what the admin API does after writing
    assert await resolver.lookup(secret) is None
    assert await resolver.current(key) is None  # the old secret's holder is refused from now on
    assert await resolver.lookup(new_secret.encode()) == new


async def test_a_store_outage_keeps_the_last_snapshot_and_one_since_start_is_an_error() -> None:
    store, clock = CountingStore(), Clock()
    resolver = KeyResolver(store, refresh_s=0.5, monotonic=clock)
    key, secret = await made(store)
    assert await resolver.lookup(secret) == key
    store.down = True
    clock.now += 1
    assert await resolver.lookup(secret) == key  # served from the last snapshot
    fresh = KeyResolver(store, monotonic=clock)
    with pytest.raises(StorageDown):
        await fresh.lookup(secret)
    store.down = False
    fresh.breaker.down_until = 0  # the breaker's backoff is over
    assert await fresh.lookup(secret) == key
