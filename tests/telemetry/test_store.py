"""The log stores behave alike: filters, ordering, paging, PATCH, DELETE, analytics, max_logs.

SQLite runs on a real file (written by the worker's thread, or by a child process), Redis on the
real redis-server of the ``redis_url`` fixture, PostgreSQL on the real server of the
``postgres_url`` fixture (a new database per test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aigw_asgi.config import LogsConfig
from aigw_asgi.ids import uuid7
from aigw_asgi.telemetry.query import parse_query
from aigw_asgi.telemetry.records import LogRecord
from aigw_asgi.telemetry.stores import LogStore, make_store
from aigw_asgi.telemetry.stores.memory import MemoryLogStore
from aigw_asgi.telemetry.stores.postgres import PostgresLogStore
from aigw_asgi.telemetry.stores.redis import RedisLogStore
from aigw_asgi.telemetry.stores.sqlite import SQLiteLogStore, sqlite_path
from aigw_asgi.telemetry.stores.sqlite_process import ProcessSQLiteLogStore

T0 = 1_750_000_000.0  # a fixed epoch second, so time buckets are predictable


def row(i: int, **fields: Any) -> LogRecord:
    base: dict[str, Any] = {
        "id": uuid7(),
        "created_at": T0 + i * 60,
        "gateway": "default",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "path": "/openai/chat/completions",
        "status_code": 200,
        "success": True,
        "duration_ms": float(10 * (i + 1)),
        "tokens_in": 10,
        "tokens_out": 5,
        "cost": 0.001 * (i + 1),
        "request_body": f'{{"n":{i}}}',
        "response_body": "ok",
    }
    base.update(fields)
    return LogRecord(**base)


StoreFactory = Callable[..., LogStore]


@pytest.fixture(params=["memory", "sqlite", "sqlite-process", "redis", "postgres"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    made: list[LogStore] = []

    def factory(**kwargs: Any) -> LogStore:
        if request.param == "memory":
            store: LogStore = MemoryLogStore(**kwargs)
        elif request.param == "sqlite":
            store = SQLiteLogStore(str(tmp_path / f"logs{len(made)}.db"), **kwargs)
        elif request.param == "sqlite-process":  # the rows written by a child process
            store = ProcessSQLiteLogStore(str(tmp_path / f"logs{len(made)}.db"), **kwargs)
        elif request.param == "redis":
            url = request.getfixturevalue("redis_url")
            store = RedisLogStore(url, gateway_id=f"g{len(made)}", **kwargs)
        else:
            url = request.getfixturevalue("postgres_url")
            if made:  # a second store in one test: a database of its own, like the others
                url = request.getfixturevalue("postgres_server").create_database(f"{url.rsplit('/', 1)[1]}x{len(made)}")
            store = PostgresLogStore(url, **kwargs)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.aclose()


def q(**params: Any) -> Any:
    return parse_query({k: [str(v)] for k, v in params.items()})


async def test_write_get_and_bodies(make: StoreFactory) -> None:
    store = make()
    r = row(0, metadata={"user": "alice", "vip": True, "n": 3})
    assert await store.write([r]) == 1
    got = await store.get(r.id)
    assert got is not None and got.id == r.id and got.metadata == {"user": "alice", "vip": True, "n": 3}
    assert got.success is True and got.tokens_in == 10 and got.cost == pytest.approx(0.001)
    with_bodies = await store.get(r.id, bodies=True)
    assert with_bodies is not None and with_bodies.request_body == '{"n":0}' and with_bodies.response_body == "ok"
    assert await store.get("nope") is None
    assert await store.count() == 1


async def test_filters(make: StoreFactory) -> None:
    store = make()
    rows = [
        row(0, metadata={"user": "alice", "vip": True}),
        row(1, provider="anthropic", model="claude-fake-1", metadata={"user": "bob"}),
        row(2, success=False, status_code=429, error="HTTP 429", cost=None, tokens_in=None, tokens_out=None),
        row(3, cached=True, cost=0.0, event_id="ev-1"),
    ]
    await store.write(rows)

    async def ids(**params: Any) -> list[int]:
        found, total = await store.query(q(**params))
        assert total == len(found)
        return sorted(rows.index(next(r for r in rows if r.id == f.id)) for f in found)

    assert await ids() == [0, 1, 2, 3]
    assert await ids(provider="anthropic") == [1]
    assert await ids(model="gpt-4o-mini") == [0, 2, 3]
    assert await ids(success="false") == [2]
    assert await ids(cached="true") == [3]
    assert await ids(event_id="ev-1") == [3]
    assert await ids(status_code=429) == [2]
    assert await ids(**{"metadata.user": "alice"}) == [0]
    assert await ids(**{"metadata.vip": "true"}) == [0]
    assert await ids(**{"metadata.user": "carol"}) == []
    assert await ids(min_cost=0.0015) == [1]  # row 3 costs 0, row 2 has no cost
    assert await ids(max_cost=0.0015) == [0, 3]
    assert await ids(min_duration=25, max_duration=35) == [2]
    assert await ids(min_tokens=15) == [0, 1, 3]
    assert await ids(start=T0 + 60, end=T0 + 120) == [1, 2]
    assert await ids(start="2025-06-15T15:08:00Z") == [2, 3]  # T0 = 15:06:40 UTC, one row a minute
    assert await ids(id=rows[1].id) == [1]


async def test_order_and_paging(make: StoreFactory) -> None:
    store = make()
    rows = [row(i) for i in range(7)]
    await store.write(rows)
    page1, total = await store.query(q(per_page=3))
    page3, _ = await store.query(q(per_page=3, page=3))
    assert total == 7
    assert [r.id for r in page1] == [r.id for r in rows[6:3:-1]]  # newest first by default
    assert [r.id for r in page3] == [rows[0].id]
    cheapest, _ = await store.query(q(order_by="cost", direction="asc", per_page=2))
    assert [r.id for r in cheapest] == [rows[0].id, rows[1].id]


async def test_patch(make: StoreFactory) -> None:
    store = make()
    r = row(0)
    await store.write([r])
    patched = await store.patch(r.id, {"feedback": 1, "score": 87.5, "metadata": {"reviewed": True}})
    assert patched is not None and patched.feedback == 1 and patched.score == 87.5
    again = await store.get(r.id, bodies=True)
    assert again is not None and again.metadata == {"reviewed": True} and again.feedback == 1
    assert again.request_body == '{"n":0}'  # a patch leaves the bodies alone
    found, _ = await store.query(q(feedback=1))
    assert [f.id for f in found] == [r.id]
    assert await store.patch("missing", {"feedback": 1}) is None


async def test_delete_by_filter_and_limit(make: StoreFactory) -> None:
    store = make()
    rows = [row(i, provider="anthropic" if i % 2 else "openai") for i in range(6)]
    await store.write(rows)
    assert await store.delete(q(provider="anthropic", limit=2, order_by="created_at", direction="asc")) == 2
    left, total = await store.query(q(per_page=100))
    assert total == 4
    assert {r.id for r in left} == {rows[0].id, rows[2].id, rows[4].id, rows[5].id}
    assert await store.get(rows[1].id, bodies=True) is None
    assert await store.delete(q(provider="openai")) == 3
    assert await store.count() == 1


async def test_max_logs_delete_oldest(make: StoreFactory) -> None:
    store = make(max_logs=3, strategy="DELETE_OLDEST")
    rows = [row(i) for i in range(5)]
    await store.write(rows[:2])
    await store.write(rows[2:])
    assert await store.count() == 3
    kept, _ = await store.query(q())
    assert {r.id for r in kept} == {r.id for r in rows[2:]}
    assert await store.get(rows[0].id, bodies=True) is None


async def test_max_logs_stop_inserting(make: StoreFactory) -> None:
    store = make(max_logs=3, strategy="STOP_INSERTING")
    rows = [row(i) for i in range(5)]
    assert await store.write(rows[:2]) == 2
    assert await store.write(rows[2:]) == 1
    assert store.refused == 2
    kept, _ = await store.query(q())
    assert {r.id for r in kept} == {r.id for r in rows[:3]}


async def test_analytics(make: StoreFactory) -> None:
    store = make()
    await store.write(
        [
            row(0, metadata={"team": "a"}),  # 10 ms
            row(1, metadata={"team": "a"}, cached=True, cost=0.0),  # 20 ms
            row(2, provider="anthropic", model="claude-fake-1", success=False, cost=None),  # 30 ms
            row(70, metadata={"team": "b"}),  # next hour, 710 ms
        ]
    )
    result = await store.analytics(q())
    totals = result["totals"]
    assert totals["requests"] == 4 and totals["errors"] == 1 and totals["cached"] == 1
    assert totals["cache_hit_rate"] == 0.25
    assert totals["tokens_in"] == 40 and totals["tokens_out"] == 20
    assert totals["cost"] == pytest.approx(0.001 + 0.071)
    assert totals["duration_ms_p50"] == 20.0 and totals["duration_ms_p95"] == 710.0
    assert result["groups"] == []

    by_provider = (await store.analytics(q(group_by="provider")))["groups"]
    assert [(g["provider"], g["requests"]) for g in by_provider] == [("openai", 3), ("anthropic", 1)]

    by_time = (await store.analytics(q(group_by="time", interval="hour")))["groups"]
    assert [g["requests"] for g in by_time] == [3, 1]
    assert by_time[0]["time"] == "2025-06-15T15:00:00.000Z"

    by_team = (await store.analytics(q(group_by="metadata.team,model", provider="openai")))["groups"]
    assert {(g["metadata.team"], g["model"]): g["requests"] for g in by_team} == {
        ("a", "gpt-4o-mini"): 2,
        ("b", "gpt-4o-mini"): 1,
    }


async def test_sqlite_file_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "persist.db")
    first = SQLiteLogStore(path)
    r = row(0)
    await first.write([r])
    await first.aclose()
    second = SQLiteLogStore(path)
    try:
        got = await second.get(r.id, bodies=True)
        assert got is not None and got.response_body == "ok"
    finally:
        await second.aclose()
    journal = (tmp_path / "persist.db").read_bytes()[:16]
    assert journal.startswith(b"SQLite format 3")


def test_store_urls(tmp_path: Path) -> None:
    assert sqlite_path("sqlite:///aigw.db") == "aigw.db"
    assert sqlite_path("sqlite:////var/lib/aigw.db") == "/var/lib/aigw.db"
    assert isinstance(make_store(LogsConfig(store="memory://")), MemoryLogStore)
    assert isinstance(make_store(LogsConfig(store=f"sqlite:///{tmp_path}/x.db")), SQLiteLogStore)
    assert isinstance(make_store(LogsConfig(store="redis://127.0.0.1:1/0")), RedisLogStore)


@pytest.mark.parametrize(
    "params",
    [{"order_by": "nope"}, {"per_page": "1000"}, {"success": "maybe"}, {"min_cost": "x"}, {"bogus": "1"}],
)
def test_bad_query_parameters_are_refused(params: dict[str, str]) -> None:
    from aigw_asgi.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        q(**params)


async def test_sqlite_adds_columns_an_older_file_lacks(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE logs (id TEXT PRIMARY KEY, created_at REAL NOT NULL)")
    store = SQLiteLogStore(str(path))
    try:
        r = row(0, cache_key="openai:abc")
        assert await store.write([r]) == 1
        got = await store.get(r.id)
        assert got is not None and got.cache_key == "openai:abc"
    finally:
        await store.aclose()


@pytest.mark.parametrize("limit", [None, 70])
async def test_sqlite_batches_of_any_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None) -> None:
    """Batches go in as multi-row INSERTs in chunks of 8s, then 4, 2, 1 (``limit``: a build of SQLite
    allowing only 70 bound parameters, i.e. two rows per statement); duplicates are ignored."""
    import sqlite3

    if limit is not None:
        real_connect = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> Any:
            conn = real_connect(*args, **kwargs)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
            return conn

        monkeypatch.setattr(sqlite3, "connect", connect)
    store = SQLiteLogStore(str(tmp_path / "batches.db"))
    try:
        written = 0
        for size in (1, 3, 200, 517):
            batch = [row(i, metadata={"n": i} if i % 2 else None) for i in range(size)]
            written += await store.write([*batch, batch[0]])  # a duplicate id: ignored
            got = await store.get(batch[-1].id, bodies=True)
            assert got is not None and got.request_body == f'{{"n":{size - 1}}}'
            assert got.metadata == ({"n": size - 1} if (size - 1) % 2 else None)
        assert written == 1 + 3 + 200 + 517 == await store.count()
        assert store._chunk == (2 if limit else 256)
    finally:
        await store.aclose()


async def test_analytics_latency_percentiles_and_filters(make: StoreFactory) -> None:
    """The dashboard's contract: latency_p50_ms/p95_ms per total and group, and the logs' filters."""
    store = make()
    rows = [row(i, duration_ms=float(d)) for i, d in enumerate((40, 10, 30, 20))]
    rows += [row(4, token_name="ci", duration_ms=500.0), row(5, token_name="ci", duration_ms=None)]
    rows += [row(6, metadata={"team": "a"}, provider="anthropic", duration_ms=7.5)]
    await store.write(rows)
    totals = (await store.analytics(q()))["totals"]
    assert totals["latency_p50_ms"] == 20.0 and totals["latency_p95_ms"] == 500.0  # 6 durations: ranks 3, 6
    ci = await store.analytics(q(token_name="ci"))
    assert ci["totals"]["requests"] == 2 and ci["totals"]["latency_p50_ms"] == 500.0
    team = (await store.analytics(q(**{"metadata.team": "a"})))["totals"]
    assert team["requests"] == 1 and team["latency_p95_ms"] == 7.5
    nothing = (await store.analytics(q(token_name="nobody")))["totals"]
    assert nothing["requests"] == 0 and nothing["latency_p50_ms"] is None and nothing["cache_hit_rate"] == 0.0
    groups = (await store.analytics(q(group_by="provider")))["groups"]
    assert [(g["provider"], g["latency_p50_ms"], g["latency_p95_ms"]) for g in groups] == [
        ("openai", 30.0, 500.0),
        ("anthropic", 7.5, 7.5),
    ]


async def test_analytics_agree_with_the_reference(make: StoreFactory) -> None:
    """Every store answers exactly what the pure-Python `aggregate` computes from the same rows."""
    import random

    from aigw_asgi.telemetry.analytics import aggregate, analytics_row
    from aigw_asgi.telemetry.query import matches

    rng = random.Random(16)
    rows = []
    for i in range(300):
        rows.append(
            row(
                i,
                provider=rng.choice(["openai", "anthropic", "groq"]),
                model=rng.choice(["m1", "m2"]),
                token_name=rng.choice(["app", "ci", None]),
                success=rng.random() > 0.1,
                cached=rng.random() < 0.3,
                duration_ms=rng.choice([None, round(rng.uniform(1, 900), 3)]),
                tokens_in=rng.choice([None, rng.randint(1, 99)]),
                cost=rng.choice([None, round(rng.uniform(0, 0.01), 6)]),
                metadata=rng.choice([None, {"team": rng.choice(["a", "b"]), "vip": rng.random() < 0.5}]),
            )
        )
    store = make()
    await store.write(rows)
    queries = [
        {},
        {"group_by": "time,provider", "interval": "hour"},
        {"group_by": "model", "success": "false"},
        {"group_by": "metadata.team", "token_name": "ci"},
        {"group_by": "time", "interval": 600, "start": T0 + 3600, "end": T0 + 3 * 3600, "metadata.vip": "true"},
        {"group_by": "provider,model", "cached": "true", "min_cost": 0.002},
    ]
    for params in queries:
        query = q(**params)
        want = aggregate((analytics_row(r) for r in rows if matches(r, query)), query)
        got = await store.analytics(query)
        assert rounded(got) == rounded(want), params


def rounded(value: Any) -> Any:
    """Floats to 9 decimals (sums in SQL and in Python may differ in the last bits)."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


