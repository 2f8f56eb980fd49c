"""What a key may do, decided on plain values (SPEC §14): the one rule every surface applies.

`access_error` is the whole decision; `KeyPolicyMiddleware` applies it to every request that
reaches a provider (pass-through, each universal step, each WebSocket message, each ``/compat``
target, each target of a ``dynamic/`` route), and other layers may call it directly.

- An expired or revoked key (or a rotated-away secret) → 401 code 2033.
- A provider outside ``allowed_providers`` → 403 code 2032.
- With ``allowed_models`` set, a model matching none of its globs → 403 code 2032; so is a request
  that may generate (not GET/HEAD/OPTIONS/DELETE) whose model cannot be told (no ``model`` in its
  JSON, its form fields or its path) — so nothing is a way around the list. Listing models
  (``GET /openai/models``) stays allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import multipart
from ..errors import GatewayError, KeyNotAllowed, KeyRejected
from ..providers.registry import ProviderRegistry, join_url, model_from
from .model import GatewayKey

if TYPE_CHECKING:
    from ..context import RequestContext

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
"""Methods that never make a provider generate: not budgeted, and allowed without a model."""


def access_error(
    key: GatewayKey | None, provider: str | None, model: str | None, *, method: str, now: float
) -> GatewayError | None:
    """Why ``key`` may not make this request, or ``None``. ``key=None``: it is gone (rotated, deleted)."""
    if key is None:
        return KeyRejected("Gateway key revoked")
    status = key.status(now)
    if status != "active":
        return KeyRejected(f"Gateway key {status}")
    if not key.allows_provider(provider):
        return KeyNotAllowed(f"Key '{key.name}' is not allowed to use provider '{(provider or '')[:64]}'")
    if key.allowed_models is not None:
        if model is None:
            if method.upper() not in SAFE_METHODS:
                return KeyNotAllowed(f"Key '{key.name}' is limited to some models and this request names none")
        elif not key.allows_model(provider, model):
            return KeyNotAllowed(f"Key '{key.name}' is not allowed to use model '{model[:128]}'")
    return None


def provider_of(path: str) -> str | None:
    """``openai`` for ``/openai/chat/completions``."""
    slug = path[1:].partition("/")[0] if path.startswith("/") else path.partition("/")[0]
    return slug or None


def request_model(
    ctx: RequestContext, providers: ProviderRegistry | None, query: dict[str, str] | None = None
) -> str | None:
    """The model a request names: already known, in the JSON body, or in the path (Gemini, Azure…).

    Reads only what is on the context: the caller reads the body first if it wants it used.
    """
    if ctx.model:
        return ctx.model
    slug, _, endpoint = ctx.path[1:].partition("/")
    body = ctx.json() if ctx.body else None
    if body is None and ctx.body:  # an upload (audio/transcriptions) names its model in a form field
        form_model = multipart.text_field(ctx.body, ctx.header(b"content-type"), "model")
        body = {"model": form_model} if form_model else None
    registered = providers.get(slug) if providers is not None else None
    if registered is None:
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) and model else None
    try:
        _, params = join_url(registered, endpoint)
    except ValueError:
        params = {}
    if query and "model" in query and not isinstance(body, dict):
        return query["model"] or None  # realtime sockets name their model in the query
    return model_from(registered, endpoint, params, body)
