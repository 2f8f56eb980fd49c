"""AuthMiddleware alone around a tiny WebSocket app, under real uvicorn, with the `websockets` client.

These run the middleware standalone, as users wrap their own ASGI apps; the gateway's own WebSocket
API is authenticated by the same middleware (tests/websocket/).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aigw_asgi.auth import AuthMiddleware, hash_token
from aigw_asgi.config import GatewayConfig, TokenConfig
from aigw_asgi.context import get_context

TOKEN = "ws-token-abcdef12"
HASHED = "ws-hashed-token-99"


def config(**overrides: Any) -> GatewayConfig:
    values: dict[str, Any] = {
        "authentication": True,
        "tokens": [TokenConfig(name="browser", token=TOKEN), TokenConfig(name="ci", sha256=hash_token(HASHED))],
    }
    values.update(overrides)
    return GatewayConfig(**values)


class EchoApp:
    """Accepts (with ``choose`` as its own subprotocol choice), reports what it saw, echoes text frames."""

    def __init__(self, choose: str | None = None) -> None:
        self.choose = choose
        self.connections = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            ctx = get_context(scope)
            body = json.dumps({"token_name": ctx.token_name if ctx else None}).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        assert scope["type"] == "websocket"
        self.connections += 1
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": self.choose})
        ctx = get_context(scope)
        hello = {"token_name": ctx.token_name if ctx else None, "subprotocols": scope.get("subprotocols", [])}
        await send({"type": "websocket.send", "text": json.dumps(hello)})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})


def open_ws(url: str, **kwargs: Any):
    return connect(url, open_timeout=5, close_timeout=2, **kwargs)


def test_header_token_authenticates(serve) -> None:
    server = serve(AuthMiddleware(EchoApp(), config()))
    with open_ws(f"{server.ws_url}/", additional_headers={"cf-aig-authorization": f"Bearer {TOKEN}"}) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["token_name"] == "browser"
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
        assert ws.subprotocol is None


def test_hashed_token_by_header(serve) -> None:
    server = serve(AuthMiddleware(EchoApp(), config()))
    with open_ws(f"{server.ws_url}/", additional_headers={"cf-aig-authorization": f"Bearer {HASHED}"}) as ws:
        assert json.loads(ws.recv(timeout=5))["token_name"] == "ci"


def test_subprotocol_token_alone_is_echoed(serve) -> None:
    """A browser that offers only the token entry must get it back, or it fails the handshake."""
    server = serve(AuthMiddleware(EchoApp(), config()))
    entry = f"cf-aig-authorization.{TOKEN}"
    with open_ws(f"{server.ws_url}/", subprotocols=[entry]) as ws:
        assert ws.subprotocol == entry
        hello = json.loads(ws.recv(timeout=5))
        assert hello == {"token_name": "browser", "subprotocols": []}  # the inner app never sees the token


def test_subprotocol_token_with_another_offer_echoes_the_other(serve) -> None:
    server = serve(AuthMiddleware(EchoApp(), config()))
    entry = f"cf-aig-authorization.{HASHED}"
    with open_ws(f"{server.ws_url}/", subprotocols=[entry, "json.v1"]) as ws:
        assert ws.subprotocol == "json.v1"
        assert json.loads(ws.recv(timeout=5)) == {"token_name": "ci", "subprotocols": ["json.v1"]}


def test_inner_apps_choice_among_other_offers_wins(serve) -> None:
    server = serve(AuthMiddleware(EchoApp(choose="b.v2"), config()))
    with open_ws(f"{server.ws_url}/", subprotocols=["a.v1", f"cf-aig-authorization.{TOKEN}", "b.v2"]) as ws:
        assert ws.subprotocol == "b.v2"


def test_inner_app_echoing_the_token_entry_is_corrected(serve) -> None:
    # An app that blindly echoes the first offer must not send the token back when it need not.
    entry = f"cf-aig-authorization.{TOKEN}"
    server = serve(AuthMiddleware(EchoApp(choose=entry), config()))
    with open_ws(f"{server.ws_url}/", subprotocols=[entry, "json.v1"]) as ws:
        assert ws.subprotocol == "json.v1"


def test_without_token_the_upgrade_is_refused_with_a_401_envelope(serve) -> None:
    app = EchoApp()
    server = serve(AuthMiddleware(app, config()))
    with pytest.raises(InvalidStatus) as info:
        with open_ws(f"{server.ws_url}/"):
            pass  # pragma: no cover - the handshake fails
    response = info.value.response
    assert response.status_code == 401
    assert json.loads(response.body) == {
        "success": False,
        "result": [],
        "messages": [],
        "error": [{"code": 2009, "message": "Unauthorized"}],
    }
    assert response.headers["cf-aig-log-id"]
    assert app.connections == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"additional_headers": {"cf-aig-authorization": "Bearer wrong-token-123"}},
        {"additional_headers": {"cf-aig-authorization": TOKEN}},  # no Bearer scheme
        {"subprotocols": ["cf-aig-authorization.wrong-token-123"]},
        {"subprotocols": ["cf-aig-authorization."]},
        {"subprotocols": [f"cf-aig-authorization-{TOKEN}"]},  # not the entry's shape
    ],
)
def test_wrong_tokens_are_refused(serve, kwargs: dict[str, Any]) -> None:
    app = EchoApp()
    server = serve(AuthMiddleware(app, config()))
    with pytest.raises(InvalidStatus) as info:
        with open_ws(f"{server.ws_url}/", **kwargs):
            pass  # pragma: no cover
    assert info.value.response.status_code == 401
    assert TOKEN.encode() not in info.value.response.body
    assert app.connections == 0


def test_servers_without_the_denial_extension_get_close_1008(serve) -> None:
    """Without ``websocket.http.response`` the middleware closes before accept; uvicorn answers 403."""
    received: list[dict] = []

    async def hide_extension(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {}}

        async def recording_send(message: dict) -> None:
            received.append(message)
            await send(message)

        await AuthMiddleware(EchoApp(), config())(scope, receive, recording_send)

    server = serve(hide_extension)
    with pytest.raises(InvalidStatus) as info:
        with open_ws(f"{server.ws_url}/"):
            pass  # pragma: no cover
    assert info.value.response.status_code == 403
    assert received == [{"type": "websocket.close", "code": 1008}]


def test_authentication_off_still_echoes_a_subprotocol(serve) -> None:
    server = serve(AuthMiddleware(EchoApp(), config(authentication=False)))
    entry = "cf-aig-authorization.anything-at-all"
    with open_ws(f"{server.ws_url}/", subprotocols=[entry]) as ws:
        assert ws.subprotocol == entry
        assert json.loads(ws.recv(timeout=5)) == {"token_name": None, "subprotocols": []}
    with open_ws(f"{server.ws_url}/") as ws:  # and no token is needed
        assert json.loads(ws.recv(timeout=5))["token_name"] is None


def test_http_through_the_same_middleware(serve) -> None:
    server = serve(AuthMiddleware(EchoApp(), config()))
    assert httpx.get(server.url, headers={"cf-aig-authorization": f"Bearer {TOKEN}"}).json() == {
        "token_name": "browser"
    }
    assert httpx.get(server.url, headers={"authorization": f"Bearer {HASHED}"}).json() == {"token_name": "ci"}
    denied = httpx.get(server.url)
    assert denied.status_code == 401 and denied.json()["error"][0]["code"] == 2009


def test_lifespan_passes_through(serve) -> None:
    events: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    server = serve(AuthMiddleware(app, config()), lifespan="on")
    assert events == ["lifespan.startup"]
    server.stop()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
