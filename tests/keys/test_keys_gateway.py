"""Runtime gateway keys through a real gateway under uvicorn: admin API, official SDKs, WebSockets.

The key lifecycle of SPEC §14 — create, use, restrict, rotate, revoke — with every way a key can
be presented (``cf-aig-authorization`` header, the provider credential slot, the WebSocket
subprotocol) and every surface its policy must hold on (pass-through, universal steps, WebSocket
messages, already-open sockets).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.fakes.upstream import RunningFake

CONFIG_TOKEN = "config-token-123456"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def server(make_gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A gateway with authentication on, logs (and so keys) in a SQLite file, a BYOK OpenAI key."""
    monkeypatch.setenv("AIGW_TEST_CONFIG_TOKEN", CONFIG_TOKEN)
    _, running = make_gateway(
        gateway={"authentication": True, "tokens": [{"name": "app", "token": "env:AIGW_TEST_CONFIG_TOKEN"}]},
        logs={"store": f"sqlite:///{tmp_path / 'aigw.db'}"},
        providers={"openai": {"api_key": "sk-stored-provider-key"}},
    )
    return running


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def admin(server: Any, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}/admin{path}", json=body, timeout=10)


def create_key(server: Any, **fields: Any) -> dict[str, Any]:
    resp = admin(server, "POST", "/keys", {"name": "team-a", **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def sdk(server: Any, key: str) -> openai.OpenAI:
    client = openai.OpenAI(
        base_url=f"{server.url}/openai",
        api_key="sk-client-key",
        default_headers={"cf-aig-authorization": f"Bearer {key}"},
        max_retries=0,
    )
    _clients.append(client)
    return client


def chat(server: Any, key: str, model: str = "gpt-4o-mini") -> httpx.Response:
    return httpx.post(
        f"{server.url}/openai/chat/completions",
        headers={"cf-aig-authorization": f"Bearer {key}"},
        json={"model": model, "messages": MESSAGES},
        timeout=10,
    )


def error_code(resp: httpx.Response) -> int:
    return int(resp.json()["error"][0]["code"])


def test_key_lifecycle_create_use_restrict_rotate_revoke(server: Any, fake_upstream: RunningFake) -> None:
    created = create_key(server, metadata={"team": "a"})
    secret = created["key"]
    assert created["prefix"] == secret[:12] and created["status"] == "active"

    # Used exactly like a token, here by the official SDK.
    answer = sdk(server, secret).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.choices[0].message.content
    # The key is the gateway's, never forwarded upstream; the client's own provider key is.
    upstream = fake_upstream.app.last
    assert secret not in json.dumps(upstream.headers) and upstream.headers["authorization"] == "Bearer sk-client-key"

    # Listed and read back with its prefix only.
    listing = admin(server, "GET", "/keys").json()
    assert [k["name"] for k in listing["result"]] == ["team-a"] and secret not in json.dumps(listing)
    assert admin(server, "GET", f"/keys/{created['id']}").json()["result"]["prefix"] == created["prefix"]

    # Its name is the log row's token name; the key itself is nowhere in the row.
    rows = admin(server, "GET", "/logs?token_name=team-a").json()["result"]
    assert len(rows) == 1 and rows[0]["model"] == "gpt-4o-mini"
    for part in ("", "/request", "/response"):
        assert secret not in admin(server, "GET", f"/logs/{rows[0]['id']}{part}").text

    # Restricted to one model: another model is a 403 2032, the allowed one still works.
    patched = admin(server, "PATCH", f"/keys/{created['id']}", {"allowed_models": ["gpt-4o"]})
    assert patched.status_code == 200 and patched.json()["result"]["allowed_models"] == ["gpt-4o"]
    refused = chat(server, secret)
    assert refused.status_code == 403 and error_code(refused) == 2032
    assert "gpt-4o-mini" in refused.json()["error"][0]["message"]
    with pytest.raises(openai.PermissionDeniedError):
        sdk(server, secret).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert chat(server, secret, "gpt-4o").status_code == 200

    # Rotated: the old secret is no key any more (401), the new one works, same id and policy.
    rotated = admin(server, "POST", f"/keys/{created['id']}/rotate").json()["result"]
    assert rotated["id"] == created["id"] and rotated["key"] != secret
    assert chat(server, secret, "gpt-4o").status_code == 401
    assert chat(server, rotated["key"], "gpt-4o").status_code == 200

    # Revoked: 401 2033, and the key cannot change any more.
    revoked = admin(server, "DELETE", f"/keys/{created['id']}").json()["result"]
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    gone = chat(server, rotated["key"], "gpt-4o")
    assert gone.status_code == 401 and error_code(gone) == 2033
    assert gone.headers["www-authenticate"].startswith("Bearer")
    assert admin(server, "PATCH", f"/keys/{created['id']}", {"allowed_models": None}).status_code == 400
    assert admin(server, "DELETE", f"/keys/{created['id']}").status_code == 200  # idempotent
    assert admin(server, "GET", "/keys?status=revoked").json()["result"][0]["id"] == created["id"]

    # The config's tokens are untouched by all of this; an unknown key is the usual 2009.
    assert chat(server, CONFIG_TOKEN).status_code == 200
    unknown = chat(server, "aigw_" + "x" * 43)
    assert unknown.status_code == 401 and error_code(unknown) == 2009


def test_expired_key_is_refused(server: Any) -> None:
    created = create_key(server, expires_at=time.time() - 1)
    assert created["status"] == "expired"
    resp = chat(server, created["key"])
    assert resp.status_code == 401 and error_code(resp) == 2033
    assert resp.json()["error"][0]["message"] == "Gateway key expired"


def test_key_in_the_provider_slot_with_a_stored_provider_key(server: Any, fake_upstream: RunningFake) -> None:
    """Cloudflare's BYOK shape: the gateway key in Authorization, the stored provider key injected."""
    secret = create_key(server)["key"]
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key=secret, max_retries=0)
    _clients.append(client)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert fake_upstream.app.last.headers["authorization"] == "Bearer sk-stored-provider-key"


def test_allowed_providers(server: Any) -> None:
    secret = create_key(server, allowed_providers=["anthropic"])["key"]
    resp = chat(server, secret)
    assert resp.status_code == 403 and error_code(resp) == 2032
    assert "provider 'openai'" in resp.json()["error"][0]["message"]


def test_listing_models_needs_no_model_but_generating_does(server: Any) -> None:
    secret = create_key(server, allowed_models=["gpt-4o"])["key"]
    headers = {"cf-aig-authorization": f"Bearer {secret}"}
    assert httpx.get(f"{server.url}/openai/models", headers=headers, timeout=10).status_code == 200
    no_model = httpx.post(f"{server.url}/openai/chat/completions", headers=headers, json={"messages": []}, timeout=10)
    assert no_model.status_code == 403 and error_code(no_model) == 2032
    # An upload names its model in a form field: read there, not a way around the list.
    upload = {"file": ("a.wav", b"RIFF....", "audio/wav")}
    whisper = httpx.post(
        f"{server.url}/openai/audio/transcriptions", headers=headers, files=upload, data={"model": "whisper-1"}
    )
    assert whisper.status_code == 403 and "whisper-1" in whisper.json()["error"][0]["message"]


def test_universal_steps_are_checked_one_by_one(server: Any, fake_upstream: RunningFake) -> None:
    """A step the key may not use fails like any step (403), and the next one answers."""
    secret = create_key(server, allowed_models=["gpt-4o"])["key"]
    steps = [
        {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "gpt-4o-mini", "messages": MESSAGES}},
        {"provider": "openai", "endpoint": "chat/completions", "query": {"model": "gpt-4o", "messages": MESSAGES}},
    ]
    resp = httpx.post(server.url + "/", headers={"cf-aig-authorization": f"Bearer {secret}"}, json=steps, timeout=10)
    assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "1"
    assert [r.model for r in fake_upstream.app.requests] == ["gpt-4o"]  # the refused step never left
    only_refused = httpx.post(
        server.url + "/", headers={"cf-aig-authorization": f"Bearer {secret}"}, json=steps[:1], timeout=10
    )
    assert only_refused.status_code == 403 and error_code(only_refused) == 2032


