"""Admin API (SPEC §9): ``/admin/*`` outside the request pipeline, guarded by the admin token.

A seam for now: ``GET /admin/health``. Logs, analytics and cache purge land with their issues.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ._asgi import Receive, Scope, Send, send_json
from .context import route_path
from .errors import NotFound, send_error

if TYPE_CHECKING:
    from .gateway import Gateway


def envelope(result: object, result_info: object | None = None) -> bytes:
    body: dict[str, object] = {"success": True, "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return json.dumps(body, separators=(",", ":")).encode()


class AdminApp:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        path = route_path(scope)
        if path == "/admin/health" and scope["method"] == "GET":
            await send_json(send, 200, envelope({"status": "ok", "gateway": self.gateway.id}))
            return
        await send_error(send, NotFound())
