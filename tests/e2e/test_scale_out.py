"""The multi-instance recipe (docs/scale-out.md), proven with real processes and real engines.

Two ``aigw serve`` processes share one Redis (cache, rate limits) and one PostgreSQL (logs): an
entry cached through one is a HIT through the other, a limit of N admits N across both, both
processes' rows are in one ``GET /admin/logs``, a purge through one empties the other's hits.
Redis and PostgreSQL are stopped and restarted under them: requests keep being served, and
both recover without a restart. The cache and limit checks run again on a three-master Redis
Cluster built by the fixture.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.examples.test_examples import ROOT
from tests.fakes.upstream import RunningFake
from tests.servers import PostgresServer, RedisCluster, RedisServer, free_port, wait_for_port

LIMIT = 5
PERIOD = 3600

Start = Callable[[str, int], list[str]]


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[Start]:
    """``start(config, n)``: n ``aigw serve`` processes on one config file, started together."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(config: str, n: int) -> list[str]:
        path = tmp_path / "aigw.toml"
        path.write_text(config)
        ports = [free_port() for _ in range(n)]
        for port in ports:
            log = tmp_path / f"aigw-{port}.log"
            with log.open("wb") as out:
                cmd = [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(path), "--port", str(port)]
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )  # fmt: skip
            procs.append((proc, log))
        for port, (_, log) in zip(ports, procs[-n:], strict=True):
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                raise AssertionError(log.read_text()) from None
        return [f"http://127.0.0.1:{port}" for port in ports]

    yield start
    for proc, _ in procs:
        proc.terminate()
    for proc, _ in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def config(fake: RunningFake, storage: str, logs: str) -> str:
    return f"""
[cache]
ttl = 300
storage = "{storage}"
timeout_ms = 2000      # a busy CI machine must not turn a slow HIT into a MISS

[rate_limit]
storage = "{storage}"
timeout_ms = 5000      # exactness is checked here; outages are checked by stopping Redis
[[rate_limit.rules]]
name = "per-model"
limit = {LIMIT}
period = {PERIOD}
scope = ["model"]

[logs]
store = "{logs}"
flush_interval_ms = 50

[providers.openai]
base_url = "{fake.url}/v1"
"""


def chat(base: str, text: str, model: str | None = None) -> httpx.Response:
    """A chat completion; by default on a model of its own, so the per-model limit (checked on
    its own model) never refuses the requests of the other checks."""
    body = {"model": model or f"model-{text}", "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{base}/openai/chat/completions", json=body, timeout=20)


async def limit_statuses(bases: list[str], model: str) -> list[int]:
    """3 x LIMIT distinct requests at once (no cache hits), alternating between the instances."""
    left = PERIOD - time.time() % PERIOD  # fixed windows are clock-aligned: not across an hour edge
    if left < 15:
        await asyncio.sleep(left + 0.1)
    async with httpx.AsyncClient(timeout=20) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{bases[i % len(bases)]}/openai/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": f"limit {i}"}]},
                )
                for i in range(3 * LIMIT)
            )
        )
    return [a.status_code for a in answers]