async def test_max_age_drops_old_rows(make: StoreFactory) -> None:
    """``logs.max_age``: rows older than that go at the next write (and their bodies with them)."""
    import time

    store = make(max_age=3600)
    now = time.time()
    old = [row(0, created_at=now - 7200), row(1, created_at=now - 3700)]
    young = row(2, created_at=now - 60)
    await store.write([*old, young])
    assert await store.count() == 1
    kept, total = await store.query(q())
    assert total == 1 and [r.id for r in kept] == [young.id]
    assert await store.get(old[0].id, bodies=True) is None


def varied_rows(n: int, seed: int = 16) -> list[LogRecord]:
    import random

    rng = random.Random(seed)
    return [
        row(
            i,
            provider=rng.choice(["openai", "anthropic", "groq", None]),
            model=rng.choice(["m1", "m2", "m3"]),
            token_name=rng.choice(["app", "ci", None]),
            status_code=rng.choice([200, 200, 429, 500, None]),
            success=rng.random() > 0.2,
            cached=rng.random() < 0.3,
            duration_ms=rng.choice([None, float(rng.randint(1, 50))]),  # ties, so the id order shows
            tokens_in=rng.choice([None, rng.randint(1, 9)]),
            tokens_out=rng.choice([None, rng.randint(1, 9)]),
            cost=rng.choice([None, 0.0, rng.randint(1, 9) / 1000]),
            path=rng.choice(["/openai/chat/completions", "/anthropic/v1/messages"]),
            event_id=rng.choice(["", "ev-1", "ev-2"]),
            feedback=rng.choice([None, -1, 1]),
            metadata=rng.choice([None, {"team": rng.choice(["a", "b"]), "n": rng.randint(1, 3)}]),
        )
        for i in range(n)
    ]


