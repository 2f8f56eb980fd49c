"""Spend budgets through a real gateway under uvicorn (SPEC §14): settle to what was really used.

Prices are set in the config so the numbers are exact: $1 per million input tokens, $2 per million
output tokens. The fake provider reports 10 input tokens and one output token per content chunk.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest
from websockets.sync.client import connect

from aigw_asgi.budgets import BudgetMiddleware
from aigw_asgi.config import config_from_dict
from aigw_asgi.router import ProviderRouter
from tests.conftest import fake_providers
from tests.fakes.upstream import RunningFake

IN, OUT = 1e-6, 2e-6
PRICES = {"gpt-4o-mini": {"input": IN, "output": OUT}, "claude-test": {"input": IN, "output": OUT}}
MESSAGES = [{"role": "user", "content": "hello"}]


def budgets(server: Any, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(f"{server.url}/admin/budgets", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def settled(server: Any, **params: Any) -> list[dict[str, Any]]:
    """The budgets once nothing is reserved any more (a settlement runs when its answer has ended)."""
    deadline = time.monotonic() + 10
    while True:
        found = budgets(server, **params)
        if all(entry["reserved"] == 0 for entry in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def post(server: Any, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """POST the body as ``encode`` spells it, so a test knows its worst case to the byte."""
    headers = {"content-type": "application/json", **(headers or {})}
    return httpx.post(f"{server.url}/openai/chat/completions", content=encode(body), headers=headers, timeout=10)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def worst(body: dict[str, Any]) -> float:
    """What the gateway reserves: one input token per body byte, ``max_tokens`` output tokens."""
    return len(encode(body)) * IN + body["max_tokens"] * OUT


REAL = 10 * IN + 5 * OUT  # what the fake's answer costs: 10 input tokens, 5 output tokens


def test_a_streamed_answer_is_settled_to_its_real_usage(make_gateway) -> None:
    _, server = make_gateway(budgets=[{"usd": 1.0, "period": "month", "name": "monthly"}], prices=PRICES)
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-client", max_retries=0)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, max_tokens=100)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    (entry,) = settled(server)
    assert entry["spent"] == pytest.approx(10 * IN + 5 * OUT) and entry["reserved"] == 0
    assert entry["remaining"] == pytest.approx(1.0 - entry["spent"])
    assert (entry["budget"], entry["scope"], entry["period"]) == ("monthly", ["gateway"], "month")
    assert entry["window"] == datetime.now(UTC).strftime("%Y-%m")
    # The same number the log row says: spend is the logged cost.
    (row,) = httpx.get(f"{server.url}/admin/logs", timeout=10).json()["result"]
    assert row["cost"] == pytest.approx(entry["spent"])


def test_a_client_that_leaves_mid_stream_is_charged_what_it_used(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(budgets=[{"usd": 1.0}], prices=PRICES)
    body = {"model": "claude-test", "max_tokens": 1000, "stream": True, "messages": MESSAGES}
    headers = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01", "x-fake-chunks": "200"}
    headers["x-fake-chunk-delay"] = "0.05"
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", f"{server.url}/anthropic/v1/messages", json=body, headers=headers) as resp:
            assert resp.status_code == 200
            seen = 0
            for line in resp.iter_lines():
                seen += line.startswith("data:")
                if seen == 6:
                    break  # leave: closing the response drops the connection
    (entry,) = settled(server)
    full = 10 * IN + 200 * OUT
    # Input as the provider reported it at the start; output: the events that went out before the cut.
    assert 10 * IN + 6 * OUT <= entry["spent"] < full / 2
    assert entry["reserved"] == 0
    rec = fake_upstream.app.last
    assert rec.disconnected and not rec.completed  # the gateway stopped the upstream stream too


def test_an_exhausted_key_budget_is_a_429_until_its_window_resets(make_gateway) -> None:
    _, server = make_gateway(gateway={"authentication": True}, prices=PRICES)
    # Worst case of the request below: its body bytes as input tokens + max_tokens (10) as output.
    body = {"model": "gpt-4o-mini", "max_tokens": 10, "messages": MESSAGES}
    budget = {"usd": worst(body) + 2 * REAL, "period": "day"}
    created = httpx.post(f"{server.url}/admin/keys", json={"name": "team-a", "budget": budget}).json()["result"]
    headers = {"cf-aig-authorization": f"Bearer {created['key']}"}
    statuses = [post(server, body, headers).status_code for _ in range(4)]
    # Each real answer costs far less than its worst case: 3 fit (the 3rd: 2 spent + 1 worst = the budget).
    assert statuses == [200, 200, 200, 429]
    refused = post(server, body, headers)
    assert refused.status_code == 429 and refused.json()["error"][0]["code"] == 2031
    assert "key 'team-a'" in refused.json()["error"][0]["message"]
    now = time.time()
    midnight = (now // 86400 + 1) * 86400
    assert 1 <= int(refused.headers["retry-after"]) <= midnight - now + 1
    (entry,) = settled(server, budget="key:team-a")
    assert entry["spent"] == pytest.approx(3 * REAL) and entry["key_id"] == created["id"]
    assert entry["period"] == "day" and entry["remaining"] < worst(body)
    rows = httpx.get(f"{server.url}/admin/logs", params={"status_code": 429}, timeout=10).json()["result"]
    assert rows and rows[0]["rate_limited_by"] == "budget:key:team-a"


def test_cache_hits_are_free_and_never_refused(make_gateway) -> None:
    _, server = make_gateway(budgets=[{"usd": 1.0}], prices=PRICES, cache={"ttl": 300})
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert post(server, body).headers["cf-aig-cache-status"] == "MISS"
    assert post(server, body).headers["cf-aig-cache-status"] == "HIT"
    (entry,) = settled(server)
    assert entry["spent"] == pytest.approx(10 * IN + 5 * OUT)  # one answer paid for, not two


def test_scoped_budgets_count_each_value_apart(make_gateway) -> None:
    body = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": MESSAGES}
    budget = {"usd": worst(body) + 2 * REAL, "period": "total", "scope": ["metadata.team"], "name": "per-team"}
    _, server = make_gateway(budgets=[budget], prices=PRICES)
    team_a = {"cf-aig-metadata": '{"team": "a/b"}'}
    answers = [post(server, body, team_a) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert "retry-after" not in answers[-1].headers  # a total budget never resets
    assert "does not reset" in answers[-1].json()["error"][0]["message"]
    assert post(server, body, {"cf-aig-metadata": '{"team": "c"}'}).status_code == 200
    assert [post(server, body).status_code for _ in range(4)] == [200] * 4  # no team: the budget does not apply
    entries = {json.dumps(e["scope_value"]): e for e in settled(server)}
    assert set(entries) == {'{"metadata.team": "a/b"}', '{"metadata.team": "c"}'}
    assert entries['{"metadata.team": "a/b"}']["remaining"] < entries['{"metadata.team": "c"}']["remaining"]


def test_unknown_prices_are_allowed_and_warned_once(make_gateway, caplog: pytest.LogCaptureFixture) -> None:
    _, server = make_gateway(budgets=[{"usd": 1.0}])
    with caplog.at_level(logging.WARNING, logger="aigw_asgi.budgets"):
        for _ in range(3):
            assert post(server, {"model": "mystery-model", "messages": MESSAGES}).status_code == 200
    warnings = [r for r in caplog.records if "no price for model 'mystery-model'" in r.getMessage()]
    assert len(warnings) == 1
    (entry,) = settled(server)
    assert entry["spent"] == 0


def test_unknown_prices_can_be_refused(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(budgets=[{"usd": 1.0}], spend={"unknown_price": "refuse"}, prices=PRICES)
    refused = post(server, {"model": "mystery-model", "messages": MESSAGES})
    assert refused.status_code == 403 and refused.json()["error"][0]["code"] == 2032
    assert "no price" in refused.json()["error"][0]["message"]
    assert post(server, {"model": "gpt-4o-mini", "messages": MESSAGES}).status_code == 200
    # A custom cost prices a request the table does not know.
    custom = {"cf-aig-custom-cost": '{"per_token_in": 0.000001, "per_token_out": 0.000002}'}
    assert post(server, {"model": "mystery-model", "messages": MESSAGES}, custom).status_code == 200
    assert [r.model for r in fake_upstream.app.requests] == ["gpt-4o-mini", "mystery-model"]


def test_websocket_messages_are_budgeted_too(make_gateway) -> None:
    _, server = make_gateway(budgets=[{"usd": 2e-4, "period": "total"}], prices=PRICES)
    step = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "gpt-4o-mini", "max_tokens": 5}}
    frames = []
    with connect(f"{server.ws_url}/", open_timeout=5) as ws:
        for i in range(12):
            query = {**step["query"], "messages": MESSAGES}
            ws.send(json.dumps({"type": "universal.create", "request": {**step, "query": query, "eventId": str(i)}}))
            frames.append(json.loads(ws.recv(timeout=10)))
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "universal.created" and kinds[-1] == "universal.error"
    assert frames[-1]["error"]["code"] == 2031


def test_budget_storage_down_fails_closed_by_default(make_gateway, redis_server, redis_url: str) -> None:
    _, server = make_gateway(budgets=[{"usd": 1.0}], spend={"storage": redis_url, "timeout_ms": 200}, prices=PRICES)
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert post(server, body).status_code == 200
    redis_server.stop()
    try:
        down = post(server, body)
        assert down.status_code == 503 and down.json()["error"][0]["code"] == 2011
    finally:
        redis_server.start()


def test_budget_storage_down_can_fail_open(make_gateway, redis_server, redis_url: str) -> None:
    spend = {"storage": redis_url, "timeout_ms": 200, "fail_open": True}
    _, server = make_gateway(budgets=[{"usd": 1.0}], spend=spend, prices=PRICES)
    redis_server.stop()
    try:
        assert post(server, {"model": "gpt-4o-mini", "messages": MESSAGES}).status_code == 200
    finally:
        redis_server.start()


BODY = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": MESSAGES}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_day_budget_resets_at_midnight_utc(fake_upstream: RunningFake, serve) -> None:
    """The budget layer alone around the router, with the clock it places windows by moved by the test."""
    config = config_from_dict(
        {
            "logs": {"store": "memory://"},
            "providers": fake_providers(fake_upstream.url),
            "prices": PRICES,
            "budgets": [{"usd": worst(BODY) + REAL / 2, "period": "day"}],
        }
    )
    clock = Clock(datetime(2025, 6, 15, 23, 59, 50, tzinfo=UTC).timestamp())
    server = serve(BudgetMiddleware(ProviderRouter(config), config, clock=clock))
    body = BODY
    assert post(server, body).status_code == 200  # after it, what is left is less than a worst case
    refused = post(server, body)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
    clock.now += 10  # 00:00:00 on the 16th: a new window, a new counter
    assert post(server, body).status_code == 200
