"""``[gateway] providers`` / ``only_configured_providers``: a gateway calls only the providers it serves.

Issue 11 item 11 ("fewer doors"): a deployment serving two providers must not be made to call the
other fourteen, whichever door the request uses: pass-through, a universal step, a WebSocket
message. Refused → 400 code 2008, and nothing reaches any upstream.
"""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.sync.client import connect

from aigw_asgi.cli import main as aigw
from aigw_asgi.config import ConfigError, config_from_dict
from aigw_asgi.providers.registry import ProviderRegistry
from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]


def registry(**gateway: object) -> ProviderRegistry:
    data = {"gateway": gateway, "providers": {"custom-local": {"base_url": "http://127.0.0.1:9/v1"}}}
    return ProviderRegistry.from_config(config_from_dict(data))


def test_allow_list_keeps_only_the_named_providers() -> None:
    reg = registry(providers=["openai", "custom-local"])
    assert reg.names() == ["custom-local", "openai"]
    assert "groq" not in reg and reg.get("groq") is None
    assert reg.refusal("groq") == "Invalid provider: groq is not enabled on this gateway"
    assert reg.refusal("nope") == "Invalid provider: nope"


def test_only_configured_providers() -> None:
    assert registry(only_configured_providers=True).names() == ["custom-local"]
    both = registry(providers=["openai", "custom-local"], only_configured_providers=True)
    assert both.names() == ["custom-local"]
    with pytest.raises(ConfigError, match="only_configured_providers: no"):
        ProviderRegistry.from_config(config_from_dict({"gateway": {"only_configured_providers": True}}))


def test_default_serves_every_provider() -> None:
    assert "groq" in registry() and "custom-local" in registry()


@pytest.mark.parametrize("name", ["opena", "custom-unconfigured"])
def test_unknown_names_in_the_allow_list_fail_at_start(name: str) -> None:
    with pytest.raises(ConfigError, match=r"gateway.providers\[1\]: unknown provider"):
        registry(providers=["openai", name])


def test_check_config_names_the_bad_entry(tmp_path, capsys) -> None:
    path = tmp_path / "aigw.toml"
    path.write_text('[gateway]\nproviders = ["openai", "opena"]\n')
    assert aigw(["check-config", str(path)]) == 2
    assert "gateway.providers[1]: unknown provider 'opena'" in capsys.readouterr().err


def test_every_door_refuses_a_provider_that_is_not_served(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway(gateway={"providers": ["anthropic"]})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        passthrough = client.post("/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
        step = {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "m", "messages": MESSAGES}}
        universal = client.post("/", json=[step])
        allowed = client.post(
            "/anthropic/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": MESSAGES},
            headers={"x-api-key": "sk-ant"},
        )
    for resp in (passthrough, universal):
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"][0]["code"] == 2008
    assert "openai is not enabled on this gateway" in passthrough.json()["error"][0]["message"]
    with connect(f"{server.ws_url}/", open_timeout=5, close_timeout=2) as ws:
        ws.send(json.dumps({"type": "universal.create", "request": {**step, "eventId": "w1"}}))
        frame = json.loads(ws.recv(timeout=10))
    assert frame["type"] == "universal.error" and frame["error"]["code"] == 2008
    assert allowed.status_code == 200
    assert [r.path for r in fake_upstream.app.requests] == ["/v1/messages"]  # only the allowed call left
