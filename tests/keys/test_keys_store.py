"""Key stores behave alike: memory, SQLite (the log store's file), a real Redis, a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from aigw_asgi.keys.model import make_key
from aigw_asgi.keys.store import KeyStore, MemoryKeyStore, NameTaken, SQLiteKeyStore, make_key_store

NOW = 1_750_000_000.0


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    kind = request.param
    if kind == "memory":
        made: KeyStore = MemoryKeyStore("gw")
    elif kind == "sqlite":
        made = SQLiteKeyStore(str(tmp_path / "aigw.db"), "gw")
    elif kind == "redis":
        made = make_key_store(request.getfixturevalue("redis_url"), "gw")
    else:
        made = make_key_store(request.getfixturevalue("postgres_url"), "gw")
    yield made
    await made.aclose()


def new(name: str, key_id: str):
    return make_key("gw", key_id, {"name": name, "allowed_models": ("gpt-*",)}, NOW)[0]


async def test_insert_load_get_and_the_version_moves(store: KeyStore) -> None:
    v0, keys = await store.load()
    assert keys == [] and await store.version() == v0
    a = new("team-a", "id-a")
    await store.insert(a)
    v1, keys = await store.load()
    assert keys == [a] and v1 != v0 and await store.version() == v1
    assert await store.get("id-a") == a and await store.get("nope") is None


async def test_live_names_are_unique_but_a_revoked_name_is_free_again(store: KeyStore) -> None:
    a = new("team-a", "id-a")
    await store.insert(a)
    with pytest.raises(NameTaken):
        await store.insert(new("team-a", "id-b"))
    b = new("team-b", "id-b")
    await store.insert(b)
    with pytest.raises(NameTaken):
        await store.update(replace(b, name="team-a"))
    assert await store.update(replace(a, revoked_at=NOW + 1, updated_at=NOW + 1))
    await store.insert(new("team-a", "id-c"))  # the name is free once its key is revoked
    assert await store.update(replace(b, name="team-b2"))
    await store.insert(new("team-b", "id-d"))  # a rename frees the old name
    names = sorted((k.name, k.revoked_at is not None) for k in (await store.load())[1])
    assert names == [("team-a", False), ("team-a", True), ("team-b", False), ("team-b2", False)]


async def test_a_revoked_key_never_changes_again(store: KeyStore) -> None:
    a = new("team-a", "id-a")
    await store.insert(a)
    assert await store.update(replace(a, revoked_at=NOW + 1))
    version = await store.version()
    assert not await store.update(replace(a, allowed_models=None))  # a PATCH racing the revocation
    assert not await store.update(replace(a, revoked_at=None))  # nor can it be brought back
    assert await store.version() == version
    stored = await store.get("id-a")
    assert stored is not None and stored.revoked_at == NOW + 1 and stored.allowed_models == ("gpt-*",)
    assert not await store.update(new("ghost", "id-ghost"))  # unknown id


async def test_gateways_sharing_a_database_do_not_see_each_others_keys(tmp_path: Path) -> None:
    one, two = SQLiteKeyStore(str(tmp_path / "db"), "one"), SQLiteKeyStore(str(tmp_path / "db"), "two")
    try:
        await one.insert(make_key("one", "id-1", {"name": "same"}, NOW)[0])
        await two.insert(make_key("two", "id-2", {"name": "same"}, NOW)[0])  # names are per gateway
        assert [k.id for k in (await one.load())[1]] == ["id-1"]
        assert await two.get("id-1") is None
    finally:
        await one.aclose()
        await two.aclose()
