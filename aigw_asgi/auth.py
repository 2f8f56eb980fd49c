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

Runtime gateway keys (SPEC §14, keys/) are presented exactly like tokens: a candidate that matches
no configured token is looked up in the `KeyResolver`'s snapshot (same hash-then-compare, no I/O
unless the snapshot is due for its refresh). An expired or revoked key answers 401 code 2033; a
key store unreachable since start, 503 code 2011.

On success the context gets ``token_name`` (logs, rate-limit rules), ``gateway_token`` (so the
router can strip it; never logged) and, for a runtime key, ``key``. Failure answers 401 with
code 2009 before the inner app runs; for a WebSocket that is a real HTTP 401 through the
``websocket.http.response`` extension when the server offers it, else a close with code 1008
(servers turn that into a 403).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ._asgi import deny_websocket
from .breaker import StorageDown
from .config import GatewayConfig, TokenConfig
from .context import ErrorType, RequestContext, ensure_context
from .errors import GatewayError, KeyRejected, RateLimited, StoreUnavailable, Unauthorized, send_error
from .throttle import FailureThrottle, address
from .types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .keys.resolver import KeyResolver

__all__ = [
    "AdminGuard",
    "AuthMiddleware",
    "TokenTable",
    "bearer_token",
    "hash_token",
    "is_loopback",
    "throttle_from_config",
]

SUBPROTOCOL_PREFIX = "cf-aig-authorization."
THROTTLE_RULE = "auth_failures"  # ``rate_limited_by`` of a request refused by the failure throttle
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


async def _deny(
    scope: Scope, receive: Receive, send: Send, ctx: RequestContext | None, exc: GatewayError | None = None
) -> None:
    """401 code 2009 (or ``exc``: a key's 401 2033, the throttle's 429, a key store's 503) for HTTP;
    for a WebSocket a denial response before accept, else close 1008."""
    exc = exc or Unauthorized()
    if isinstance(exc, Unauthorized):
        headers = [_WWW_AUTHENTICATE, *(ctx.response_headers() if ctx is not None else ())]
        if ctx is not None:
            ctx.fail(exc, ErrorType.UNAUTHORIZED)
    else:
        headers = ctx.response_headers() if ctx is not None else []
        if ctx is not None and isinstance(exc, RateLimited):
            ctx.rate_limited_by = THROTTLE_RULE
            ctx.fail(exc, ErrorType.RATE_LIMITED)
        elif ctx is not None:
            ctx.fail(exc)
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


def throttle_from_config(config: GatewayConfig) -> FailureThrottle | None:
    """The failure throttle ``gateway.auth_failures_per_minute`` asks for (None when 0)."""
    limit = config.auth_failures_per_minute
    return FailureThrottle(limit) if limit > 0 else None


class _Throttled:
    """A failure throttle as the guards use it: the client address, blocked?, count a failure."""

    __slots__ = ("throttle", "proxy_header")

    def __init__(self, throttle: FailureThrottle, config: GatewayConfig) -> None:
        self.throttle = throttle
        header = config.trusted_proxy_header
        self.proxy_header = header.lower().encode("latin-1") if header else None

    def address(self, scope: Scope) -> str | None:
        client = scope.get("client")
        return address(client[0] if client else None, scope.get("headers", ()), self.proxy_header)

    def blocked(self, scope: Scope) -> RateLimited | None:
        if not len(self.throttle):  # no failures anywhere: no address to work out
            return None
        return self.throttle.blocked(self.address(scope))

    def failed(self, scope: Scope) -> None:
        self.throttle.failed(self.address(scope))


def _throttled(throttle: FailureThrottle | None, config: GatewayConfig, given: bool) -> _Throttled | None:
    if not given:
        throttle = throttle_from_config(config)
    return _Throttled(throttle, config) if throttle is not None else None


