"""Gateway authentication (SPEC §8): `AuthMiddleware` for the pipeline, `AdminGuard` for ``/admin``.

With ``authentication = true`` every HTTP request and WebSocket upgrade must present a configured
gateway token; with ``false`` the middleware does not look at credentials at all (Cloudflare:
"the header is ignored"). Where the token may come from, in order — exactly one candidate is
checked per request:

1. ``cf-aig-authorization: Bearer <token>`` (the main path, HTTP and WebSocket);
2. WebSocket only: a subprotocol entry ``cf-aig-authorization.<token>`` (browsers cannot set
   headers on a WebSocket);
3. ``Authorization: Bearer <token>`` when no ``cf-aig-authorization`` header came: Cloudflare lets
   the gateway token sit in the provider credential slot when the gateway holds the provider key
   (BYOK). The router drops exactly that header upstream and injects the configured key.

Timing: the presented token is hashed once with SHA-256 and the digest looked up in a dict built
at start from the plain tokens (hashed then) and the configured ``sha256`` digests; a hit is
confirmed with `hmac.compare_digest`. Lookup time depends only on the digest, which tells an
attacker nothing about any token, and the cost is one hash whatever the number of tokens.

On success the context gets ``token_name`` (logs, rate-limit rules) and ``gateway_token`` (so the
router can strip it; never logged). Failure answers 401 with code 2009 before the inner app runs;
for a WebSocket that is a real HTTP 401 through the ``websocket.http.response`` extension when
the server offers it, else a close with code 1008 (servers turn that into a 403).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from ._asgi import deny_websocket
from .config import GatewayConfig, TokenConfig
from .context import ErrorType, RequestContext, ensure_context
from .errors import Unauthorized, send_error
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AdminGuard", "AuthMiddleware", "TokenTable", "bearer_token", "hash_token", "is_loopback"]

SUBPROTOCOL_PREFIX = "cf-aig-authorization."
_WWW_AUTHENTICATE = (b"www-authenticate", b'Bearer realm="aigw"')
# Headers a proxy (or a CDN, a load balancer) adds to say who the client really is. Any of them on
# a request from a loopback peer means the peer is a proxy, not the client: not "local". Every
# ``x-forwarded-*`` counts too.
_FORWARDING_HEADERS = frozenset(
    {
        b"forwarded",
        b"forwarded-for",
        b"x-forwarded",
        b"x-real-ip",
        b"true-client-ip",
        b"x-client-ip",
        b"client-ip",
        b"cf-connecting-ip",
        b"cf-connecting-ipv6",
        b"fastly-client-ip",
        b"x-cluster-client-ip",
        b"x-original-forwarded-for",
        b"x-appengine-user-ip",
        b"x-azure-clientip",
        b"x-azure-socketip",
        b"via",
    }
)


def hash_token(token: str | bytes) -> str:
    """The hex SHA-256 of a token: what goes into ``tokens = [{name, sha256}]``."""
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()


class TokenTable:
    """Configured gateway tokens, indexed by SHA-256 digest: one hash per check, whatever their number."""

    __slots__ = ("_by_digest",)

    def __init__(self, tokens: Iterable[TokenConfig]) -> None:
        self._by_digest: dict[bytes, tuple[bytes, str]] = {}
        for tok in tokens:
            if tok.token is not None:
                digest = hashlib.sha256(tok.token.encode()).digest()
            elif tok.sha256 is not None:
                digest = bytes.fromhex(tok.sha256)
            else:  # pragma: no cover - config validation requires one of them
                continue
            self._by_digest[digest] = (digest, tok.name)

    def __len__(self) -> int:
        return len(self._by_digest)

    def match(self, token: bytes) -> str | None:
        """The name of the configured token equal to ``token``, else ``None``."""
        digest = hashlib.sha256(token).digest()
        entry = self._by_digest.get(digest)
        if entry is not None and hmac.compare_digest(entry[0], digest):
            return entry[1]
        return None


def bearer_token(value: bytes | None) -> bytes | None:
    """``T`` from ``Bearer T`` (scheme case-insensitive); ``None`` for anything else."""
    if value is None or len(value) < 8 or value[:7].lower() != b"bearer ":
        return None
    token = value[7:].strip()
    return token or None


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8 or ::1 (IPv4-mapped too); host names and unknown peers are not loopback."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _find_credential(scope: Scope) -> tuple[bytes | None, str | None]:
    """The one token candidate of a request and where it came from (see the module docstring)."""
    cf_auth: bytes | None = None
    authorization: bytes | None = None
    for key, value in scope.get("headers", ()):
        if key == b"cf-aig-authorization":
            cf_auth = value
            break
        if key == b"authorization" and authorization is None:
            authorization = value
    if cf_auth is not None:
        return bearer_token(cf_auth), "header"
    if scope["type"] == "websocket":
        for entry in scope.get("subprotocols") or ():
            if entry.startswith(SUBPROTOCOL_PREFIX):
                return entry[len(SUBPROTOCOL_PREFIX) :].encode("latin-1", "replace"), "subprotocol"
    # The provider slot counts only as the exact "Bearer <ascii token>" the router strips upstream:
    # anything the router would not recognise must not authenticate, or it would be forwarded.
    if authorization is not None and authorization.startswith(b"Bearer "):
        token = authorization[7:]
        if token and token.isascii() and token == token.strip():
            return token, "authorization"
    return None, None


async def _deny(scope: Scope, receive: Receive, send: Send, ctx: RequestContext | None) -> None:
    """401 code 2009 for HTTP; for a WebSocket a denial response before accept, else close 1008."""
    exc = Unauthorized()
    headers = [_WWW_AUTHENTICATE, *(ctx.response_headers() if ctx is not None else ())]
    if ctx is not None:
        ctx.fail(exc, ErrorType.UNAUTHORIZED)
    if scope["type"] == "http":
        await send_error(send, exc, headers)
        return
    # WebSocket: the client's connect request is waiting; answer it instead of accepting.
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client went away already
    await deny_websocket(scope, send, exc, headers, close_reason=False)


def _subprotocol_scope(scope: Scope) -> tuple[Scope, list[str], str | None]:
    """The scope the inner app sees (token entries removed), the remaining offers, the token entry."""
    offered: list[str] = scope.get("subprotocols") or []
    token_entry = next((p for p in offered if p.startswith(SUBPROTOCOL_PREFIX)), None)
    if token_entry is None:
        return scope, offered, None
    others = [p for p in offered if not p.startswith(SUBPROTOCOL_PREFIX)]
    inner = dict(scope)  # shallow: the state dict (and so the context) stays shared
    inner["subprotocols"] = others
    return inner, others, token_entry


def _accepting_send(send: Send, others: list[str], token_entry: str) -> Send:
    """A ``send`` that fixes the subprotocol of ``websocket.accept``.

    Browsers fail a handshake that offered subprotocols and got none back, so the server must
    echo one: the inner app's own choice if it made one among the other offers, else the first
    other offer, else (nothing else was offered) the token entry itself. The token entry is
    never echoed when anything else was offered.
    """

    async def send_with_subprotocol(message: Message) -> None:
        if message["type"] == "websocket.accept":
            chosen = message.get("subprotocol")
            if chosen not in others:
                message = dict(message)
                message["subprotocol"] = others[0] if others else token_entry
        await send(message)

    return send_with_subprotocol


class AuthMiddleware:
    """Gateway-token authentication for HTTP and WebSocket scopes; lifespan passes through."""

    def __init__(self, app: ASGIApp, config: GatewayConfig | None = None) -> None:
        self.app = app
        self.config = config or GatewayConfig()
        self.enabled = self.config.authentication
        self.gateway_id = self.config.id
        self.tokens = TokenTable(self.config.tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.enabled:
                ctx = ensure_context(scope, self.gateway_id)
                if not self._authenticate(scope, ctx):
                    await _deny(scope, receive, send, ctx)
                    return
            await self.app(scope, receive, send)
        elif kind == "websocket":
            if self.enabled:
                ctx = ensure_context(scope, self.gateway_id)
                if not self._authenticate(scope, ctx):
                    await _deny(scope, receive, send, ctx)
                    return
            # Even with authentication off a browser may offer the token entry: keep it from the
            # inner app and still echo a subprotocol, or the browser fails the handshake.
            inner, others, token_entry = _subprotocol_scope(scope)
            if token_entry is not None:
                send = _accepting_send(send, others, token_entry)
            await self.app(inner, receive, send)
        else:
            await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope, ctx: RequestContext) -> bool:
        token, _source = _find_credential(scope)
        if token is None:
            return False
        name = self.tokens.match(token)
        if name is None:
            return False
        ctx.token_name = name
        ctx.gateway_token = token.decode("latin-1")
        return True


class AdminGuard:
    """Guards the admin API: ``Bearer <admin_token>`` in ``Authorization`` or ``cf-aig-authorization``.

    With no ``admin_token`` configured only loopback clients pass (``scope["client"]`` in
    127.0.0.0/8 or ::1) — and a request carrying any forwarding header (``Forwarded``,
    ``X-Forwarded-*``, ``X-Real-IP``, ``True-Client-IP``, ``X-Client-IP``, ``CF-Connecting-IP``,
    ``Via``…, or the configured ``trusted_proxy_header``) does not count as loopback, since a
    reverse proxy on the same host makes every remote client look local.
    Gateway tokens never open the admin API. Denial: 401 with code 2009.
    """

    def __init__(self, app: ASGIApp, config: GatewayConfig | None = None) -> None:
        self.app = app
        self.config = config or GatewayConfig()
        token = self.config.admin_token
        self._digest = hashlib.sha256(token.encode()).digest() if token else None
        self._forwarding = set(_FORWARDING_HEADERS)
        if self.config.trusted_proxy_header:
            self._forwarding.add(self.config.trusted_proxy_header.lower().encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        await _deny(scope, receive, send, None)

    def allowed(self, scope: Scope) -> bool:
        headers = scope.get("headers", ())
        if self._digest is None:
            client = scope.get("client")
            if not client or not is_loopback(client[0]):
                return False
            return not any(key in self._forwarding or key.startswith(b"x-forwarded-") for key, _ in headers)
        ok = False
        for key, value in headers:
            if key == b"authorization" or key == b"cf-aig-authorization":
                token = bearer_token(value)
                if token is not None:
                    # Digests have a fixed length, so the comparison time says nothing about the token.
                    ok |= hmac.compare_digest(hashlib.sha256(token).digest(), self._digest)
        return ok
