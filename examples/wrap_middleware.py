"""Each middleware wraps any ASGI app on its own — here, your own LLM-backed endpoint.

    uvicorn examples.wrap_middleware:app --port 8000
    curl -H 'cf-aig-authorization: Bearer example-token-123' -H 'cf-aig-cache-ttl: 60' \
         -d '{"prompt":"hi"}' http://127.0.0.1:8000/my-model/generate

`AuthMiddleware` demands a gateway token, `CacheMiddleware` answers repeated identical requests
from memory, `RateLimitMiddleware` allows 5 requests per minute; the inner app never sees a
request that was refused or served from the cache. They share one request context
(``scope["state"]["aigw"]``), exactly as inside the `Gateway`.
"""

from __future__ import annotations

import json
from typing import Any

from aigw_asgi import AuthMiddleware, CacheMiddleware, RateLimitMiddleware, get_context
from aigw_asgi.config import CacheConfig, GatewayConfig, RateLimitConfig, TokenConfig


async def my_model(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for your own inference endpoint."""
    if scope["type"] != "http":
        return
    ctx = get_context(scope)
    body = ctx.body if ctx is not None and ctx.body is not None else (await receive()).get("body", b"")
    answer = json.dumps({"echo": json.loads(body or b"{}"), "served_by": "my_model"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


app = AuthMiddleware(
    CacheMiddleware(RateLimitMiddleware(my_model, RateLimitConfig(limit=5, period=60)), CacheConfig()),
    GatewayConfig(authentication=True, tokens=[TokenConfig(name="example", token="example-token-123")]),
)