PAGE_QUERIES: list[dict[str, Any]] = [
    {},
    {"per_page": 7, "page": 3},
    {"provider": "openai", "per_page": 5, "page": 2},
    {"provider": "openai", "model": "m2", "direction": "asc"},
    {"success": "true", "cached": "false", "per_page": 9, "page": 2},
    {"success": "false", "status_code": 500},
    {"metadata.team": "a", "metadata.n": "2"},
    {"token_name": "ci", "start": T0 + 600, "end": T0 + 2400},
    {"start": T0 + 300, "per_page": 4, "page": 4, "direction": "asc"},
    {"min_cost": 0.002, "max_cost": 0.006, "order_by": "cost"},
    {"order_by": "cost", "direction": "asc", "per_page": 13, "page": 2},
    {"order_by": "duration", "per_page": 11, "page": 3},
    {"order_by": "tokens", "min_tokens": 5},
    {"order_by": "provider", "per_page": 8, "page": 2},
    {"order_by": "model", "direction": "asc", "cached": "true"},
    {"order_by": "tokens_in", "per_page": 6, "page": 2},
    {"order_by": "status_code", "direction": "asc", "provider": "groq"},
    {"path": "/anthropic/v1/messages", "event_id": "ev-1"},
    {"feedback": 1, "min_tokens_out": 4, "order_by": "tokens_out", "direction": "asc"},
    {"provider": "nobody"},
]


