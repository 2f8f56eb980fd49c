"""A burst on two ``aigw serve`` processes never spends past a shared budget (SPEC §14, §16).

50 concurrent requests, alternating between two processes, against a budget that fits 10 worst
cases: the fake provider holds every request it receives until the test releases them, so all
admitted requests are in flight at once and every reservation is held while the rest arrive.
Exactly 10 reach the provider; the other 40 are refused with 429 code 2031 by both processes.
Then the real (smaller) costs are settled, and the room they leave is usable again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.upstream import RunningFake
from tests.gateway_processes import GatewayProcesses

IN, OUT = 1e-6, 2e-6
BODY = json.dumps({"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
WORST = len(BODY.encode()) * IN + 20 * OUT
REAL = 10 * IN + 5 * OUT  # the fake's answer: 10 input tokens, 5 output tokens
FITS = 10


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[GatewayProcesses]:
    running = GatewayProcesses(tmp_path)
    yield running
    running.stop()


async def wait_until(condition, what: str) -> None:
    for _ in range(1000):  # 20 s at most
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("storage", ["redis", "sqlite", "postgresql"])
async def test_fifty_concurrent_requests_on_two_processes_admit_exactly_what_fits(
    processes: GatewayProcesses,
    fake_upstream: RunningFake,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    storage: str,
) -> None:
    if storage == "sqlite":
        spend = f"sqlite:///{tmp_path / 'aigw.db'}"
    else:
        spend = request.getfixturevalue("redis_url" if storage == "redis" else "postgres_url")
    config = f"""
[[budgets]]
name = "burst"
usd = {FITS * WORST + WORST / 2!r}
period = "month"

[spend]
storage = "{spend}"
# Exactness is the point, not outages: a freshly started process on a busy machine must not
# read a slow first round trip as "storage down".
timeout_ms = 10000

[prices."gpt-4o-mini"]
input = {IN!r}
output = {OUT!r}

[logs]
store = "memory://"

[providers.openai]
base_url = "{fake_upstream.url}/v1"
"""
    ports = [processes.start(config), processes.start(config)]
    fake_upstream.app.hang = True  # every admitted request stays in flight until released
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=60) as client:
        urls = [f"http://127.0.0.1:{ports[i % 2]}/openai/chat/completions" for i in range(50)]
        tasks = [asyncio.create_task(client.post(url, content=BODY, headers=headers)) for url in urls]
        await wait_until(lambda: sum(t.done() for t in tasks) >= 40, "40 answers")
        await wait_until(lambda: len(fake_upstream.app.requests) >= FITS, "10 requests upstream")
        refused = [t.result() for t in tasks if t.done()]
        assert len(refused) == 40 and len(fake_upstream.app.requests) == FITS
        assert {r.status_code for r in refused} == {429}
        assert {r.json()["error"][0]["code"] for r in refused} == {2031}
        assert {r.url.port for r in refused} == set(ports)  # both processes refused: one shared budget
        fake_upstream.app.release()
        fake_upstream.app.hang = False
        answers = await asyncio.gather(*tasks)
        assert [r.status_code for r in answers].count(200) == FITS

        # Settled to the real cost: 10 answers spent far less than their worst cases...
        async def budget() -> dict:
            resp = await client.get(f"http://127.0.0.1:{ports[1]}/admin/budgets")
            return resp.json()["result"][0]

        for _ in range(400):  # the last settlements may still be on their way
            entry = await budget()
            if not entry["reserved"]:
                break
            await asyncio.sleep(0.05)
        assert entry["reserved"] == 0 and entry["spent"] == pytest.approx(FITS * REAL)
        # ...so the budget has room again, exactly as much as it says.
        more = await client.post(urls[0], content=BODY, headers=headers)
        assert more.status_code == 200
