"""UniversalMiddleware: ``POST /`` (and later ``GET /`` WebSocket) — seam until its issue lands."""

from __future__ import annotations

from ._asgi import ASGIApp, Receive, Scope, Send
from .config import Config


class UniversalMiddleware:
    def __init__(self, app: ASGIApp, config: Config | None = None) -> None:
        self.app = app
        self.config = config or Config()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
