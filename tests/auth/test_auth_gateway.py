"""An authenticated gateway under real uvicorn, called by the official SDKs (SPEC §8)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aigw_asgi.auth import hash_token
from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]
TOKEN = "gw-app-token-1234"
HASHED_TOKEN = "gw-ci-token-5678"
PROVIDER_KEY = "sk-byok-provider-key"


@pytest.fixture
def auth_gateway(make_gateway, monkeypatch: pytest.MonkeyPatch):
    """A gateway with authentication on: one plain token from the environment, one stored as a hash."""
    monkeypatch.setenv("AIGW_TEST_GATEWAY_TOKEN", TOKEN)
    return make_gateway(
        gateway={
            "authentication": True,
            "tokens": [
                {"name": "app", "token": "env:AIGW_TEST_GATEWAY_TOKEN"},
                {"name": "ci", "sha256": hash_token(HASHED_TOKEN)},
            ],
        },
        providers={"openai": {"api_key": PROVIDER_KEY}, "anthropic": {"api_key": PROVIDER_KEY}},
    )


_clients: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """SDK clients hold pooled sockets; close them so no ResourceWarning surfaces in a later test."""
    yield
    while _clients:
        _clients.pop().close()


def openai_client(url: str, token: str | None, api_key: str = "sk-client-key") -> openai.OpenAI:
    headers = {"cf-aig-authorization": f"Bearer {token}"} if token else None
    client = openai.OpenAI(base_url=f"{url}/openai", api_key=api_key, default_headers=headers, max_retries=0)
    _clients.append(client)
    return client


def anthropic_client(url: str, **kwargs: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=f"{url}/anthropic", max_retries=0, **kwargs)
    _clients.append(client)
    return client


def assert_unauthorized(exc: openai.APIStatusError) -> None:
    assert exc.status_code == 401
    body = exc.response.json()
    assert body == {
        "success": False,
        "result": [],
        "messages": [],
        "error": [{"code": 2009, "message": "Unauthorized"}],
    }
    assert exc.response.headers["cf-aig-log-id"]


def test_openai_sdk_with_token_header(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    completion = openai_client(server.url, TOKEN).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content
    seen = fake_upstream.app.last
    assert "cf-aig-authorization" not in seen.headers
    assert seen.headers["authorization"] == "Bearer sk-client-key"  # the client's own key passes through
    assert TOKEN not in repr(seen.headers) and TOKEN.encode() not in seen.body


def test_openai_sdk_streaming_with_token(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    stream = openai_client(server.url, TOKEN).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "


def test_missing_token_is_401_and_nothing_reaches_upstream(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(server.url, None).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert_unauthorized(info.value)
    assert info.value.response.headers["www-authenticate"].startswith("Bearer")
    assert fake_upstream.app.requests == []


@pytest.mark.parametrize("token", ["wrong-token-0000", TOKEN + "x", TOKEN[:-1], hash_token(HASHED_TOKEN)])
def test_wrong_token_is_401(auth_gateway, fake_upstream: RunningFake, token: str) -> None:
    _, server = auth_gateway
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(server.url, token).models.list()
    assert_unauthorized(info.value)
    assert token not in info.value.response.text
    assert fake_upstream.app.requests == []


def test_token_without_bearer_scheme_is_401(auth_gateway) -> None:
    _, server = auth_gateway
    resp = httpx.get(f"{server.url}/openai/models", headers={"cf-aig-authorization": TOKEN})
    assert resp.status_code == 401 and resp.json()["error"][0]["code"] == 2009


def test_hashed_token_works(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    completion = openai_client(server.url, HASHED_TOKEN).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices
    assert HASHED_TOKEN not in repr(fake_upstream.app.last.headers)


def test_gateway_token_in_the_provider_slot_uses_the_byok_key(auth_gateway, fake_upstream: RunningFake) -> None:
    """Cloudflare's BYOK shape: the SDK's api_key is the gateway token, the gateway holds the provider key."""
    _, server = auth_gateway
    client = openai_client(server.url, None, api_key=TOKEN)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    seen = fake_upstream.app.last
    assert seen.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert TOKEN not in repr(seen.headers)


def test_anthropic_sdk_auth_token_in_the_provider_slot(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    client = anthropic_client(server.url, auth_token=TOKEN, api_key=None)
    message = client.messages.create(model="claude-fake-1", max_tokens=16, messages=MESSAGES)
    assert message.content
    seen = fake_upstream.app.last
    assert seen.headers["x-api-key"] == PROVIDER_KEY
    assert TOKEN not in repr(seen.headers)


def test_anthropic_sdk_with_token_header(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    client = anthropic_client(
        server.url, api_key="sk-ant-client", default_headers={"cf-aig-authorization": f"Bearer {HASHED_TOKEN}"}
    )
    assert client.messages.create(model="claude-fake-1", max_tokens=16, messages=MESSAGES).content
    seen = fake_upstream.app.last
    assert "sk-ant-client" in repr(seen.headers)  # the client's key (SDK 2 sends it as a bearer) passes through
    assert "cf-aig-authorization" not in seen.headers and HASHED_TOKEN not in repr(seen.headers)


def test_provider_key_in_the_provider_slot_is_not_a_gateway_token(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    with pytest.raises(openai.AuthenticationError) as info:
        openai_client(server.url, None, api_key="sk-client-key").models.list()
    assert_unauthorized(info.value)
    assert fake_upstream.app.requests == []


def test_universal_endpoint_needs_the_token_too(auth_gateway, fake_upstream: RunningFake) -> None:
    _, server = auth_gateway
    step = {
        "provider": "openai",
        "endpoint": "chat/completions",
        "headers": {"authorization": "Bearer sk-client-key"},
        "query": {"model": "gpt-4o-mini", "messages": MESSAGES},
    }
    denied = httpx.post(f"{server.url}/", json=[step])
    assert denied.status_code == 401 and denied.json()["error"][0]["code"] == 2009
    assert fake_upstream.app.requests == []
    # Past authentication the request is the universal layer's business; here only: not refused.
    ok = httpx.post(f"{server.url}/", json=[step], headers={"cf-aig-authorization": f"Bearer {TOKEN}"})
    assert ok.status_code != 401, ok.text
    for seen in fake_upstream.app.requests:
        assert "cf-aig-authorization" not in seen.headers and TOKEN not in repr(seen.headers)


def test_authentication_off_ignores_the_header(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(gateway={"authentication": False, "tokens": [{"name": "app", "token": TOKEN}]})
    for token in (None, "not-a-configured-token", TOKEN):
        assert openai_client(server.url, token).models.list().data
        assert "cf-aig-authorization" not in fake_upstream.app.last.headers


# -- the admin API ------------------------------------------------------------------------------


def test_admin_token_guards_admin_routes(make_gateway) -> None:
    _, server = make_gateway(
        gateway={"authentication": True, "tokens": [{"name": "app", "token": TOKEN}], "admin_token": "admin-tok-999"}
    )
    health = f"{server.url}/admin/health"
    denied = httpx.get(health)  # loopback alone is not enough once an admin token is set
    assert denied.status_code == 401 and denied.json()["error"][0]["code"] == 2009
    assert httpx.get(health, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401
    assert httpx.get(health, headers={"cf-aig-authorization": f"Bearer {TOKEN}"}).status_code == 401
    assert httpx.get(health, headers={"authorization": "Bearer admin-tok-999"}).status_code == 200
    assert httpx.get(health, headers={"cf-aig-authorization": "Bearer admin-tok-999"}).status_code == 200


def test_admin_token_does_not_open_the_gateway(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(
        gateway={"authentication": True, "tokens": [{"name": "app", "token": TOKEN}], "admin_token": "admin-tok-999"}
    )
    with pytest.raises(openai.AuthenticationError):
        openai_client(server.url, "admin-tok-999").models.list()


def test_admin_without_token_answers_loopback_clients_only(make_gateway) -> None:
    _, server = make_gateway()
    health = f"{server.url}/admin/health"
    assert httpx.get(health).status_code == 200  # the test client is on 127.0.0.1
    forwarded = httpx.get(health, headers={"x-forwarded-for": "203.0.113.7"})
    assert forwarded.status_code == 401 and forwarded.json()["error"][0]["code"] == 2009
    # A proxy on the same host that names the client only in True-Client-IP / X-Client-IP (issue 11).
    for name in ("true-client-ip", "x-client-ip"):
        assert httpx.get(health, headers={name: "203.0.113.7"}).status_code == 401, name


def test_token_guessing_is_throttled_per_client_address(make_gateway) -> None:
    """Issue 11: ~2,000 wrong tokens a second were answered; now a few a minute per address."""
    _, server = make_gateway(
        gateway={
            "authentication": True,
            "tokens": [{"name": "app", "token": TOKEN}],
            "admin_token": "admin-tok-999",
            "auth_failures_per_minute": 3,
            "trusted_proxy_header": "x-forwarded-for",
        }
    )
    url = f"{server.url}/openai/models"
    guesser = {"x-forwarded-for": "203.0.113.66"}
    for i in range(3):
        wrong = httpx.get(url, headers={**guesser, "cf-aig-authorization": f"Bearer guess-{i:04d}"})
        assert wrong.status_code == 401
    # Blocked now, even with the right token: a lucky guess must not be confirmed.
    blocked = httpx.get(url, headers={**guesser, "cf-aig-authorization": f"Bearer {TOKEN}"})
    assert blocked.status_code == 429 and blocked.json()["error"][0]["code"] == 2003
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    # Guessing the admin token counts against the same address, and is blocked the same way.
    admin = httpx.get(f"{server.url}/admin/health", headers={**guesser, "authorization": "Bearer admin-tok-999"})
    assert admin.status_code == 429
    # Another client is unaffected.
    other = httpx.get(url, headers={"x-forwarded-for": "198.51.100.7", "cf-aig-authorization": f"Bearer {TOKEN}"})
    assert other.status_code != 429 and other.status_code != 401


def test_admin_token_guessing_is_throttled(make_gateway) -> None:
    _, server = make_gateway(gateway={"admin_token": "admin-tok-999", "auth_failures_per_minute": 2})
    health = f"{server.url}/admin/health"
    assert [httpx.get(health, headers={"authorization": f"Bearer no-{i}"}).status_code for i in range(2)] == [401, 401]
    blocked = httpx.get(health, headers={"authorization": "Bearer admin-tok-999"})
    assert blocked.status_code == 429 and "retry-after" in blocked.headers
