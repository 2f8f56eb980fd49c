"""KeyPolicyMiddleware: a gateway key's own rules, checked on every request that reaches a provider.

Sits between the request-shaping layers (universal, ``/compat``) and the cache, so it sees each
internal request with its real provider and model — a universal step, a WebSocket message's
step, a ``/compat`` target, a ``dynamic/`` route's target — and so a key that may not use a model
never gets that model's answers from the cache either. Requests without a runtime key (config
tokens, authentication off) pass untouched: the layer costs one attribute read.

Per keyed request: the key's latest state (`KeyResolver.current`: a PATCH or revocation on any
instance applies here within the refresh interval, open WebSockets included), then
`access_error`. The body is read (once, kept on the context) only when the key limits models
and the model is not known yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from .._asgi import ClientDisconnected, deny_websocket, read_body, replay_receive
from ..breaker import StorageDown
from ..context import ErrorType, RequestContext, get_context
from ..errors import GatewayError, KeyRejected, StoreUnavailable, send_error
from ..providers.registry import ProviderRegistry
from ..types import ASGIApp, Receive, Scope, Send
from .policy import SAFE_METHODS, access_error, provider_of, request_model
from .resolver import KeyResolver


class KeyPolicyMiddleware:
    """``KeyPolicyMiddleware(app, resolver=KeyResolver(store), providers=registry)``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: KeyResolver,
        providers: ProviderRegistry | None = None,
        max_request_bytes: int = 26_214_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.providers = providers
        self.max_request_bytes = max_request_bytes
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        ctx = get_context(scope) if kind in ("http", "websocket") else None
        if ctx is None or ctx.key is None:
            await self.app(scope, receive, send)
            return
        try:
            if kind == "http" and ctx.body is None and self._needs_body(ctx):
                receive = replay_receive(await read_body(ctx, receive, self.max_request_bytes), receive)
            error = await self.check(ctx, _query(scope) if kind == "websocket" else None)
        except GatewayError as exc:  # body too large, bad content-length
            error = exc
        except ClientDisconnected:
            ctx.client_gone()
            return
        if error is None:
            await self.app(scope, receive, send)
            return
        ctx.fail(error, ErrorType.UNAUTHORIZED if isinstance(error, KeyRejected) else None)
        if kind == "http":
            await send_error(send, error, ctx.response_headers())
        elif (await receive())["type"] == "websocket.connect":
            await deny_websocket(scope, send, error, ctx.response_headers())

    def _needs_body(self, ctx: RequestContext) -> bool:
        key = ctx.key
        return key is not None and key.allowed_models is not None and not ctx.model and ctx.method not in SAFE_METHODS

    async def check(self, ctx: RequestContext, query: dict[str, str] | None = None) -> GatewayError | None:
        """The refusal for ``ctx`` (its key refreshed in place), or ``None``; for any layer to call.

        The body, when the key limits models, must already be on the context (``ctx.body``).
        """
        if ctx.key is None:
            return None
        try:
            key = await self.resolver.current(ctx.key)
        except StorageDown:
            return StoreUnavailable("Key store unavailable")
        if key is not None:
            ctx.key = key
            ctx.token_name = key.name  # a rename applies to logs and scopes from now on
        provider = ctx.provider or provider_of(ctx.path)
        model = request_model(ctx, self.providers, query) if key is not None and key.allowed_models else ctx.model
        method = ctx.method if query is None else "WEBSOCKET"  # a realtime session generates
        return access_error(key, provider, model, method=method, now=self.clock())


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}
