"""UniversalMiddleware: ``POST /`` — a JSON array of steps tried in order (SPEC §5).

Parsing and planning live in steps.py (pure), running in runner.py (`StepRunner`); this layer
only recognises the routes: ``POST /`` (a universal body), ``POST /dynamic/NAME/{endpoint}``
(a provider-native body through a named route: an SDK with ``base_url=".../dynamic/NAME"``),
and ``GET /`` upgraded to a WebSocket (the WebSocket API, websocket.py, on the same runner).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._asgi import ClientDisconnected, read_body
from .config import Config
from .context import RequestContext, ensure_context
from .errors import ConfigError, GatewayError, send_error
from .providers.registry import ProviderRegistry
from .routing.balance import Route, compile_routes
from .runner import StepRunner
from .steps import bad_request
from .types import ASGIApp, Receive, Scope, Send
from .websocket import WebSocketAPI


class UniversalMiddleware:
    """``POST /`` (and ``/dynamic/NAME/...``) → steps through the inner app; all else passes."""

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        providers: ProviderRegistry | None = None,
        routes: Mapping[str, Route] | None = None,
        websocket: WebSocketAPI | None = None,
    ) -> None:
        """``websocket``: the WebSocket API for ``GET /`` upgrades, built by `Gateway` with its
        telemetry and rate limiter (it must run on a `StepRunner` over this same ``app``);
        standalone, a bare one (messages neither logged nor the upgrade counted)."""
        self.app = app
        self.config = config or Config()
        self.gateway_id = self.config.gateway.id
        self.max_body = self.config.gateway.max_request_bytes
        self.providers = providers or ProviderRegistry.from_config(self.config)
        self.routes = routes if routes is not None else compile_routes(self.config.routes)
        for name, route in self.routes.items():
            for i, target in enumerate(route.targets):
                if target.provider not in self.providers:
                    raise ConfigError(f"routes.{name}.targets[{i}].provider: unknown provider {target.provider!r}")
        if websocket is not None:
            self.runner, self.websocket = websocket.runner, websocket
        else:
            self.runner = StepRunner(app, self.providers, self.routes)
            self.websocket = WebSocketAPI(self.runner, self.config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # websocket GET /: the WebSocket API runs its messages through self.runner. Other
            # websocket paths (realtime pass-through) and lifespan pass through.
            if scope["type"] == "websocket" and ensure_context(scope, self.gateway_id).path == "/":
                await self.websocket(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        ctx = ensure_context(scope, self.gateway_id)
        if ctx.path == "/" and ctx.method == "POST":
            await self._answer(ctx, scope, receive, send, None)
        elif ctx.path.startswith("/dynamic/"):
            await self._answer(ctx, scope, receive, send, ctx.path[9:])
        else:
            await self.app(scope, receive, send)

    async def _answer(
        self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send, dynamic: str | None
    ) -> None:
        try:
            ctx.options  # noqa: B018 - a bad cf-aig-* header on the request is a 400 before any step
            body = await read_body(ctx, receive, self.max_body)
            payload = ctx.json()
            if payload is None and body.strip() not in (b"null", b""):
                raise bad_request("body", "not valid JSON")
            if dynamic is not None:
                payload = _native_step(ctx, scope, dynamic, payload)
            plan = self.runner.plan(payload)
        except GatewayError as exc:
            ctx.fail(exc)
            await send_error(send, exc, ctx.response_headers())
            return
        except ClientDisconnected:  # gone before its body was complete: nobody to answer, not our error
            ctx.client_gone()
            return
        await self.runner.run_steps(ctx, scope, plan, receive, send)


def _native_step(ctx: RequestContext, scope: Scope, path: str, payload: Any) -> dict[str, Any]:
    """``/dynamic/NAME/{endpoint}`` with a provider-native body → one universal step."""
    name, _, endpoint = path.partition("/")
    if not endpoint:
        raise bad_request("path", "expected /dynamic/{route}/{endpoint}")
    raw = scope.get("raw_path")
    if raw:  # keep the client's percent-encoding for the endpoint
        raw_text = raw.decode("latin-1")
        marker = f"/dynamic/{name}/"
        endpoint = raw_text[raw_text.index(marker) + len(marker) :] if marker in raw_text else endpoint
    query_string: bytes = scope.get("query_string", b"")
    if query_string:
        endpoint = f"{endpoint}?{query_string.decode('latin-1')}"
    step: dict[str, Any] = {"provider": f"dynamic/{name}", "endpoint": endpoint, "method": ctx.method}
    if ctx.body:
        step["query"] = payload
    return step
