"""AuthMiddleware (seam: pass-through until the auth issue lands)."""

from __future__ import annotations

from ._asgi import ASGIApp, Receive, Scope, Send
from .config import GatewayConfig


class AuthMiddleware:
    def __init__(self, app: ASGIApp, config: GatewayConfig | None = None) -> None:
        self.app = app
        self.config = config or GatewayConfig()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