def eventually(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll until ``check()`` is true (another process writes on its own schedule); ``check``
    may return a falsy description of what it saw, for the failure message."""
    deadline = time.monotonic() + timeout
    while not (seen := check()) or isinstance(seen, str):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last seen: {seen!r})")
        time.sleep(0.2)


def logged_ids(base: str) -> set[str]:
    ids: set[str] = set()
    page = 1
    while True:
        answer = httpx.get(f"{base}/admin/logs", params={"per_page": 100, "page": page}, timeout=20).json()
        ids |= {row["id"] for row in answer["result"]}
        if page * 100 >= answer["result_info"]["total_count"]:
            return ids
        page += 1


def test_two_instances_on_one_redis_and_one_postgres(
    instances: Start,
    fake_upstream: RunningFake,
    redis_url: str,
    redis_server: RedisServer,
    postgres_url: str,
    postgres_server: PostgresServer,
) -> None:
    one, two = instances(config(fake_upstream, redis_url, postgres_url), 2)
    log_ids: list[str] = []

    # One cache: written through one instance, a HIT through the other; purged through either.
    first = chat(one, "shared cache")
    second = chat(two, "shared cache")
    assert first.headers["cf-aig-cache-status"] == "MISS" and second.headers["cf-aig-cache-status"] == "HIT"
    assert second.json()["id"] == first.json()["id"]
    purged = httpx.delete(f"{one}/admin/cache", params={"provider": "openai"})
    assert purged.status_code == 200 and purged.json()["result"]["purged"] >= 1
    assert chat(two, "shared cache").headers["cf-aig-cache-status"] == "MISS"
    log_ids += [r.headers["cf-aig-log-id"] for r in (first, second)]

    # One limit: N across both, each instance refusing some.
    statuses = asyncio.run(limit_statuses([one, two], "limit-model"))
    assert statuses.count(200) == LIMIT and statuses.count(429) == 2 * LIMIT, statuses

    # One log view: every row, whichever instance wrote it, through either instance.
    answers = [chat(base, "logged", model=f"log-{i}") for i, base in enumerate([one, two] * 3)]
    assert {a.status_code for a in answers} == {200}
    log_ids += [a.headers["cf-aig-log-id"] for a in answers]
    eventually(lambda: set(log_ids) <= logged_ids(two), "both instances' rows in one GET /admin/logs")

    def counted(**params: str | int) -> int:
        answer = httpx.get(f"{one}/admin/analytics", params=params, timeout=20)
        return int(answer.json()["result"]["totals"]["requests"])

    # One analytics view too: the admitted and the refused requests of both instances (a refused
    # request's row names its model, so the model filter counts all of them).
    eventually(
        lambda: (
            (counted(model="limit-model"), counted(status_code=429)) == (3 * LIMIT, 2 * LIMIT)
            or f"{counted(model='limit-model')} for the model, {counted(status_code=429)} refused"
        ),
        "both instances' rows in one GET /admin/analytics",
    )

    # Redis goes away: requests are still served (cache MISS, limits fail open), nothing 500s.
    redis_server.stop()
    try:
        down = [chat(base, f"redis down {i}") for i, base in enumerate([one, two])]
        assert [r.status_code for r in down] == [200, 200]
        assert {r.headers["cf-aig-cache-status"] for r in down} == {"MISS"}
    finally:
        redis_server.start()  # back, empty: both recover on their own, without a restart
    eventually(
        lambda: (
            chat(one, "after redis").headers["cf-aig-cache-status"] == "MISS"
            and chat(two, "after redis").headers["cf-aig-cache-status"] == "HIT"
        ),
        "the shared cache works again after Redis restarted",
    )

    # PostgreSQL goes away: requests are served, health says the log store is unavailable.
    postgres_server.stop()
    try:
        during = [chat(base, "postgres down", model=f"down-{i}") for i, base in enumerate([one, two])]
        assert [r.status_code for r in during] == [200, 200]

        def degraded() -> bool:
            health = httpx.get(f"{one}/admin/health", timeout=20).json()["result"]
            return health["status"] == "degraded" and "unavailable" in health["logs"]["error"]

        eventually(degraded, "health reports the log store down")
        assert httpx.get(f"{two}/admin/logs", timeout=20).status_code == 503
    finally:
        postgres_server.start()
    # Back: rows of requests made after the recovery are written, by both instances.
    after = [chat(base, "postgres back", model=f"back-{i}") for i, base in enumerate([one, two])]
    wanted = {r.headers["cf-aig-log-id"] for r in after}
    eventually(lambda: wanted <= logged_ids(one), "rows written again after PostgreSQL restarted")
    health = httpx.get(f"{two}/admin/health", timeout=20).json()["result"]
    assert health["status"] == "ok" and health["logs"]["store"] == "postgresql"


def test_two_instances_on_a_three_master_redis_cluster(
    instances: Start, fake_upstream: RunningFake, redis_cluster3: RedisCluster, tmp_path: Path
) -> None:
    redis_cluster3.flushall()
    one, two = instances(config(fake_upstream, redis_cluster3.url, f"sqlite:///{tmp_path}/logs.db"), 2)
    texts = [f"cluster {i}" for i in range(12)]
    assert {chat(one, t).headers["cf-aig-cache-status"] for t in texts} == {"MISS"}
    assert {chat(two, t).headers["cf-aig-cache-status"] for t in texts} == {"HIT"}
    # The entries spread over the masters: this is a real multi-node cluster, not one node.
    holding = [node for node in redis_cluster3.nodes if node.dbsize() > 0]
    assert len(holding) >= 2
    purged = httpx.delete(f"{two}/admin/cache")
    assert purged.status_code == 200 and purged.json()["result"]["purged"] >= len(texts)
    assert chat(one, texts[0]).headers["cf-aig-cache-status"] == "MISS"
    statuses = asyncio.run(limit_statuses([one, two], "cluster-limit-model"))
    assert statuses.count(200) == LIMIT and statuses.count(429) == 2 * LIMIT, statuses
