"""CompatMiddleware: the unified API under ``/compat`` (SPEC §12).

One client shape, any provider. A request to ``/compat/chat/completions``, ``/compat/responses``,
``/compat/v1/messages`` (and ``count_tokens``, ``embeddings``, ``models``) names its target in
``model`` (``"{provider}/{model}"`` or ``"dynamic/{route}"``). The layer plans one internal request
per target (plan.py: the client's body with the model rewritten when the target speaks the same
format, else translated through the IR) and runs them with the universal endpoint's `StepRunner`
through the inner stack — cache, rate limit, router — so retries, fallback, BYOK keys, usage,
caching and log rows work exactly as for any universal step. The answer that comes back goes
through a `Relay`, which turns it into the surface's shape (streams re-framed event by event).

Everything the client gets is in its surface's shape, gateway errors included (a bad ``model`` is
a 400 with code 2019 in OpenAI's or Anthropic's error envelope), with ``cf-aig-provider`` and
``cf-aig-model`` naming the target that answered.

Per internal request (each a child context, one log row per attempt): the body is the provider's
own; the row's metadata gets ``aigw_surface`` (the client's API); ``cache_vary`` puts the client's canonical body into
the cache key, so a field a translation drops can never make two different requests share an
answer; the client's provider key (OpenAI SDK ``Authorization``, Anthropic SDK ``x-api-key``) is
moved into the target's own credential header, and a gateway token sent there is not forwarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import _json
from .._asgi import ClientDisconnected, read_body, send_json
from ..config import Config
from ..context import RequestContext, ensure_context
from ..errors import GatewayError, NotFound
from ..providers.registry import ProviderRegistry
from ..routing.balance import Route, compile_routes
from ..runner import StepRunner
from ..steps import PlannedStep
from ..telemetry.records import LOG_METADATA
from ..types import ASGIApp, Headers, Receive, Scope, Send
from . import catalog
from ._fields import bad
from .plan import CompatStep, Planner, client_credential
from .relay import Relay
from .surfaces import CHAT, MESSAGES, RESPONSES, Surface

_CREDENTIALS = frozenset({b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key"})
_EMBEDDINGS = replace(CHAT, name="embeddings")
_MODELS = replace(CHAT, name="models")
_COUNT = replace(MESSAGES, name="v1/messages/count_tokens")
ENDPOINTS: dict[tuple[str, str], tuple[Surface, str]] = {
    ("POST", "chat/completions"): (CHAT, "generate"),
    ("POST", "v1/chat/completions"): (CHAT, "generate"),
    ("POST", "responses"): (RESPONSES, "generate"),
    ("POST", "v1/responses"): (RESPONSES, "generate"),
    ("POST", "v1/messages"): (MESSAGES, "generate"),
    ("POST", "v1/messages/count_tokens"): (_COUNT, "count_tokens"),
    ("POST", "embeddings"): (_EMBEDDINGS, "embeddings"),
    ("POST", "v1/embeddings"): (_EMBEDDINGS, "embeddings"),
    ("GET", "models"): (_MODELS, "models"),
    ("GET", "v1/models"): (_MODELS, "models"),
}


class CompatRunner(StepRunner):
    """The universal `StepRunner`, with what a ``/compat`` step adds to its child context."""

    def _child(
        self, parent: RequestContext, scope: Scope, step: PlannedStep, index: int
    ) -> tuple[RequestContext, Scope]:
        child, child_scope = super()._child(parent, scope, step, index)
        if isinstance(step, CompatStep):
            child.extra[LOG_METADATA] = {"aigw_surface": step.surface}
            child.cache_vary = step.vary
            headers: Headers = [h for h in child.headers if h[0] not in _CREDENTIALS]
            if step.credential is not None:
                headers.append(step.credential)
            child.headers = child_scope["headers"] = headers
        return child, child_scope


class CompatMiddleware:
    """``/compat/...`` → translated steps through ``app`` (the inner stack); everything else passes."""

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        providers: ProviderRegistry | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self.app = app
        self.config = config or Config()
        self.gateway_id = self.config.gateway.id
        self.max_body = self.config.gateway.max_request_bytes
        self.providers = providers or ProviderRegistry.from_config(self.config)
        # Shared with the universal layer (Gateway passes them on), so a route balances one way.
        self.routes = routes if routes is not None else compile_routes(self.config.routes)
        self.runner = CompatRunner(app, self.providers, self.routes)
        self.planner = Planner(self.providers, self.routes)
        self._models: list[tuple[str, str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ctx = ensure_context(scope, self.gateway_id)
            if ctx.path.startswith("/compat/"):
                await self._answer(ctx, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ctx.path[len("/compat/") :]
        surface, kind = ENDPOINTS.get((ctx.method, endpoint), (None, ""))
        if surface is None:
            style = MESSAGES if endpoint.startswith("v1/messages") else CHAT
            error = NotFound(f"Not found: {ctx.method} /compat/{endpoint[:100]} is not a /compat endpoint")
            await self._error(ctx, send, style, error)
            return
        ctx.extra[LOG_METADATA] = {"aigw_surface": surface.name}  # the row of an error answered here
        if kind == "models" and endpoint == "v1/models" and ctx.header(b"anthropic-version") is not None:
            surface = replace(MESSAGES, name="models")
        try:
            ctx.options  # noqa: B018 - a bad cf-aig-* header is a 400 before anything else
            if kind == "models":
                await self._models_answer(ctx, send, surface)
                return
            await read_body(ctx, receive, self.max_body)
            body = ctx.json()
            if not isinstance(body, dict):
                raise bad("body", "expected a JSON object")
            key = client_credential(ctx.headers, ctx.gateway_token)
            steps = self.planner.plan(surface, kind, body, key)
        except GatewayError as exc:
            await self._error(ctx, send, surface, exc)
            return
        except ClientDisconnected:  # gone before its body was complete: nobody to answer
            ctx.client_gone()
            return
        plan: list[PlannedStep] = list(steps)
        await self.runner.run_steps(ctx, scope, plan, receive, Relay(send, ctx, steps))

    async def _error(self, ctx: RequestContext, send: Send, surface: Surface, exc: GatewayError) -> None:
        ctx.fail(exc)
        body = _json.dumps(surface.error_json(exc.status, exc.message, code=exc.code))
        headers = [*exc.headers, *ctx.response_headers()]
        model = _requested_model(ctx)
        if model is not None and not ctx.model:
            headers.append((b"cf-aig-model", model.encode("latin-1", "replace")))
        await send_json(send, exc.status, body, headers)

    async def _models_answer(self, ctx: RequestContext, send: Send, surface: Surface) -> None:
        if self._models is None:  # the configuration does not change: computed once
            self._models = catalog.model_ids(self.config, self.providers, self.routes)
        listing = catalog.anthropic_list(self._models) if surface.error_style == "anthropic" else None
        body = _json.dumps(listing or catalog.openai_list(self._models))
        ctx.answered(200)
        await send_json(send, 200, body, ctx.response_headers())


def _requested_model(ctx: RequestContext) -> str | None:
    """The ``model`` the client asked for, for the ``cf-aig-model`` header of an early error."""
    body: Any = ctx.json() if ctx.body else None
    model = body.get("model") if isinstance(body, dict) else None
    return model[:200] if isinstance(model, str) and model.isprintable() else None
