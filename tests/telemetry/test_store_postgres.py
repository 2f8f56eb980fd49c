"""What only the PostgreSQL store has: migrations, indexes behind the admin filters, NUL-safe
text, and recovery when the database comes back (on the real server of ``postgres_url``)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from aigw_asgi.config import LogsConfig
from aigw_asgi.errors import ConfigError
from aigw_asgi.telemetry.query import parse_query
from aigw_asgi.telemetry.stores import make_store, postgres_sql as sql
from aigw_asgi.telemetry.stores.postgres import PostgresLogStore
from tests.servers import PostgresServer
from tests.telemetry.test_store import row, varied_rows


def q(**params: Any) -> Any:
    return parse_query({k: [str(v)] for k, v in params.items()})


async def test_schema_is_versioned_and_migrated_once_by_concurrent_instances(postgres_url: str) -> None:
    stores = [PostgresLogStore(postgres_url) for _ in range(3)]
    try:
        # Three instances starting together: the advisory lock lets one migrate, the others wait.
        counts = await asyncio.gather(*(s.count() for s in stores))
        assert counts == [0, 0, 0]
        pool = await stores[0]._db()
        assert await pool.fetchval("SELECT version FROM aigw_schema WHERE component = 'logs'") == sql.SCHEMA_VERSION
        await pool.execute("UPDATE aigw_schema SET version = 99 WHERE component = 'logs'")
    finally:
        for s in stores:
            await s.aclose()
    newer = PostgresLogStore(postgres_url)
    try:
        with pytest.raises(ConfigError, match="version 99, newer than this aigw-asgi knows"):
            await newer.count()
    finally:
        await newer.aclose()


async def test_make_store_takes_both_url_schemes(postgres_url: str) -> None:
    for scheme in ("postgresql", "postgres"):
        store = make_store(LogsConfig(store=postgres_url.replace("postgresql", scheme, 1), pool_size=2))
        try:
            assert isinstance(store, PostgresLogStore) and store.pool_size == 2
            assert await store.write([row(0)]) == 1 or scheme == "postgres"  # same database: a duplicate
        finally:
            await store.aclose()


async def test_text_with_nul_characters_is_stored(postgres_url: str) -> None:
    """PostgreSQL text cannot hold NUL: one in a body, an error or metadata must not fail the batch."""
    store = PostgresLogStore(postgres_url)
    try:
        bad = row(0, error="bad\x00byte", metadata={"k": "v\x00"}, request_body="a\x00b", response_body="ok")
        good = row(1)
        assert await store.write([bad, good]) == 2
        got = await store.get(bad.id, bodies=True)
        assert got is not None and got.error == "bad\ufffdbyte" and got.metadata == {"k": "v\ufffd"}
        assert got.request_body == "a\ufffdb" and got.response_body == "ok"
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({}, "aigw_logs_created_at"),
        ({"provider": "openai", "page": 3}, "aigw_logs_provider"),
        ({"model": "m2"}, "aigw_logs_model"),
        ({"token_name": "ci"}, "aigw_logs_token_name"),
        ({"status_code": 429}, "aigw_logs_status_code"),
        ({"success": "false"}, "aigw_logs_errors"),
        ({"cached": "true"}, "aigw_logs_cached"),
        ({"feedback": 1}, "aigw_logs_feedback"),
        ({"event_id": "ev-1"}, "aigw_logs_event_id"),
        ({"metadata.team": "a"}, "aigw_logs_metadata"),
    ],
)
async def test_each_admin_filter_reads_an_index(postgres_url: str, params: dict[str, Any], index: str) -> None:
    """A page is an index scan (no Sort of the whole table) for every filter the admin API takes."""
    store = PostgresLogStore(postgres_url)
    try:
        await store.write(varied_rows(200))
        query = q(**params)
        p = sql.Params()
        statement = f"SELECT {sql.SELECT} FROM aigw_logs{sql.where(query, p)}{sql.order(query)} LIMIT 20 OFFSET 40"
        pool = await store._db()
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE aigw_logs")
            await conn.execute("SET enable_seqscan = off")  # a 200-row table would not bother otherwise
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {statement}", *p.values))
            await conn.execute("RESET enable_seqscan")
        assert index in plan, plan
    finally:
        await store.aclose()


async def test_writes_fail_while_the_database_is_down_and_resume_after(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """The store keeps no broken state: the same object writes again once the server is back."""
    store = PostgresLogStore(postgres_url, timeout=3)
    try:
        assert await store.write([row(0)]) == 1
        postgres_server.stop()
        try:
            # What the log writer catches and counts as failed rows: a refused or broken connection.
            with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
                await store.write([row(1)])
        finally:
            postgres_server.start()
        for _ in range(50):  # the pool notices dead connections on use and opens new ones
            try:
                assert await store.write([row(2)]) == 1
                break
            except Exception:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the store did not recover")
        assert await store.count() == 2
    finally:
        await store.aclose()


async def test_unfiltered_total_is_the_kept_count_and_resyncs(postgres_url: str) -> None:
    store = PostgresLogStore(postgres_url)
    try:
        await store.write([row(i) for i in range(5)])
        pool = await store._db()
        await pool.execute("DELETE FROM aigw_logs WHERE id = (SELECT min(id) FROM aigw_logs)")  # by hand
        _, total = await store.query(q())
        assert total == 5  # the kept count does not know yet
        store._counted_at = 0.0  # time for the periodic re-count
        await store.write([row(9)])
        _, total = await store.query(q())
        assert total == 5 == await store.count()
    finally:
        await store.aclose()
