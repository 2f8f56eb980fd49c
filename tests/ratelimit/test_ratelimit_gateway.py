"""Rate limits inside the whole gateway, under real uvicorn, called by the official SDKs."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest
import redis

from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]


def chat(server_url: str, model: str = "gpt-4o-mini", **headers: str) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES}
    return httpx.post(f"{server_url}/openai/chat/completions", json=body, headers=headers)


def test_refused_request_never_reaches_the_provider(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(rate_limit={"limit": 2, "period": 60})
    client = anthropic.Anthropic(base_url=f"{server.url}/anthropic", api_key="sk-ant-x", max_retries=0)
    for _ in range(2):
        client.messages.create(model="claude-fake-1", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model="claude-fake-1", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert refused.value.status_code == 429
    assert refused.value.body == {
        "success": False,
        "result": [],
        "messages": [],
        "error": [{"code": 2003, "message": "Rate limited by rule 'gateway': 2 requests per 60 s"}],
    }
    headers = refused.value.response.headers
    assert headers["ratelimit-limit"] == "2" and headers["ratelimit-remaining"] == "0"
    assert 1 <= int(headers["retry-after"]) <= 60 and headers["ratelimit-reset"] == headers["retry-after"]
    assert headers["cf-aig-log-id"]
    assert len(fake_upstream.app.requests) == 2


def test_model_rule_reads_the_model_from_the_body(make_gateway, fake_upstream: RunningFake) -> None:
    rule = {"limit": 1, "period": 60, "name": "per-model", "scope": ["provider", "model"]}
    _, server = make_gateway(rate_limit={"rules": [rule]})
    assert chat(server.url, "gpt-a").status_code == 200
    refused = chat(server.url, "gpt-a")
    assert refused.status_code == 429 and "'per-model'" in refused.json()["error"][0]["message"]
    assert chat(server.url, "gpt-b").status_code == 200
    assert [r.model for r in fake_upstream.app.requests] == ["gpt-a", "gpt-b"]  # the body arrived intact


def test_model_rule_reads_models_that_live_in_the_path(make_gateway, fake_upstream: RunningFake) -> None:
    rule = {"limit": 1, "period": 60, "name": "per-model", "scope": ["model"]}
    _, server = make_gateway(rate_limit={"rules": [rule]})
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    url = f"{server.url}/google-ai-studio/v1beta/models/gemini-fake:generateContent"
    assert httpx.post(url, json=body).status_code == 200
    assert httpx.post(url, json=body).status_code == 429
    other = f"{server.url}/google-ai-studio/v1beta/models/gemini-other:generateContent"
    assert httpx.post(other, json=body).status_code == 200


def test_metadata_rule_through_the_gateway(make_gateway) -> None:
    rule = {"limit": 1, "period": 60, "scope": ["metadata.team"]}
    _, server = make_gateway(rate_limit={"rules": [rule]})
    red, blue = {"cf-aig-metadata": '{"team":"red"}'}, {"cf-aig-metadata": '{"team":"blue"}'}
    assert [chat(server.url, **red).status_code, chat(server.url, **red).status_code] == [200, 429]
    assert "'rules[0]'" in chat(server.url, **red).json()["error"][0]["message"]
    assert chat(server.url, **blue).status_code == 200
    assert chat(server.url).status_code == 200  # no team: the rule does not apply


def test_token_rule_debits_streamed_usage(make_gateway, fake_upstream: RunningFake, redis_url: str) -> None:
    """Each fake answer uses 10 + 5 = 15 tokens; a 40-token budget admits three streams, not four."""
    rule = {"limit": 40, "period": 3600, "name": "tpm", "technique": "sliding", "unit": "tokens"}
    _, server = make_gateway(rate_limit={"storage": redis_url, "rules": [rule]})
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    store = redis.Redis.from_url(redis_url)

    def debited() -> int:
        return sum(int(store.get(key) or 0) for key in store.scan_iter("aigw:{rl/default/tpm*"))

    for expected in (15, 30, 45):
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            if chunk.choices
        )
        assert text.startswith("chunk0")
        # The debit lands right after the answer completes; wait for it rather than race it.
        deadline = time.monotonic() + 5
        while debited() < min(expected, 40) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert debited() == min(expected, 40)  # the sliding counter is filled to the budget, not past it
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    assert b"'tpm': 40 tokens per 3600 s" in refused.value.response.read()
    assert refused.value.response.headers["ratelimit-limit"] == "40"
    assert len(fake_upstream.app.requests) == 3
    store.close()


def test_fixed_token_rule_counts_the_whole_overshoot(make_gateway, redis_url: str) -> None:
    rule = {"limit": 20, "period": 3600, "name": "tokens", "unit": "tokens"}
    _, server = make_gateway(rate_limit={"storage": redis_url, "rules": [rule]})
    store = redis.Redis.from_url(redis_url)
    assert chat(server.url).status_code == 200
    assert chat(server.url).status_code == 200  # 15 < 20: still admitted, then 30 debited
    deadline = time.monotonic() + 5
    keys: list[bytes] = []
    while time.monotonic() < deadline:
        keys = list(store.scan_iter("aigw:rl/default/tokens/*"))
        if keys and int(store.get(keys[0]) or 0) >= 30:
            break
        time.sleep(0.01)
    assert [int(store.get(key) or 0) for key in keys] == [30]
    assert chat(server.url).status_code == 429
    store.close()


def test_cache_hits_are_not_counted(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(rate_limit={"limit": 2, "period": 60})
    ttl = {"cf-aig-cache-ttl": "300"}
    first = chat(server.url, "gpt-a", **ttl)
    assert first.status_code == 200 and first.headers["cf-aig-cache-status"] == "MISS"
    for _ in range(3):
        hit = chat(server.url, "gpt-a", **ttl)
        assert hit.status_code == 200 and hit.headers["cf-aig-cache-status"] == "HIT"
    assert chat(server.url, "gpt-b").status_code == 200  # the second counted request
    assert chat(server.url, "gpt-c").status_code == 429
    assert len(fake_upstream.app.requests) == 2


def test_a_refused_request_is_logged_with_its_provider_and_model(make_gateway, fake_upstream: RunningFake) -> None:
    """Analytics filtered by provider or model must count the 429s too."""
    _, server = make_gateway(rate_limit={"limit": 1, "period": 60}, cache={"ttl": 300})  # the cache reads the body
    assert chat(server.url, "gpt-a").status_code == 200
    refused = chat(server.url, "gpt-b")
    assert refused.status_code == 429
    assert refused.headers["cf-aig-provider"] == "openai" and refused.headers["cf-aig-model"] == "gpt-b"
    rows = httpx.get(f"{server.url}/admin/logs", params={"status_code": 429}).json()["result"]
    assert [(r["provider"], r["model"]) for r in rows] == [("openai", "gpt-b")]
