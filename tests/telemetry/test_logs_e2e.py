"""Request logs end to end: the gateway under uvicorn, the official SDKs, rows read back over the admin API.

Rows must carry the right ids (``cf-aig-log-id`` is the row id), tokens and cost, for streams and
non-streams; logs must survive a restart (SQLite) and be shared by instances (Redis); a slow
store must never hold up a request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aigw_asgi import Gateway
from aigw_asgi.telemetry.records import LogRecord
from aigw_asgi.telemetry.stores.memory import MemoryLogStore
from tests.conftest import gateway_config
from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]
MINI_COST = 10 * 0.15e-6 + 5 * 0.6e-6  # gpt-4o-mini: 10 tokens in, 5 out at the built-in prices
FAKE_PRICES = {"claude-fake-1": {"input": 1e-6, "output": 2e-6}}


def log(server_url: str, log_id: str) -> dict[str, Any]:
    resp = httpx.get(f"{server_url}/admin/logs/{log_id}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def logs(server_url: str, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(f"{server_url}/admin/logs", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def test_openai_non_stream_row(make_gateway) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-secret-client-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"cf-aig-metadata": '{"user":"alice","n":1}'}
    )
    row = log(server.url, raw.headers["cf-aig-log-id"])
    assert row["id"] == raw.headers["cf-aig-log-id"] and row["request_id"] == raw.headers["cf-aig-request-id"]
    assert row["provider"] == "openai" and row["model"] == "gpt-4o-mini"
    assert row["path"] == "/openai/chat/completions" and row["method"] == "POST"
    assert row["status_code"] == 200 and row["success"] is True and row["cached"] is False
    assert row["tokens_in"] == 10 and row["tokens_out"] == 5
    assert row["cost"] == pytest.approx(MINI_COST) and row["custom_cost"] is False
    assert row["metadata"] == {"user": "alice", "n": 1}
    assert row["duration_ms"] > 0 and row["ttft_ms"] is not None and row["ttft_ms"] <= row["duration_ms"]
    assert row["user_agent"].startswith("OpenAI/Python") and row["client_ip"] == "127.0.0.1"
    assert row["created_at"].endswith("Z") and "request_body" not in row

    body = httpx.get(f"{server.url}/admin/logs/{row['id']}/request").json()["result"]
    assert body["model"] == "gpt-4o-mini" and body["messages"] == MESSAGES
    answer = httpx.get(f"{server.url}/admin/logs/{row['id']}/response").json()["result"]
    assert answer["usage"]["prompt_tokens"] == 10
    everything = json.dumps(httpx.get(f"{server.url}/admin/logs", params={"per_page": 100}).json())
    assert "sk-secret-client-key" not in everything


def test_openai_stream_row_counts_the_injected_usage_chunk(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="sk-x", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as resp:
        log_id = resp.headers["cf-aig-log-id"]
        text = "".join(line for line in resp.iter_lines())
    assert '"usage":{' not in text.replace(" ", "")  # the client did not ask for usage: not shown
    row = log(server.url, log_id)
    assert row["stream"] is True and row["success"] is True
    assert row["tokens_in"] == 10 and row["tokens_out"] == 5 and row["cost"] == pytest.approx(MINI_COST)
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["duration_ms"]
    stored = httpx.get(f"{server.url}/admin/logs/{log_id}/response").json()["result"]
    assert "chunk4" in stored and "data: [DONE]" in stored


def test_anthropic_rows_stream_and_non_stream(make_gateway) -> None:
    _, server = make_gateway(prices=FAKE_PRICES)
    client = anthropic.Anthropic(base_url=f"{server.url}/anthropic", api_key="sk-ant-x", max_retries=0)
    raw = client.messages.with_raw_response.create(model="claude-fake-1", max_tokens=50, messages=MESSAGES)
    row = log(server.url, raw.headers["cf-aig-log-id"])
    assert (row["provider"], row["tokens_in"], row["tokens_out"]) == ("anthropic", 10, 5)
    assert row["cost"] == pytest.approx(10e-6 + 10e-6)
    with client.messages.with_streaming_response.create(
        model="claude-fake-1", max_tokens=50, messages=MESSAGES, stream=True
    ) as resp:
        log_id = resp.headers["cf-aig-log-id"]
        for _ in resp.iter_lines():
            pass
    row = log(server.url, log_id)
    assert row["stream"] is True and (row["tokens_in"], row["tokens_out"]) == (10, 5)  # message_start + delta
    assert row["cost"] == pytest.approx(20e-6)


def test_gemini_usage_metadata_and_unknown_models(make_gateway) -> None:
    _, server = make_gateway()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post(
            "/google-ai-studio/v1beta/models/gemini-2.0-flash:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": "k-123456789"},
        )
        assert resp.status_code == 200
        row = log(server.url, resp.headers["cf-aig-log-id"])
        assert (row["tokens_in"], row["tokens_out"]) == (10, 5)
        assert row["cost"] == pytest.approx(10 * 0.1e-6 + 5 * 0.4e-6)
        resp = client.post("/openai/chat/completions", json={"model": "made-up-model", "messages": MESSAGES})
        row = log(server.url, resp.headers["cf-aig-log-id"])
        assert row["tokens_in"] == 10 and row["cost"] is None  # unknown model: no made-up number


def test_one_row_per_attempt(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(retries={"max_attempts": 3})
    fake_upstream.app.fail(503, times=2)
    fake_upstream.app.retry_after = "0"
    resp = httpx.post(
        f"{server.url}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"cf-aig-event-id": "retry-me"},
        timeout=10,
    )
    assert resp.status_code == 200
    rows = logs(server.url, event_id="retry-me", order_by="created_at", direction="asc")
    assert [(r["attempt"], r["status_code"], r["success"]) for r in rows] == [
        (1, 503, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert rows[-1]["id"] == resp.headers["cf-aig-log-id"]
    assert len({r["id"] for r in rows}) == 3 and rows[0]["cost"] is None and rows[-1]["tokens_in"] == 10


def test_collect_log_headers_and_custom_cost(make_gateway) -> None:
    _, server = make_gateway()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"model": "gpt-4o-mini", "messages": MESSAGES}
        off = client.post("/openai/chat/completions", json=body, headers={"cf-aig-collect-log": "false"})
        no_payload = client.post("/openai/chat/completions", json=body, headers={"cf-aig-collect-log-payload": "false"})
        custom = client.post(
            "/openai/chat/completions",
            json=body,
            headers={"cf-aig-custom-cost": '{"per_token_in":0.001,"per_token_out":0.002}'},
        )
        assert client.get(f"/admin/logs/{off.headers['cf-aig-log-id']}").status_code == 404
        no_payload_id = no_payload.headers["cf-aig-log-id"]
        assert log(server.url, no_payload_id)["tokens_in"] == 10
        assert client.get(f"/admin/logs/{no_payload_id}/request").status_code == 404
        row = log(server.url, custom.headers["cf-aig-log-id"])
        assert row["custom_cost"] is True and row["cost"] == pytest.approx(10 * 0.001 + 5 * 0.002)


def test_bad_metadata_is_a_400_and_still_logged(make_gateway) -> None:
    _, server = make_gateway()
    resp = httpx.post(
        f"{server.url}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"cf-aig-metadata": "{not json"},
        timeout=10,
    )
    assert resp.status_code == 400 and resp.json()["error"][0]["code"] == 2004
    row = log(server.url, resp.headers["cf-aig-log-id"])
    assert row["status_code"] == 400 and row["success"] is False and "cf-aig-metadata" in row["error"]


def test_cache_hits_are_logged_at_zero_cost(make_gateway) -> None:
    _, server = make_gateway()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"model": "gpt-4o-mini", "messages": MESSAGES}
        first = client.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
        second = client.post("/openai/chat/completions", json=body, headers={"cf-aig-cache-ttl": "60"})
    assert second.headers["cf-aig-cache-status"] == "HIT"
    miss, hit = log(server.url, first.headers["cf-aig-log-id"]), log(server.url, second.headers["cf-aig-log-id"])
    assert miss["cached"] is False and miss["cost"] == pytest.approx(MINI_COST)
    assert hit["cached"] is True and hit["cache_status"] == "HIT" and hit["cost"] == 0.0 and hit["success"] is True


def test_sqlite_logs_survive_a_restart(fake_upstream: RunningFake, serve, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/aigw.db"
    first = Gateway(gateway_config(fake_upstream.url, logs={"store": store}))
    server = serve(first)
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    log_id = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).headers[
        "cf-aig-log-id"
    ]
    server.stop()  # lifespan shutdown flushes the writer
    second = serve(Gateway(gateway_config(fake_upstream.url, logs={"store": store})))
    row = log(second.url, log_id)
    assert row["tokens_in"] == 10 and row["cost"] == pytest.approx(MINI_COST)


def test_redis_store_is_shared_by_two_instances(fake_upstream: RunningFake, serve, redis_url: str) -> None:
    config = {"logs": {"store": redis_url}}
    a = serve(Gateway(gateway_config(fake_upstream.url, **config)))
    b = serve(Gateway(gateway_config(fake_upstream.url, **config)))
    ids = []
    for server in (a, b):
        resp = httpx.post(
            f"{server.url}/openai/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers={"cf-aig-metadata": '{"run":"shared"}'},
            timeout=10,
        )
        ids.append(resp.headers["cf-aig-log-id"])
    logs(a.url)  # reading through an instance flushes its own writer
    seen_by_b = {r["id"] for r in logs(b.url, **{"metadata.run": "shared"})}
    assert seen_by_b == set(ids)
    assert log(b.url, ids[0])["tokens_out"] == 5


class GatedStore(MemoryLogStore):
    """A store whose writes wait until the test opens the gate: as slow as a store can be."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    async def write(self, records: Sequence[LogRecord]) -> int:
        import asyncio

        self.entered.set()
        await asyncio.to_thread(self.gate.wait, 10)
        return await super().write(records)