class AuthMiddleware:
    """Gateway-token authentication for HTTP and WebSocket scopes; lifespan passes through.

    ``throttle``: the `FailureThrottle` shared with the admin guard (`Gateway` passes one);
    default: one built from ``gateway.auth_failures_per_minute``. ``keys``: the runtime gateway
    keys (`aigw_asgi.keys.KeyResolver`); ``clock``: the wall clock key expiries are read against.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: GatewayConfig | None = None,
        *,
        throttle: FailureThrottle | None = None,
        keys: KeyResolver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.config = config or GatewayConfig()
        self.enabled = self.config.authentication
        self.gateway_id = self.config.id
        self.tokens = TokenTable(self.config.tokens)
        self.throttle = _throttled(throttle, self.config, throttle is not None)
        self.keys = keys
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.enabled:
                ctx = ensure_context(scope, self.gateway_id)
                if not await self._check(scope, receive, send, ctx):
                    return
            await self.app(scope, receive, send)
        elif kind == "websocket":
            if self.enabled:
                ctx = ensure_context(scope, self.gateway_id)
                if not await self._check(scope, receive, send, ctx):
                    return
            # Even with authentication off a browser may offer the token entry: keep it from the
            # inner app and still echo a subprotocol, or the browser fails the handshake.
            inner, others, token_entry = _subprotocol_scope(scope)
            if token_entry is not None:
                send = _accepting_send(send, others, token_entry)
            await self.app(inner, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _check(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> bool:
        """Authenticate, or answer (401, or 429 for an address that failed too often) and say no."""
        throttle = self.throttle
        if throttle is not None:
            refusal = throttle.blocked(scope)
            if refusal is not None:  # the token is not even looked at: a lucky guess teaches nothing
                await _deny(scope, receive, send, ctx, refusal)
                return False
        denial = await self._authenticate(scope, ctx)
        if denial is None:
            return True
        if throttle is not None and isinstance(denial, Unauthorized):  # not a key store outage
            throttle.failed(scope)
        await _deny(scope, receive, send, ctx, denial)
        return False

    async def _authenticate(self, scope: Scope, ctx: RequestContext) -> GatewayError | None:
        """``None`` when the request may pass (the context filled), else the error to answer."""
        token, _source = _find_credential(scope)
        if token is None:
            return Unauthorized()
        name = self.tokens.match(token)
        if name is None and self.keys is not None:
            try:
                key = await self.keys.lookup(token)
            except StorageDown:
                return StoreUnavailable("Key store unavailable")
            if key is not None:
                status = key.status(self.clock())
                if status != "active":
                    return KeyRejected(f"Gateway key {status}")
                ctx.key, name = key, key.name
        if name is None:
            return Unauthorized()
        ctx.token_name = name
        ctx.gateway_token = token.decode("latin-1")
        return None


class AdminGuard:
    """Guards the admin API: ``Bearer <admin_token>`` in ``Authorization`` or ``cf-aig-authorization``.

    With no ``admin_token`` configured only loopback clients pass (``scope["client"]`` in
    127.0.0.0/8 or ::1) — and a request carrying any forwarding header (``Forwarded``,
    ``X-Forwarded-*``, ``X-Real-IP``, ``True-Client-IP``, ``X-Client-IP``, ``CF-Connecting-IP``,
    ``Via``…, or the configured ``trusted_proxy_header``) does not count as loopback, since a
    reverse proxy on the same host makes every remote client look local.
    Gateway tokens never open the admin API. Denial: 401 with code 2009; an address with too
    many failures gets 429 code 2003 (``throttle``, shared with `AuthMiddleware`).

    ``public`` names requests that need no token *when one is configured* — the dashboard's
    static page, which holds no data and asks for the token itself. Without an admin token
    they stay loopback-only like the rest.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: GatewayConfig | None = None,
        *,
        public: Callable[[Scope], bool] | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self.app = app
        self.config = config or GatewayConfig()
        self.public = public
        self.throttle = _throttled(throttle, self.config, throttle is not None)
        token = self.config.admin_token
        self._digest = hashlib.sha256(token.encode()).digest() if token else None
        self._forwarding = set(_FORWARDING_HEADERS)
        if self.config.trusted_proxy_header:
            self._forwarding.add(self.config.trusted_proxy_header.lower().encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        throttle = self.throttle
        if throttle is not None:
            refusal = throttle.blocked(scope)
            if refusal is not None:
                await _deny(scope, receive, send, None, refusal)
                return
        if self.allowed(scope):
            await self.app(scope, receive, send)
            return
        if throttle is not None:
            throttle.failed(scope)
        await _deny(scope, receive, send, None)

    def allowed(self, scope: Scope) -> bool:
        headers = scope.get("headers", ())
        if self._digest is not None and self.public is not None and self.public(scope):
            return True
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
