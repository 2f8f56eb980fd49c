"""The effective config the dashboard shows: every secret masked, whatever field it hides in."""

from __future__ import annotations

import json

import httpx

from aigw_asgi.auth import hash_token
from aigw_asgi.config import config_from_dict
from aigw_asgi.redact import REDACTED
from aigw_asgi.settings import masked_config, providers_view

SECRETS = {
    "gateway_token": "gw-token-plain-0123456789",
    "hashed_token": "gw-token-hashed-0123456789",
    "admin": "admin-token-0123456789abc",
    "openai": "sk-openai-secret-0123456789",
    "alias_a": "sk-alias-a-0123456789",
    "alias_b": "sk-alias-b-0123456789",
    "custom_header": "hdr-secret-0123456789",
    "cache_pw": "cachepass0123456789",
    "logs_pw": "logspass0123456789",
    "ratelimit_pw": "rlpass0123456789",
    "base_url_pw": "basepass0123456789",
    "base_url_key": "querykey0123456789",
}


def secret_config() -> object:
    s = SECRETS
    return config_from_dict(
        {
            "gateway": {
                "authentication": True,
                "admin_token": s["admin"],
                "tokens": [
                    {"name": "app", "token": s["gateway_token"]},
                    {"name": "ci", "sha256": hash_token(s["hashed_token"])},
                ],
            },
            "cache": {"storage": f"redis://:{s['cache_pw']}@127.0.0.1:1/0"},
            "rate_limit": {"storage": f"redis://user:{s['ratelimit_pw']}@127.0.0.1:1/1"},
            "logs": {"store": f"redis://default:{s['logs_pw']}@127.0.0.1:1/2"},
            "providers": {
                "openai": {"api_key": s["openai"]},
                "anthropic": {"api_keys": [{"alias": "a", "key": s["alias_a"]}, {"alias": "b", "key": s["alias_b"]}]},
                "custom-acme": {
                    "base_url": f"https://bot:{s['base_url_pw']}@llm.example/v1?key={s['base_url_key']}",
                    "headers": {"x-acme-auth": s["custom_header"]},
                },
            },
        }
    )


def test_no_secret_survives_masking() -> None:
    config = secret_config()
    text = json.dumps({"config": masked_config(config), "providers": providers_view(config)})
    leaked = [name for name, secret in SECRETS.items() if secret in text]
    assert not leaked, leaked
    assert hash_token(SECRETS["hashed_token"]) not in text  # a digest is all an offline guesser needs

    masked = masked_config(config)
    gateway = masked["gateway"]
    assert gateway["admin_token"] == REDACTED
    assert [(t["name"], t["token"], t["sha256"]) for t in gateway["tokens"]] == [
        ("app", REDACTED, None),
        ("ci", None, REDACTED),
    ]
    assert masked["providers"]["anthropic"]["api_keys"] == [
        {"alias": "a", "key": REDACTED},
        {"alias": "b", "key": REDACTED},
    ]
    assert masked["providers"]["custom-acme"]["headers"] == {"x-acme-auth": REDACTED}
    # What is not secret stays readable: hosts, paths, names.
    assert masked["cache"]["storage"] == f"redis://{REDACTED}@127.0.0.1:1/0"
    assert masked["providers"]["custom-acme"]["base_url"] == f"https://{REDACTED}@llm.example/v1?key={REDACTED}"
    assert masked["providers"]["openai"]["api_key"] == REDACTED and masked["providers"]["openai"]["base_url"] is None
    assert masked["gateway"]["authentication"] is True and masked["cache"]["ttl"] == 0


def test_providers_view_lists_builtins_and_configured() -> None:
    view = {p["name"]: p for p in providers_view(secret_config())}
    assert view["openai"]["base_url"] == "https://api.openai.com/v1" and view["openai"]["configured"] is True
    assert view["anthropic"]["keys"] == ["a", "b"]
    assert view["cohere"]["configured"] is False and view["cohere"]["keys"] == []
    assert view["custom-acme"]["base_url"].startswith(f"https://{REDACTED}@llm.example/")


def test_admin_config_over_http(make_gateway, fake_upstream) -> None:
    admin, key = "cfg-admin-token-0123456789", "sk-cfg-openai-0123456789"
    _, server = make_gateway(
        gateway={"admin_token": admin, "tokens": [{"name": "web", "token": "cfg-gateway-token-0123"}]},
        providers={"openai": {"api_key": key}},
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/admin/config").status_code == 401
        resp = client.get("/admin/config", headers={"authorization": f"Bearer {admin}"})
    assert resp.status_code == 200, resp.text
    for secret in (admin, key, "cfg-gateway-token-0123"):
        assert secret not in resp.text
    result = resp.json()["result"]
    assert result["config"]["gateway"]["tokens"][0]["name"] == "web"
    openai = next(p for p in result["providers"] if p["name"] == "openai")
    assert openai["base_url"] == f"{fake_upstream.url}/v1" and openai["keys"] == ["default"]
