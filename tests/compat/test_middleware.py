"""CompatMiddleware in a real gateway: errors in the surface's shape, refusals, the cache, fallback
through dynamic routes, log rows, and ``/compat`` as a universal (and WebSocket) step."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from websockets.sync.client import connect

from tests.fakes.upstream import RunningFake

ASK = [{"role": "user", "content": "Weather in Paris?"}]
TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4 "
ROUTES = {
    "claude-then-gpt": {
        "strategy": "fallback",
        "targets": [
            {"provider": "anthropic", "model": "claude-fake-1"},
            {"provider": "openai", "model": "gpt-4o-mini"},
        ],
    }
}


def post(url: str, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=10)


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/compat", api_key="sk-client", max_retries=0)


def rows(url: str, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/admin/logs", params={"per_page": 50, **params}, timeout=10)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["result"])


# -- the model string and the surface's own error shape -----------------------------------------------------


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("nope/x", "unknown provider 'nope'"),
        ("gpt-4o", "expected '{provider}/{model}'"),
        (None, "'model' is required"),
        ("dynamic/missing", "no route named 'missing'"),
        ("replicate/meta/llama", "not available through /compat"),
    ],
)
def test_a_bad_model_is_400_2019_in_openai_shape(make_gateway, model: str | None, says: str) -> None:
    _, server = make_gateway()
    resp = post(server.url, "/compat/chat/completions", {"model": model, "messages": ASK})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == 2019 and error["type"] == "invalid_request_error" and says in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert resp.headers["cf-aig-log-id"] and resp.headers["cf-aig-cache-status"] == "MISS"
    if model:
        assert resp.headers["cf-aig-model"] == model


def test_a_provider_the_gateway_does_not_serve_is_refused(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(gateway={"providers": ["anthropic"]})
    resp = post(server.url, "/compat/chat/completions", {"model": "openai/gpt-4o-mini", "messages": ASK})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == 2019
    assert "provider 'openai' is not enabled on this gateway" in resp.json()["error"]["message"]
    assert fake_upstream.app.requests == []
    ids = [m["id"] for m in httpx.get(f"{server.url}/compat/models", timeout=10).json()["data"]]
    assert ids and all(i.startswith("anthropic/") for i in ids)


def test_anthropic_surface_errors_are_anthropic_shaped(make_gateway) -> None:
    _, server = make_gateway()
    resp = post(server.url, "/compat/v1/messages", {"model": "nope/x", "max_tokens": 5, "messages": ASK})
    assert resp.status_code == 400
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "unknown provider" in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/compat/chat/completions", "not json", 400, "expected a JSON object"),
        ("/compat/chat/completions", {"model": "anthropic/c", "messages": ASK, "n": 2}, 400, "n > 1"),
        ("/compat/chat/completions", {"model": "anthropic/c", "messages": ASK, "seed": 1}, 400, "seed"),
        (
            "/compat/chat/completions",
            {"model": "google-ai-studio/g", "messages": ASK, "parallel_tool_calls": False},
            400,
            "parallel_tool_calls",
        ),
        ("/compat/responses", {"model": "anthropic/c", "input": "hi", "previous_response_id": "r"}, 400, "previous"),
        ("/compat/completions", {"model": "openai/x", "prompt": "hi"}, 404, "not a /compat endpoint"),
    ],
)
def test_refusals_and_bad_requests_name_the_parameter(
    make_gateway, fake_upstream: RunningFake, path: str, body: Any, status: int, says: str
) -> None:
    _, server = make_gateway()
    if isinstance(body, str):
        resp = httpx.post(f"{server.url}{path}", content=body, timeout=10)
    else:
        resp = post(server.url, path, body)
    assert resp.status_code == status
    assert says in resp.json()["error"]["message"]
    assert fake_upstream.app.requests == []  # refused before anything left the gateway


@pytest.mark.parametrize(
    ("model", "status", "sdk_error"),
    [
        ("anthropic/claude-fake-1", 529, openai.InternalServerError),
        ("google-ai-studio/gemini-2.5-flash", 400, openai.BadRequestError),
        ("openai/gpt-4o-mini", 401, openai.AuthenticationError),
    ],
)
def test_provider_errors_keep_their_status_in_openai_shape(
    make_gateway, fake_upstream: RunningFake, model: str, status: int, sdk_error: type[Exception]
) -> None:
    _, server = make_gateway()
    fake_upstream.app.fail(status, error_message="provider says no")
    with pytest.raises(sdk_error) as info:
        sdk(server.url).chat.completions.create(model=model, messages=ASK)
    error = info.value
    assert isinstance(error, openai.APIStatusError) and error.status_code == status
    assert isinstance(error.body, dict) and error.body["message"] == "provider says no"
    assert error.response.headers["cf-aig-provider"] == model.split("/")[0]


def test_a_gateway_rate_limit_is_a_429_2003_in_surface_shape(make_gateway) -> None:
    _, server = make_gateway(rate_limit={"limit": 1, "period": 60})
    client = sdk(server.url)
    client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK)
    assert info.value.body["code"] == 2003  # type: ignore[index]
    assert info.value.response.headers["retry-after"]


@pytest.mark.parametrize("model", ["anthropic/claude-fake-1", "google-ai-studio/gemini-2.5-flash"])
def test_a_stream_cut_midway_raises_in_the_openai_sdk(make_gateway, fake_upstream: RunningFake, model: str) -> None:
    _, server = make_gateway()
    fake_upstream.app.break_after = 4  # Anthropic: message_start, block start, ping, then text
    received: list[str] = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in sdk(server.url).chat.completions.create(model=model, messages=ASK, stream=True):
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert "chunk0 " in received


# -- everything else still applies -----------------------------------------------------------------------


def test_a_repeat_is_a_cache_hit_and_another_target_is_not(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = sdk(server.url).with_options(default_headers={"cf-aig-cache-ttl": "600"})
    for stream in (False, True):
        body: dict[str, Any] = {"model": "anthropic/claude-fake-1", "messages": ASK, "stream": stream}
        first = client.chat.completions.with_raw_response.create(**body)
        second = client.chat.completions.with_raw_response.create(**body)
        assert first.headers["cf-aig-cache-status"] == "MISS" and second.headers["cf-aig-cache-status"] == "HIT"
        if stream:
            texts = ["".join(c.choices[0].delta.content or "" for c in r.parse() if c.choices) for r in (first, second)]
        else:
            texts = [r.parse().choices[0].message.content for r in (first, second)]
        assert texts == [TEXT, TEXT]  # the stored native answer is translated again on a hit
    assert len(fake_upstream.app.requests) == 2
    other = client.chat.completions.with_raw_response.create(model="google-ai-studio/gemini-2.5-flash", messages=ASK)
    assert other.headers["cf-aig-cache-status"] == "MISS"
    # Gemini has no `user`: dropped from what it is sent, but still part of the key.
    for user in ("alice", "bob"):
        again = client.chat.completions.with_raw_response.create(
            model="google-ai-studio/gemini-2.5-flash", messages=ASK, user=user
        )
        assert again.headers["cf-aig-cache-status"] == "MISS"
    assert len(fake_upstream.app.requests) == 5


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_target_falls_back_through_a_dynamic_route(
    make_gateway, fake_upstream: RunningFake, stream: bool
) -> None:
    _, server = make_gateway(routes=ROUTES)
    fake_upstream.app.fail(500, path="/v1/messages")
    raw = sdk(server.url).chat.completions.with_raw_response.create(
        model="dynamic/claude-then-gpt", messages=ASK, stream=stream
    )
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content or ""
    assert text == TEXT
    assert raw.headers["cf-aig-step"] == "1" and raw.headers["cf-aig-provider"] == "openai"
    assert raw.headers["cf-aig-model"] == "gpt-4o-mini"
    assert [r.path for r in fake_upstream.app.requests] == ["/v1/messages", "/v1/chat/completions"]
    logged = rows(server.url)
    assert sorted((r["provider"], r["status_code"], r["step"]) for r in logged) == [
        ("anthropic", 500, 0),
        ("openai", 200, 1),
    ]


def test_a_route_target_that_cannot_honour_the_request_is_skipped(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(routes=ROUTES)
    completion = sdk(server.url).chat.completions.create(model="dynamic/claude-then-gpt", messages=ASK, seed=7)
    assert completion.choices[0].message.content == TEXT
    assert [r.path for r in fake_upstream.app.requests] == ["/v1/chat/completions"]  # Anthropic has no seed


def test_log_rows_record_the_real_provider_model_and_the_surface(make_gateway) -> None:
    _, server = make_gateway()
    raw = sdk(server.url).chat.completions.with_raw_response.create(model="anthropic/claude-fake-1", messages=ASK)
    [row] = rows(server.url)
    assert row["id"] == raw.headers["cf-aig-log-id"]
    assert row["provider"] == "anthropic" and row["model"] == "claude-fake-1"
    assert row["path"] == "/anthropic/messages" and row["tokens_in"] == 10 and row["tokens_out"] == 5
    assert row["metadata"] == {"aigw_surface": "chat/completions"}
    assert rows(server.url, **{"metadata.aigw_surface": "chat/completions"})[0]["id"] == row["id"]
    request = httpx.get(f"{server.url}/admin/logs/{row['id']}/request", timeout=10).json()["result"]
    assert request["model"] == "claude-fake-1" and request["max_tokens"] > 0  # the body the provider got


def test_the_gateway_token_in_the_sdk_key_slot_is_not_forwarded(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(
        gateway={"authentication": True, "tokens": [{"name": "app", "token": "gw-token"}]},
        providers={"anthropic": {"api_key": "sk-ant-stored"}},
    )
    client = openai.OpenAI(base_url=f"{server.url}/compat", api_key="gw-token", max_retries=0)
    client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK)
    headers = fake_upstream.app.last.headers
    assert headers["x-api-key"] == "sk-ant-stored" and "authorization" not in headers
    denied = openai.OpenAI(base_url=f"{server.url}/compat", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        denied.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK)
    # The Anthropic SDK sends an auth_token as Authorization: Bearer, which the gateway accepts.
    claude = anthropic.Anthropic(base_url=f"{server.url}/compat", auth_token="gw-token", max_retries=0)
    claude.messages.create(model="anthropic/claude-fake-1", max_tokens=5, messages=ASK)
    headers = fake_upstream.app.last.headers
    assert headers["x-api-key"] == "sk-ant-stored" and "authorization" not in headers


def test_compat_as_a_universal_step(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    step = {
        "provider": "compat",
        "endpoint": "chat/completions",
        "headers": {"authorization": "Bearer sk-client"},
        "query": {"model": "google-ai-studio/gemini-2.5-flash", "messages": ASK},
    }
    resp = post(server.url, "/", [step])
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == TEXT
    assert resp.headers["cf-aig-provider"] == "google-ai-studio"
    assert fake_upstream.app.last.path.endswith(":generateContent")
    [row] = rows(server.url)
    assert row["provider"] == "google-ai-studio" and row["metadata"] == {"aigw_surface": "chat/completions"}


def test_compat_through_the_websocket_api(make_gateway) -> None:
    _, server = make_gateway()
    request = {
        "eventId": "e1",
        "provider": "compat",
        "endpoint": "chat/completions",
        "query": {"model": "anthropic/claude-fake-1", "messages": ASK},
    }
    with connect(f"{server.ws_url}/", open_timeout=5, close_timeout=2) as ws:
        ws.send(json.dumps({"type": "universal.create", "request": request}))
        reply = json.loads(ws.recv(timeout=10))
    assert reply["type"] == "universal.created"
    assert reply["response"]["choices"][0]["message"]["content"] == TEXT


def test_token_rules_count_the_real_providers_usage(make_gateway, fake_upstream: RunningFake, redis_url: str) -> None:
    """10 + 5 tokens per answer, counted on the provider the translation reached (Anthropic)."""
    import redis

    rule = {"limit": 20, "period": 3600, "name": "tokens", "unit": "tokens", "scope": ["provider"]}
    _, server = make_gateway(rate_limit={"storage": redis_url, "rules": [rule]})
    client = sdk(server.url)
    store = redis.Redis.from_url(redis_url)
    for _ in range(2):
        client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK)
    deadline = time.monotonic() + 5  # the debit lands right after the answer: wait for it, never race it
    debits: dict[bytes, int] = {}
    while time.monotonic() < deadline:
        debits = {key: int(store.get(key) or 0) for key in store.scan_iter("aigw:rl/default/tokens/*")}
        if sum(debits.values()) >= 30:
            break
        time.sleep(0.01)
    assert list(debits.values()) == [30] and b"anthropic" in next(iter(debits))
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK)
    assert refused.value.body["code"] == 2003  # type: ignore[index]
    client.chat.completions.create(model="google-ai-studio/gemini-2.5-flash", messages=ASK)  # another provider
    store.close()
