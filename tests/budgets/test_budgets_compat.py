"""Keys and budgets on the unified API (``/compat``): each target is checked and charged like any
request, and the refusals come back in the client surface's own error shape (SPEC §12, §14)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.upstream import RunningFake

PRICES = {"gpt-4o-mini": {"input": 1e-6, "output": 2e-6}, "claude-fake-1": {"input": 1e-6, "output": 2e-6}}
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server(make_gateway) -> Any:
    _, running = make_gateway(gateway={"authentication": True}, prices=PRICES)
    return running


def key(server: Any, **fields: Any) -> str:
    resp = httpx.post(f"{server.url}/admin/keys", json={"name": "team", **fields}, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["result"]["key"])


def test_a_key_limited_to_some_models_on_compat(server: Any, fake_upstream: RunningFake) -> None:
    secret = key(server, allowed_models=["claude-*"])
    headers = {"cf-aig-authorization": f"Bearer {secret}"}
    client = openai.OpenAI(base_url=f"{server.url}/compat", api_key="sk-x", default_headers=headers, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    assert refused.value.status_code == 403 and "gpt-4o-mini" in str(refused.value.message)
    assert fake_upstream.app.requests == []
    answer = client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK, max_tokens=50)
    assert answer.choices[0].message.content  # translated to Anthropic, allowed, answered
    client.close()


def test_an_exhausted_budget_on_compat_is_a_429_in_each_surface(server: Any) -> None:
    secret = key(server, budget={"usd": 1e-9, "period": "month"})  # less than any request's worst case
    headers = {"cf-aig-authorization": f"Bearer {secret}"}
    client = openai.OpenAI(base_url=f"{server.url}/compat", api_key="sk-x", default_headers=headers, max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, max_tokens=5)
    assert "Spend budget of key 'team' exhausted" in str(refused.value.message)
    assert int(refused.value.response.headers["retry-after"]) >= 1
    client.close()
    base = f"{server.url}/compat"
    claude = anthropic.Anthropic(base_url=base, api_key="sk-x", default_headers=headers, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as refused_too:
        claude.messages.create(model="anthropic/claude-fake-1", messages=ASK, max_tokens=5)
    assert refused_too.value.body["error"]["type"] == "rate_limit_error"  # Anthropic's own shape
    claude.close()
