"""LogWriter through a store outage: the batch is retried with backoff, then dropped and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from aigw_asgi import Gateway
from aigw_asgi.context import RequestContext
from aigw_asgi.telemetry import writer as writer_module
from aigw_asgi.telemetry.cost import PriceTable
from aigw_asgi.telemetry.records import LogRecord, RecordSettings
from aigw_asgi.telemetry.stores.memory import MemoryLogStore
from aigw_asgi.telemetry.writer import LogWriter
from tests.conftest import gateway_config
from tests.fakes.upstream import RunningFake
from tests.servers import RedisServer

MESSAGES = [{"role": "user", "content": "hello"}]


class FlakyStore(MemoryLogStore):
    """Fails its first ``failures`` writes (a store coming back), then stores."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.tries = 0

    async def write(self, records: Sequence[LogRecord]) -> int:
        self.tries += 1
        if self.tries <= self.failures:
            raise ConnectionError("store down")
        return await super().write(records)


def contexts(n: int) -> list[RequestContext]:
    out = []
    for i in range(n):
        ctx = RequestContext(gateway_id="gw", method="POST", path="/openai/chat/completions", headers=[])
        ctx.status_code, ctx.provider, ctx.ended = 200, "openai", ctx.started + 0.01 * i
        out.append(ctx)
    return out


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.01, 0.02, 0.04))


async def write_through(store: Any, n: int) -> LogWriter:
    writer = LogWriter(store, RecordSettings(collect_payload=False, max_body_bytes=0, prices=PriceTable()))
    for ctx in contexts(n):
        writer.submit(ctx)
    await asyncio.wait_for(writer.flush(), 10)
    return writer


async def test_a_store_that_comes_back_loses_no_row(fast_retries: None) -> None:
    store = FlakyStore(failures=2)
    writer = await write_through(store, 5)
    assert (writer.written, writer.failed) == (5, 0) and store.tries == 3
    assert len(store._rows) == 5
    await writer.aclose()


async def test_a_store_that_stays_down_costs_one_bounded_batch_counted_as_failed(
    fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "aigw_asgi.telemetry")
    store = FlakyStore(failures=1000)
    writer = await write_through(store, 5)
    assert (writer.written, writer.failed) == (0, 5) and store.tries == 4  # 1 + 3 retries, then drop
    assert writer.stats()["failed"] == 5
    assert any("retrying" in r.getMessage() for r in caplog.records)
    await writer.aclose()


def test_rows_written_while_the_redis_log_store_restarts_are_not_lost(
    serve, fake_upstream: RunningFake, redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11 defect 10: a log-store outage used to drop every row written during it."""
    caplog.set_level(logging.WARNING, "aigw_asgi.telemetry")
    gateway = Gateway(gateway_config(fake_upstream.url, logs={"store": redis_url, "flush_interval_ms": 20}))
    server = serve(gateway)
    url = f"{server.url}/openai/chat/completions"
    assert httpx.post(url, json={"model": "gpt-4o-mini", "messages": MESSAGES}, timeout=10).status_code == 200

    redis_server.stop()
    ids = [
        httpx.post(url, json={"model": "gpt-4o-mini", "messages": MESSAGES}, timeout=10).headers["cf-aig-log-id"]
        for _ in range(3)
    ]
    deadline = time.monotonic() + 10  # the writer has tried, and failed, to store them
    while not any("log store redis failed" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the writer never tried the store"
        time.sleep(0.02)
    redis_server.start()

    deadline = time.monotonic() + 20
    while True:
        found = [httpx.get(f"{server.url}/admin/logs/{log_id}", timeout=10).status_code for log_id in ids]
        if found == [200, 200, 200]:
            break
        assert time.monotonic() < deadline, f"rows lost: {found}"
        time.sleep(0.1)
    assert gateway.telemetry.failed == 0