def test_a_slow_store_never_blocks_requests(
    fake_upstream: RunningFake, serve: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    store = GatedStore()
    config = gateway_config(fake_upstream.url, logs={"store": "memory://", "batch_size": 1, "queue_size": 3})
    gateway = Gateway(config, log_store=store)
    server = serve(gateway)
    caplog.set_level(logging.WARNING, logger="aigw_asgi.telemetry")
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for i in range(10):
                resp = client.post("/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
                assert resp.status_code == 200, i
                if i == 0:
                    assert store.entered.wait(5)  # the writer is now stuck inside the store
        # 1 row stuck in the store's write, 3 waiting in the queue, the other 6 dropped and counted.
        assert gateway.telemetry.dropped == 6
        assert any("log queue full" in r.getMessage() for r in caplog.records)
    finally:
        store.gate.set()
    rows = logs(server.url, per_page=100)
    assert len(rows) == 4


def test_the_middleware_alone_around_any_asgi_app(serve) -> None:
    from aigw_asgi.config import config_from_dict
    from aigw_asgi.telemetry import TelemetryMiddleware
    from aigw_asgi.telemetry.query import LogQuery

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError("secret sk-do-not-log")
        body = b"made"
        if scope["path"] == "/rows":  # read the store inside the server's loop, after a flush
            await telemetry.flush()
            found, _ = await store.query(LogQuery(per_page=100))
            body = json.dumps([r.to_dict() for r in found]).encode()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": body})

    store = MemoryLogStore()
    telemetry = TelemetryMiddleware(app, config_from_dict({"logs": {"store": "memory://"}}), store=store)
    server = serve(telemetry)
    assert httpx.get(f"{server.url}/hello").status_code == 201
    assert httpx.get(f"{server.url}/boom").status_code == 500
    by_path = {r["path"]: r for r in httpx.get(f"{server.url}/rows").json()}
    assert by_path["/hello"]["status_code"] == 201 and by_path["/hello"]["success"] is True
    assert by_path["/hello"]["ttft_ms"] is not None and by_path["/hello"]["provider"] is None
    assert by_path["/boom"]["status_code"] == 500 and by_path["/boom"]["error"] == "internal error (RuntimeError)"


def test_refusals_by_inner_layers_are_logged(make_gateway) -> None:
    _, server = make_gateway(
        gateway={"authentication": True, "tokens": [{"name": "app", "token": "gw-token-123456"}]},
        rate_limit={"limit": 1, "period": 60},
    )
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    auth = {"cf-aig-authorization": "Bearer gw-token-123456"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        denied = client.post("/openai/chat/completions", json=body)
        ok = client.post("/openai/chat/completions", json=body, headers=auth)
        limited = client.post("/openai/chat/completions", json=body, headers=auth)
    assert (denied.status_code, ok.status_code, limited.status_code) == (401, 200, 429)
    row = log(server.url, denied.headers["cf-aig-log-id"])
    assert row["status_code"] == 401 and row["success"] is False and row["token_name"] is None and row["error"]
    assert log(server.url, ok.headers["cf-aig-log-id"])["token_name"] == "app"
    row = log(server.url, limited.headers["cf-aig-log-id"])
    assert row["status_code"] == 429 and row["token_name"] == "app" and row["rate_limited_by"]
    everything = json.dumps(logs(server.url, per_page=100))
    assert "gw-token-123456" not in everything