def test_websocket_subprotocol_messages_and_a_revocation_on_an_open_socket(server: Any) -> None:
    created = create_key(server, allowed_models=["gpt-4o"])
    secret = created["key"]

    def create(event_id: str, model: str) -> str:
        step = {
            "provider": "openai",
            "endpoint": "chat/completions",
            "eventId": event_id,
            "query": {"model": model, "messages": MESSAGES},
        }
        return json.dumps({"type": "universal.create", "request": step})

    with connect(f"{server.ws_url}/", subprotocols=[f"cf-aig-authorization.{secret}"], open_timeout=5) as ws:
        ws.send(create("ok", "gpt-4o"))
        assert json.loads(ws.recv(timeout=10))["type"] == "universal.created"
        ws.send(create("no", "gpt-4o-mini"))
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "universal.error" and frame["error"]["code"] == 2032
        assert admin(server, "DELETE", f"/keys/{created['id']}").status_code == 200
        ws.send(create("late", "gpt-4o"))  # this instance wrote the revocation: it holds at once
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "universal.error" and frame["error"]["code"] == 2033
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/", subprotocols=[f"cf-aig-authorization.{secret}"], open_timeout=5)
    assert refused.value.response.status_code == 401


def test_per_key_rate_limit_reuses_the_rate_limiter(server: Any, fake_upstream: RunningFake) -> None:
    left = 3600 - time.time() % 3600  # fixed windows are clock-aligned: do not straddle an hour
    if left < 5:
        time.sleep(left + 0.1)
    limited = create_key(server, rate_limit={"limit": 2, "period": 3600})["key"]
    other = create_key(server, name="team-b")["key"]
    assert [chat(server, limited).status_code for _ in range(3)] == [200, 200, 429]
    refused = chat(server, limited)
    assert error_code(refused) == 2003 and "key's limit" in refused.json()["error"][0]["message"]
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["ratelimit-limit"] == "2"
    assert chat(server, other).status_code == 200  # another key, another counter
    assert len(fake_upstream.app.requests) == 3


def test_admin_refuses_bad_requests(server: Any) -> None:
    assert admin(server, "POST", "/keys", {"name": "app"}).status_code == 400  # a config token's name
    assert admin(server, "POST", "/keys", {"nme": "x"}).status_code == 400
    create_key(server)
    duplicate = admin(server, "POST", "/keys", {"name": "team-a"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["error"][0]["message"]
    assert admin(server, "GET", "/keys/unknown-id").status_code == 404
    assert admin(server, "PATCH", "/keys/unknown-id", {"metadata": {}}).status_code == 404
    assert admin(server, "POST", "/keys/unknown-id/rotate").status_code == 404
    assert admin(server, "GET", "/keys?status=gone").status_code == 400
    assert admin(server, "GET", "/keys?colour=red").status_code == 400
    bad = httpx.post(f"{server.url}/admin/keys", content=b"{not json", timeout=10)
    assert bad.status_code == 400
