"""CacheMiddleware (seam: pass-through until the cache issue lands)."""

from __future__ import annotations

from .._asgi import ASGIApp, Receive, Scope, Send
from ..config import CacheConfig


class CacheMiddleware:
    def __init__(self, app: ASGIApp, config: CacheConfig | None = None, *, gateway_id: str = "default") -> None:
        self.app = app
        self.config = config or CacheConfig()
        self.gateway_id = gateway_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def purge(self, *, key: str | None = None, provider: str | None = None) -> int:
        return 0

    async def aclose(self) -> None:
        return None
