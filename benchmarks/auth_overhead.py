"""Per-request overhead of `AuthMiddleware` (target: <= 0.05 ms p50), measured in-process.

Why in-process: the layer costs microseconds, far below what wrk over HTTP can resolve on a
shared machine (`benchmarks/run.py auth` gives the end-to-end picture). Each case times one
``await middleware(scope, receive, send)`` around a no-op app, minus the same call to the bare
no-op app, over fresh scopes built like uvicorn's (15 headers).

    python benchmarks/auth_overhead.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from aigw_asgi.auth import AuthMiddleware, hash_token
from aigw_asgi.config import GatewayConfig, TokenConfig
from aigw_asgi.context import ensure_context

TOKEN = "bench-token-0123456789abcdef"


async def noop(scope: Any, receive: Any, send: Any) -> None:
    return None


async def receive() -> dict[str, Any]:  # pragma: no cover - never called on success
    return {"type": "http.request"}


async def send(message: Any) -> None:
    return None


def make_scope(auth_header: tuple[bytes, bytes] | None, with_context: bool) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8787"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
        (b"accept", b"application/json"),
        (b"content-type", b"application/json"),
        (b"user-agent", b"OpenAI/Python 1.99.0"),
        (b"x-stainless-lang", b"python"),
        (b"x-stainless-package-version", b"1.99.0"),
        (b"x-stainless-os", b"Linux"),
        (b"x-stainless-arch", b"x64"),
        (b"x-stainless-runtime", b"CPython"),
        (b"x-stainless-runtime-version", b"3.11.9"),
        (b"authorization", b"Bearer sk-client-provider-key"),
        (b"content-length", b"87"),
    ]
    if auth_header is not None:
        if auth_header[0] == b"authorization":  # the gateway token replaces the provider key
            headers = [h for h in headers if h[0] != b"authorization"]
        headers.append(auth_header)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/openai/chat/completions",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "state": {},
    }
    if with_context:  # in the gateway, telemetry (outermost) has created the context already
        ensure_context(scope)
    return scope


async def timed(app: Callable[..., Any], scopes: list[dict[str, Any]]) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for scope in scopes:
        start = clock()
        await app(scope, receive, send)
        out.append(clock() - start)
    return out


async def case(name: str, app: Callable[..., Any], header: tuple[bytes, bytes] | None, ctx: bool, n: int) -> None:
    base = await timed(noop, [make_scope(header, ctx) for _ in range(n)])
    layer = await timed(app, [make_scope(header, ctx) for _ in range(n)])
    b50, l50 = statistics.median(base), statistics.median(layer)
    l99 = statistics.quantiles(layer, n=100)[98]
    print(f"{name:<52} p50 {(l50 - b50) / 1e6:.4f} ms   (layer p99 {l99 / 1e6:.4f} ms)")


async def main(n: int) -> None:
    tokens = [TokenConfig(name=f"t{i}", sha256=hash_token(f"other-token-{i:04d}")) for i in range(1000)]
    tokens.append(TokenConfig(name="app", token=TOKEN))
    on = AuthMiddleware(noop, GatewayConfig(authentication=True, tokens=tokens))
    off = AuthMiddleware(noop, GatewayConfig())
    cf = (b"cf-aig-authorization", f"Bearer {TOKEN}".encode())
    for _ in range(2):  # warm-up round, then the reported one
        print(f"-- {n} requests, 1001 configured tokens")
        await case("authentication off", off, cf, True, n)
        await case("on, cf-aig-authorization, context exists (gateway)", on, cf, True, n)
        await case("on, cf-aig-authorization, auth creates the context", on, cf, False, n)
        await case("on, token in the provider slot", on, (b"authorization", f"Bearer {TOKEN}".encode()), True, n)
        await case("on, wrong token: the 401 answer", on, (b"cf-aig-authorization", b"Bearer nope-1234"), True, n)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
