"""RealtimeProxy: ``WS /{provider}/{path}`` relayed to the provider's own realtime WebSocket.

The router hands it every WebSocket scope (the WebSocket API at ``GET /`` never gets that far),
after telemetry, auth and the rate limiter have run on the upgrade like on any request. Per
session it:

1. plans the upstream connection from provider data (handshake.py) -- a gateway refusal (unknown
   provider, no realtime API, bad ``cf-aig-*`` header, unknown BYOK alias) answers the handshake
   with the SPEC §4 envelope, like auth and rate-limit refusals;
2. opens the provider's socket *before* accepting the client's, so the client learns the
   provider's verdict: a refusal (401/403/404…) is a close with code ``4000 + status`` and a
   reason it can read, an unreachable provider a close with 1011;
3. relays frames both ways, unchanged and in order (`Relay`, relay.py); each direction awaits
   its send before reading the next frame, so a slow reader slows the other side's reads and
   at most one frame per direction sits in the gateway (TCP and the servers' own flow control
   do the rest);
4. fills the context for the one log row and span of the session (TelemetryMiddleware writes
   them): usage summed from the provider's usage events, frames and bytes each way, the close.

Close codes pass through both ways. What the gateway itself closes with:

    1009  a frame above ``realtime.max_frame_bytes`` (either way)
    1008  ``realtime.max_session_s`` or ``realtime.idle_timeout_s`` reached
    1011  provider unreachable, or its connection lost without a close frame
    4xxx  the provider refused the handshake with HTTP status xxx (4401, 4403, 4404, 4429…)
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from .._asgi import deny_websocket
from .._lazy import import_off_loop
from ..config import Config
from ..context import ErrorType, RequestContext, ensure_context
from ..errors import GatewayError, InvalidProvider, NotFound, UpstreamTimeout, UpstreamUnreachable
from ..providers.paths import check_path, quote_path
from ..providers.registry import ProviderRegistry
from ..telemetry.records import LOG_METADATA
from ..types import Receive, Scope, Send
from .events import SessionMeter
from .handshake import UpstreamPlan, accepted_subprotocol, plan_upstream
from .relay import Relay, close_reason

__all__ = ["RealtimeProxy", "refusal_close"]


def refusal_close(status: int) -> tuple[int, str]:
    """The client's close for a provider that answered the handshake with ``status``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    if 400 <= status < 500:
        return 4000 + status, f"upstream refused the connection: {status} {phrase}"
    return 1011, f"upstream answered the handshake with {status} {phrase}"


