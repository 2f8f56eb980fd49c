"""Where a realtime session connects and what it presents: pure, from provider data."""

from __future__ import annotations

from typing import Any

import pytest

from aigw_asgi.config import ConfigError, config_from_dict
from aigw_asgi.context import RequestContext
from aigw_asgi.errors import InvalidRequest, UnknownByokAlias
from aigw_asgi.providers.registry import ProviderRegistry, realtime_endpoint
from aigw_asgi.realtime.handshake import accepted_subprotocol, plan_upstream

GEMINI_LIVE = "ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def registry(**providers: Any) -> ProviderRegistry:
    return ProviderRegistry.from_config(config_from_dict({"providers": providers}))


def endpoint(name: str, path: str, **providers: Any) -> str:
    provider = registry(**providers).get(name)
    assert provider is not None
    return realtime_endpoint(provider, path)[0]


@pytest.mark.parametrize("path", ["", "realtime", "v1/realtime"])
def test_openai_spellings_reach_one_endpoint(path: str) -> None:
    assert endpoint("openai", path) == "wss://api.openai.com/v1/realtime"


def test_gemini_live_sits_at_the_hosts_root() -> None:
    assert endpoint("google-ai-studio", "") == f"wss://generativelanguage.googleapis.com/{GEMINI_LIVE}"
    constrained = "ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
    assert endpoint("google-ai-studio", constrained) == f"wss://generativelanguage.googleapis.com/{constrained}"


@pytest.mark.parametrize(
    ("path", "url", "deployment"),
    [
        ("my-res", "/openai/realtime", None),  # ?deployment=… from the client
        ("my-res/gpt-4o-rt/realtime", "/openai/realtime", "gpt-4o-rt"),  # Cloudflare's layout
        ("my-res/openai/realtime", "/openai/realtime", None),  # AzureOpenAI(azure_endpoint=…/my-res)
        ("my-res/openai/deployments/gpt-4o-rt/realtime", "/openai/realtime", "gpt-4o-rt"),
        ("my-res/openai/v1/realtime", "/openai/v1/realtime", None),  # the GA v1 API (?model=…)
    ],
)
def test_azure_layouts(path: str, url: str, deployment: str | None) -> None:
    provider = registry().get("azure-openai")
    assert provider is not None
    got, params = realtime_endpoint(provider, path)
    assert got == "wss://my-res.openai.azure.com" + url
    assert params.get("resource") == "my-res" and params.get("deployment") == deployment


def test_azure_paths_that_name_no_known_layout() -> None:
    provider = registry().get("azure-openai")
    assert provider is not None
    for bad in ("", "my-res/realtime", "bad.host/dep/realtime"):
        with pytest.raises(ValueError):
            realtime_endpoint(provider, bad)


def test_a_base_url_override_moves_the_realtime_socket() -> None:
    assert endpoint("openai", "", openai={"base_url": "http://127.0.0.1:9/v1"}) == "ws://127.0.0.1:9/v1/realtime"
    gemini = {"base_url": "https://proxy.example/v1beta"}
    assert endpoint("google-ai-studio", "", **{"google-ai-studio": gemini}) == f"wss://proxy.example/{GEMINI_LIVE}"


def test_a_configured_realtime_url_is_the_one_endpoint() -> None:
    custom = {"custom-voice": {"base_url": "http://127.0.0.1:9/v1", "realtime_url": "ws://127.0.0.1:9/v1/live/"}}
    for path in ("", "v1/realtime", "anything"):
        assert endpoint("custom-voice", path, **custom) == "ws://127.0.0.1:9/v1/live"


def test_providers_without_realtime() -> None:
    for name, providers in (("anthropic", {}), ("custom-x", {"custom-x": {"base_url": "http://127.0.0.1:9"}})):
        provider = registry(**providers).get(name)
        assert provider is not None and provider.realtime is None
        with pytest.raises(ValueError, match="no realtime"):
            realtime_endpoint(provider, "")


def test_realtime_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="providers.custom-x.realtime_url"):
        config_from_dict({"providers": {"custom-x": {"base_url": "http://a", "realtime_url": "ftp://a"}}})
    with pytest.raises(ConfigError, match="realtime.max_frame_bytes"):
        config_from_dict({"realtime": {"max_frame_bytes": 0}})
    with pytest.raises(ConfigError, match="realtime.idle_timeout_s"):
        config_from_dict({"realtime": {"idle_timeout_s": -1}})
    with pytest.raises(ConfigError, match="realtime.nope: unknown key"):
        config_from_dict({"realtime": {"nope": 1}})


# -- plan_upstream ---------------------------------------------------------------------------------