async def test_queries_agree_with_the_reference(make: StoreFactory) -> None:
    """Every filter, order and page of every store answers what `matches`/`order`/`page` say."""
    from aigw_asgi.telemetry.query import matches, order, page

    rows = varied_rows(120)
    store = make()
    await store.write(rows)
    for params in PAGE_QUERIES:
        query = q(**params)
        want = order([r for r in rows if matches(r, query)], query)
        found, total = await store.query(query)
        assert total == len(want), params
        assert [r.id for r in found] == [r.id for r in page(want, query)], params


@pytest.mark.parametrize("params", [{"provider": "openai", "limit": 5, "order_by": "cost"}, {"success": "false"}])
async def test_deletes_agree_with_the_reference(make: StoreFactory, params: dict[str, Any]) -> None:
    from aigw_asgi.telemetry.query import matches, order

    rows = varied_rows(80, seed=3)
    store = make()
    await store.write(rows)
    query = q(**params)
    doomed = order([r for r in rows if matches(r, query)], query)[: query.limit]
    assert await store.delete(query) == len(doomed)
    left, total = await store.query(q(per_page=100))
    assert total == len(rows) - len(doomed) == await store.count()
    assert {r.id for r in left} == {r.id for r in rows} - {r.id for r in doomed}
    # The indexes forgot the deleted rows too: a filtered query finds none of them.
    found, _ = await store.query(q(**{k: v for k, v in params.items() if k not in ("limit", "order_by")}))
    assert not {r.id for r in found} & {r.id for r in doomed}


