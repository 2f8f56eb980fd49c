"""RateLimitMiddleware (seam: pass-through until the rate-limit issue lands)."""

from __future__ import annotations

from ._asgi import ASGIApp, Receive, Scope, Send
from .config import RateLimitConfig


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, config: RateLimitConfig | None = None, *, gateway_id: str = "default") -> None:
        self.app = app
        self.config = config or RateLimitConfig()
        self.gateway_id = gateway_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def aclose(self) -> None:
        return None