def plan(
    name: str,
    path: str = "",
    query: str = "",
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
    gateway_token: str | None = None,
    alias: str | None = None,
    **providers: Any,
) -> Any:
    reg = registry(**providers)
    provider = reg.get(name)
    assert provider is not None
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    ctx = RequestContext(gateway_id="default", method="GET", path=f"/{name}/{path}", headers=raw)
    ctx.gateway_token = gateway_token
    scope = {"type": "websocket", "subprotocols": subprotocols or []}
    return plan_upstream(provider, path, query, ctx, scope, reg.stored_key, alias)


def test_handshake_headers_are_not_forwarded_but_the_clients_own_are() -> None:
    headers = {
        "Host": "gw",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "abc",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "realtime, cf-aig-authorization.gw-token-123",
        "Origin": "https://app.example",
        "cf-aig-authorization": "Bearer gw-token-123",
        "cf-aig-metadata": "{}",
        "OpenAI-Beta": "realtime=v1",
        "Authorization": "Bearer sk-client",
        "User-Agent": "ua/1",
    }
    p = plan("openai", "v1/realtime", "model=gpt-realtime", headers, gateway_token="gw-token-123")
    assert dict(p.headers) == {"openai-beta": "realtime=v1", "authorization": "Bearer sk-client", "user-agent": "ua/1"}
    assert p.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime" and p.model == "gpt-realtime"
    assert p.key_source == "header" and p.stored_key is None


def test_key_subprotocol_becomes_the_header_and_the_token_entry_is_never_offered() -> None:
    offers = [
        "realtime",
        "cf-aig-authorization.gw-token-123",
        "openai-insecure-api-key.sk-browser",
        "openai-beta.realtime-v1",
    ]
    p = plan("openai", subprotocols=offers, openai={"api_key": "sk-stored"})
    assert p.protocols == ["realtime", "openai-beta.realtime-v1"]
    assert ("authorization", "Bearer sk-browser") in p.headers and p.key_source == "subprotocol"
    assert "sk-stored" not in str(p.headers)  # the client brought a key: no stored one
    assert accepted_subprotocol(p, "realtime") == "realtime"
    assert accepted_subprotocol(p, None) == "realtime"  # never an entry that carries a credential
    assert accepted_subprotocol(plan("openai", subprotocols=["openai-insecure-api-key.k"]), None) is None


def test_stored_key_only_when_the_client_sent_none() -> None:
    stored = {"openai": {"api_keys": [{"alias": "a", "key": "sk-a"}, {"alias": "b", "key": "sk-b"}]}}
    p = plan("openai", alias="b", **stored)
    assert ("authorization", "Bearer sk-b") in p.headers and p.key_source == "stored" and p.stored_key == "sk-b"
    assert "sk-b" not in repr(p)
    # The gateway token in the provider slot is the gateway's: dropped, and the stored key goes in.
    p = plan("openai", headers={"Authorization": "Bearer gw-token-123"}, gateway_token="gw-token-123", **stored)
    assert [v for k, v in p.headers if k == "authorization"] in (["Bearer sk-a"], ["Bearer sk-b"])
    with pytest.raises(UnknownByokAlias):
        plan("openai", alias="zzz", **stored)


def test_gemini_query_key_counts_as_the_clients_credential() -> None:
    gemini = {"google-ai-studio": {"api_key": "AIza-stored"}}
    p = plan("google-ai-studio", GEMINI_LIVE, "key=AIza-client", **gemini)
    assert p.key_source == "query" and "AIza-stored" not in str(p.headers)
    assert p.url.endswith("BidiGenerateContent?key=AIza-client")
    p = plan("google-ai-studio", **gemini)
    assert ("x-goog-api-key", "AIza-stored") in p.headers


def test_azure_deployment_goes_to_the_query_unless_a_model_is_named() -> None:
    azure = {"azure-openai": {"api_key": "az-stored"}}
    p = plan("azure-openai", "res/dep-1/realtime", "api-version=2024-10-01-preview", **azure)
    assert p.url == "wss://res.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=dep-1"
    assert p.model == "dep-1" and ("api-key", "az-stored") in p.headers
    p = plan("azure-openai", "res/openai/v1/realtime", "model=gpt-rt", **azure)
    assert p.url == "wss://res.openai.azure.com/openai/v1/realtime?model=gpt-rt" and p.model == "gpt-rt"
    p = plan("azure-openai", "res/openai/realtime", "api-version=x&deployment=dep-2&api-key=az-client", **azure)
    assert p.model == "dep-2" and p.url.endswith("/openai/realtime?api-version=x&deployment=dep-2&api-key=az-client")
    assert p.key_source == "query" and "az-stored" not in str(p.headers)


def test_bad_paths_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequest, match="Invalid path"):
        plan("azure-openai", "res/realtime")
