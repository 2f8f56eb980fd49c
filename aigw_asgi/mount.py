"""``mount(app, "/ai", gateway)``: put the gateway under a prefix of any ASGI app.

For frameworks without a mount (Quart: ``quart_app.asgi_app = mount(quart_app.asgi_app, "/ai",
gateway)``) and for plain ASGI apps. Requests under the prefix go to the gateway with the prefix
moved into ``root_path`` (the Starlette >= 0.35 convention: ``path`` stays whole); everything
else, lifespan included, goes to the host app. When the host's lifespan shuts down, the gateway
is closed too, so a Quart or plain host needs no extra wiring.
"""

from __future__ import annotations

from typing import Any

from .gateway import Gateway
from .types import ASGIApp, Message, Receive, Scope, Send


def mount(app: ASGIApp, prefix: str, gateway: Gateway | ASGIApp) -> ASGIApp:
    prefix = "/" + prefix.strip("/")
    if prefix == "/":
        raise ValueError("mount prefix must not be '/': use the gateway as the app instead")

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            root = scope.get("root_path", "")
            path: str = scope["path"]
            local = path[len(root) :] if root and path.startswith(root) else path
            if local == prefix or local.startswith(prefix + "/"):
                child: dict[str, Any] = dict(scope)
                child["root_path"] = root + prefix
                await gateway(child, receive, send)
                return
        if kind == "lifespan" and isinstance(gateway, Gateway):
            await app(scope, receive, _close_on_shutdown(send, gateway))
            return
        await app(scope, receive, send)

    return dispatch


def _close_on_shutdown(send: Send, gateway: Gateway) -> Send:
    async def lifespan_send(message: Message) -> None:
        if message["type"] == "lifespan.shutdown.complete":
            await gateway.aclose()
        await send(message)

    return lifespan_send