def test_sql_columns_are_derived_from_the_log_record() -> None:
    """One column list: a field added to `LogRecord` is a column in every SQL store."""
    from dataclasses import fields

    from aigw_asgi.telemetry.records import BODY_FIELDS, COLUMNS, LogRecord
    from aigw_asgi.telemetry.stores import postgres_sql, sqlite_sql

    stored = [f.name for f in fields(LogRecord) if f.name not in BODY_FIELDS]
    assert [name for name, _ in COLUMNS] == stored
    assert sqlite_sql.NAMES == stored and postgres_sql.NAMES == stored
    assert dict(COLUMNS)["metadata"] == "json" and dict(postgres_sql.COLUMNS)["metadata"] == "jsonb"
    assert sqlite_sql.BOOLS == {"success", "cached", "custom_cost", "stream"}


async def test_sqlite_a_full_batch_is_one_statement_per_table(tmp_path: Path) -> None:
    """Each statement is a GIL hand-off with the event loop: a default batch of 200 rows goes in as
    one INSERT per table, an odd batch in at most four (37 = 32 + 4 + 1)."""
    store = SQLiteLogStore(str(tmp_path / "statements.db"))
    try:
        await store.write([row(0)])
        inserts: list[str] = []
        store._conn.set_trace_callback(lambda statement: inserts.append(statement[:26]))
        await store.write([row(i, request_body="{}") for i in range(1, 201)])
        assert [i for i in inserts if i.startswith("INSERT")] == [
            "INSERT OR IGNORE INTO logs",
            "INSERT OR IGNORE INTO log_",
        ]
        inserts.clear()
        await store.write([row(i) for i in range(201, 238)])
        assert len([i for i in inserts if i.startswith("INSERT OR IGNORE INTO logs")]) == 3
        assert await store.count() == 238
    finally:
        await store.aclose()
