"""The upstream half of a realtime handshake, decided before any socket opens (pure).

From the client's upgrade request and the provider's data (`RealtimeAPI` in
providers/registry.py) this works out where to connect and what to present:

* **URL**: `realtime_endpoint` joins the client's path to the provider's realtime root; the
  client's query string is forwarded as sent, plus Azure's ``deployment`` when the client named
  no model.
* **Headers**: the client's, minus hop-by-hop and handshake headers (the WebSocket client writes
  its own), ``Origin`` (the upstream connection is the gateway's, not the browser's), every
  ``cf-aig-*`` header and the gateway token.
* **Subprotocols**: every entry the client offered is offered upstream, except the gateway's
  token entry (``cf-aig-authorization.<T>``, never forwarded) and the provider-key entry
  (``openai-insecure-api-key.<key>``), which becomes the provider's credential header.
* **Key**, in the order of the SPEC (§8: a stored key only when the client sent none): the
  client's credential header or query parameter as sent; else its key subprotocol, moved into
  the header; else a stored (BYOK) key, by ``cf-aig-byok-alias`` or round-robin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from ..auth import SUBPROTOCOL_PREFIX
from ..context import RequestContext
from ..errors import InvalidRequest
from ..headers import HOP_BY_HOP
from ..providers.registry import Provider, ProviderKey, realtime_endpoint
from ..types import Scope

__all__ = ["UpstreamPlan", "plan_upstream"]

_DROP = HOP_BY_HOP | {
    b"host",
    b"origin",
    b"content-length",
    b"expect",
    b"proxy-authorization",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-real-ip",
}

KeyPicker = Callable[[Provider, str | None], ProviderKey | None]


@dataclass(slots=True)
class UpstreamPlan:
    """Everything the gateway needs to open the provider's socket for one client."""

    url: str  # ws(s)://…?query
    headers: list[tuple[str, str]] = field(repr=False)
    protocols: list[str]  # offered upstream, in the client's order
    offered: list[str] = field(repr=False)  # what the client offered (key entries included)
    model: str | None = None
    key_source: str | None = None  # "header" | "query" | "subprotocol" | "stored" | None
    stored_key: str | None = field(default=None, repr=False)  # a BYOK key we injected: never logged


def plan_upstream(
    provider: Provider, path: str, query: str, ctx: RequestContext, scope: Scope, pick_key: KeyPicker, alias: str | None
) -> UpstreamPlan:
    """The upstream connection for a client that asked for ``/{provider}/{path}?{query}``.

    ``path`` is already checked against escapes and percent-quoted. Raises `InvalidRequest`
    (bad path) or `UnknownByokAlias` (2040).
    """
    realtime = provider.realtime
    assert realtime is not None
    try:
        url, params = realtime_endpoint(provider, path)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid path: {exc}") from None

    pairs = parse_qsl(query, keep_blank_values=True)
    names = {name for name, _ in pairs}
    model = next((value for name, value in pairs if name in realtime.model_query and value), None)
    extra = [(p, params[p]) for p in realtime.path_query if p in params and p not in names]
    if extra and not names.intersection(realtime.model_query):
        query = f"{query}&{urlencode(extra)}" if query else urlencode(extra)
    model = model or params.get("deployment")

    # The client's headers, and whether one of them is a provider credential.
    gateway_auth = f"Bearer {ctx.gateway_token}".encode() if ctx.gateway_token else None
    auth_header = provider.auth_header.encode()
    headers: list[tuple[str, str]] = []
    source: str | None = None
    for key, value in ctx.headers:
        if key in _DROP or key.startswith((b"cf-aig-", b"sec-websocket-")):
            continue
        if key == b"authorization" or key == auth_header:
            if value == gateway_auth:
                continue  # the gateway token in the provider slot is ours, not the provider's
            source = "header"
        headers.append((key.decode("latin-1"), value.decode("latin-1")))
    if source is None and names.intersection(realtime.key_query):
        source = "query"

    offered: list[str] = list(scope.get("subprotocols") or ())
    prefix = realtime.key_subprotocol
    protocols: list[str] = []
    key_entry: str | None = None
    for entry in offered:
        if entry.startswith(SUBPROTOCOL_PREFIX):
            continue  # the gateway's token: never forwarded (AuthMiddleware strips it too)
        if prefix and entry.startswith(prefix):
            key_entry = key_entry or entry[len(prefix) :]
            continue
        protocols.append(entry)

    stored: str | None = None
    if source is None and key_entry:
        headers.append((provider.auth_header, provider.credential_value(key_entry)))
        source = "subprotocol"
    if source is None:
        picked = pick_key(provider, alias)  # raises UnknownByokAlias for an alias the provider lacks
        if picked is not None:
            stored = picked.key
            headers.append((provider.auth_header, provider.credential_value(stored)))
            source = "stored"
    provider.add_default_headers(headers)
    return UpstreamPlan(
        url=f"{url}?{query}" if query else url,
        headers=headers,
        protocols=protocols,
        offered=offered,
        model=model,
        key_source=source,
        stored_key=stored,
    )


def accepted_subprotocol(plan: UpstreamPlan, chosen: str | None) -> str | None:
    """The subprotocol to echo to the client: the provider's choice when the client offered it,
    else the client's first offer that carries no credential (browsers fail a handshake that
    offered subprotocols and got none back), else none."""
    if chosen is not None and chosen in plan.protocols:
        return chosen
    return plan.protocols[0] if plan.protocols else None