class RealtimeProxy:
    """The ASGI app for realtime WebSocket scopes (`ProviderRouter` routes them here)."""

    def __init__(self, config: Config | None = None, *, providers: ProviderRegistry | None = None) -> None:
        self.config = config or Config()
        self.providers = providers or ProviderRegistry.from_config(self.config)
        self.gateway_id = self.config.gateway.id
        self.limits = self.config.realtime
        logs = self.config.logs
        self.capture = logs.max_body_bytes if logs.enabled and logs.collect_payload else 0
        self._client: Any = None  # aiohttp.ClientSession, made in the running loop on first use

    def _session(self) -> Any:
        import aiohttp

        if self._client is None or self._client.closed:
            connect = self.config.upstream.connect_timeout_ms / 1000
            self._client = aiohttp.ClientSession(
                # Sessions hold their connection for minutes: no pool limit (rate limits bound them).
                connector=aiohttp.TCPConnector(limit=0),
                # sock_read bounds the handshake's answer; aiohttp lifts it once upgraded.
                timeout=aiohttp.ClientTimeout(total=None, connect=connect, sock_read=connect),
                cookie_jar=aiohttp.DummyCookieJar(),
                # What the client sent goes upstream; aiohttp adds no Accept/Accept-Encoding of its own.
                skip_auto_headers=("Accept", "Accept-Encoding"),
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        ctx = ensure_context(scope, self.gateway_id)
        ctx.stream = True
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake
        try:
            plan, fmt = self._plan(ctx, scope)
        except GatewayError as exc:
            ctx.fail(exc)
            await deny_websocket(scope, send, exc, ctx.response_headers())
            return
        ws = await self._connect(ctx, plan, send)
        if ws is None:
            return
        relay = Relay(self.limits, self.capture, ctx, plan, ws, receive, send, SessionMeter(fmt, plan.model))
        await relay.run()

    def _plan(self, ctx: RequestContext, scope: Scope) -> tuple[UpstreamPlan, str]:
        _, _, rest = ctx.path.partition("/")
        slug, _, path = rest.partition("/")
        provider = self.providers.get(slug)
        if provider is None:
            raise InvalidProvider(self.providers.refusal(slug))
        ctx.provider = slug
        if provider.realtime is None:
            raise NotFound(f"Provider '{slug}' has no realtime WebSocket API (custom providers: set realtime_url)")
        check_path(scope, path)
        ctx.endpoint = path
        alias = ctx.options.byok_alias  # a bad cf-aig-* header is a 400 here, before any upstream work
        query = scope.get("query_string", b"").decode("latin-1")
        plan = plan_upstream(provider, quote_path(path), query, ctx, scope, self.providers.stored_key, alias)
        ctx.model = plan.model
        return plan, provider.format

    async def _connect(self, ctx: RequestContext, plan: UpstreamPlan, send: Send) -> Any:
        """The provider's socket, or ``None`` once the client has been told why there is none."""
        # The first session imports aiohttp (~180 ms warm) in a thread, not on the loop: realtime is
        # always on, and loading aiohttp at start-up would cost every gateway that never uses it.
        aiohttp = await import_off_loop("aiohttp")

        split = urlsplit(plan.url)
        ctx.upstream_host = split.hostname
        ctx.upstream_port = split.port or (443 if split.scheme == "wss" else 80)
        timeout_ms = ctx.options.request_timeout_ms
        limits = self.limits
        try:
            async with asyncio.timeout(timeout_ms / 1000 if timeout_ms else None):
                ws = await self._session().ws_connect(
                    plan.url,
                    headers=plan.headers,
                    protocols=plan.protocols,
                    autoping=True,  # the provider's pings are answered
                    heartbeat=limits.ping_interval_s or None,
                    max_msg_size=limits.max_frame_bytes,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=limits.close_timeout_s),
                )
        except aiohttp.WSServerHandshakeError as exc:
            code, reason = refusal_close(exc.status)
            ctx.answered(exc.status)
            ctx.broke(reason, str(exc.status))
            await _accept_and_close(send, plan, ctx, code, reason)
            return None
        except TimeoutError:
            ctx.fail(UpstreamTimeout("Provider did not answer the realtime handshake in time"), ErrorType.TIMEOUT)
            await _accept_and_close(send, plan, ctx, 1011, "upstream unreachable: handshake timed out")
            return None
        except (aiohttp.ClientError, OSError) as exc:
            why = type(exc).__name__
            ctx.fail(
                UpstreamUnreachable(f"Failed to reach the provider's realtime socket ({why})"), ErrorType.CONNECT_ERROR
            )
            await _accept_and_close(send, plan, ctx, 1011, f"upstream unreachable ({why})")
            return None
        return ws


async def _accept_and_close(send: Send, plan: UpstreamPlan, ctx: RequestContext, code: int, reason: str) -> None:
    """Accept only to close with a code and reason: a browser can read those, never a 401 page."""
    ctx.extra[LOG_METADATA] = {"realtime_close_code": code, "realtime_closed_by": "gateway"}
    try:
        subprotocol = accepted_subprotocol(plan, None)
        await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": ctx.response_headers()})
        await send({"type": "websocket.close", "code": code, "reason": close_reason(reason)})
    except OSError:
        pass  # the client is gone already
