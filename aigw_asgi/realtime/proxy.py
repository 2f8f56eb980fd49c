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
3. relays frames both ways, unchanged and in order (`_Session`); each direction awaits its
   send before reading the next frame, so a slow reader slows the other side's reads and at
   most one frame per direction sits in the gateway (TCP and the servers' own flow control do
   the rest);
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
import logging
import math
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from .._asgi import deny_websocket
from ..config import Config
from ..context import CLIENT_DISCONNECTED, ErrorType, RequestContext, ensure_context
from ..errors import GatewayError, InvalidProvider, NotFound, UpstreamTimeout, UpstreamUnreachable
from ..providers.paths import check_path, quote_path
from ..providers.registry import ProviderRegistry
from ..ratelimit.middleware import SESSION_DEBIT
from ..telemetry.records import LOG_METADATA
from ..types import Message, Receive, Scope, Send
from ..websocket import frame_size
from .events import SessionMeter
from .handshake import UpstreamPlan, accepted_subprotocol, plan_upstream

logger = logging.getLogger("aigw_asgi.realtime")

__all__ = ["RealtimeProxy", "refusal_close"]

_NORMAL = frozenset({1000, 1001, 1005})  # closes that end a session without an error
_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code


def refusal_close(status: int) -> tuple[int, str]:
    """The client's close for a provider that answered the handshake with ``status``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "HTTP error"
    if 400 <= status < 500:
        return 4000 + status, f"upstream refused the connection: {status} {phrase}"
    return 1011, f"upstream answered the handshake with {status} {phrase}"


def sendable(code: int | None, *, lost: int) -> int:
    """A close code that may go on the wire; 1005 (no code) becomes 1000, 1006/1015 ``lost``."""
    if code is None or code == 1005:
        return 1000
    if code in (1006, 1015) or not (1000 <= code <= 1014 or 3000 <= code <= 4999) or code == 1004:
        return lost
    return code


def _reason(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= _REASON_BYTES:
        return text
    return raw[:_REASON_BYTES].decode("utf-8", "ignore")


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
        session = _Session(self, ctx, plan, ws, receive, send, SessionMeter(fmt, plan.model))
        await session.run()

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
        plan = plan_upstream(provider, quote_path(path), query, ctx, scope, self.providers.pick_key, alias)
        ctx.model = plan.model
        return plan, provider.format

    async def _connect(self, ctx: RequestContext, plan: UpstreamPlan, send: Send) -> Any:
        """The provider's socket, or ``None`` once the client has been told why there is none."""
        import aiohttp

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
        await send({"type": "websocket.close", "code": code, "reason": _reason(reason)})
    except OSError:
        pass  # the client is gone already


@dataclass(slots=True)
class _End:
    """How a session ended: who closed it, with what, and whether that was a failure."""

    by: str  # "client" | "upstream" | "gateway"
    code: int
    reason: str = ""
    error: str | None = None
    error_type: str | None = None
    client_gone: bool = False  # nothing more can be sent to the client


class _Session:
    """One relayed session: two pumps (one per direction), a watchdog for the caps, the books."""

    def __init__(
        self,
        proxy: RealtimeProxy,
        ctx: RequestContext,
        plan: UpstreamPlan,
        ws: Any,
        receive: Receive,
        send: Send,
        meter: SessionMeter,
    ) -> None:
        self.proxy = proxy
        self.ctx = ctx
        self.plan = plan
        self.ws = ws
        self.receive = receive
        self.send = send
        self.meter = meter
        self.max_frame = proxy.limits.max_frame_bytes
        self.debit = ctx.extra.get(SESSION_DEBIT)
        self.last = 0.0  # loop time of the last frame, either way (idle cap)
        self.frames_up = self.bytes_up = self.frames_down = self.bytes_down = 0
        self.captured_up = bytearray()
        self.captured_down = bytearray()

    async def run(self) -> None:
        ctx, plan = self.ctx, self.plan
        ctx.status_code = 101
        try:
            await self.send(
                {
                    "type": "websocket.accept",
                    "subprotocol": accepted_subprotocol(plan, self.ws.protocol),
                    "headers": ctx.response_headers(),
                }
            )
        except OSError:
            await self.ws.close(code=1001)
            self._book(_End("client", 1006, error="client disconnected", client_gone=True))
            return
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        tasks = [
            loop.create_task(self._from_client(), name="aigw-realtime-up"),
            loop.create_task(self._from_upstream(), name="aigw-realtime-down"),
        ]
        limits = self.proxy.limits
        if limits.max_session_s or limits.idle_timeout_s:
            tasks.append(loop.create_task(self._watch(), name="aigw-realtime-caps"))
        end: _End | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            end = self._first(tasks, done)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if end is None:  # cancelled (server shutdown): both sides go away
                end = _End("gateway", 1001, "gateway shutting down", error="cancelled", error_type=ErrorType.CANCELLED)
            try:
                await self._close(end)
            finally:
                self._book(end)

    @staticmethod
    def _first(tasks: list[asyncio.Task[_End]], done: set[asyncio.Task[_End]]) -> _End:
        for task in tasks:  # in a fixed order, should two finish in the same loop turn
            if task in done:
                exc = task.exception()
                if exc is None:
                    return task.result()
                logger.error("realtime relay failed", exc_info=exc)
                return _End("gateway", 1011, "gateway error", error=f"internal error ({type(exc).__name__})")
        raise AssertionError("asyncio.wait returned nothing done")  # pragma: no cover

    # -- client -> provider ----------------------------------------------------------------------

    async def _from_client(self) -> _End:
        receive, ws, meter, max_frame = self.receive, self.ws, self.meter, self.max_frame
        loop = asyncio.get_running_loop()
        capture = self.proxy.capture
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                code = message.get("code", 1005)
                # A close frame, whatever its code, is the client's own choice. A connection lost
                # without one is 1006, or (uvicorn) 1005 with no "reason": a close frame has one.
                if code != 1006 and not (code == 1005 and "reason" not in message):
                    return _End("client", code, message.get("reason") or "", client_gone=True)
                return _End("client", 1006, error=CLIENT_DISCONNECTED, error_type=ErrorType.CLIENT_DISCONNECT,
                            client_gone=True)  # fmt: skip
            if kind != "websocket.receive":
                continue
            data, size = frame_size(message)
            if size > max_frame:
                why = f"frame too large (limit {max_frame} bytes)"
                return _End("gateway", 1009, why, error=f"client {why}", error_type="frame_too_large")
            self.last = loop.time()
            self.frames_up += 1
            self.bytes_up += size
            meter.client_frame(data)
            if capture and isinstance(data, str) and len(self.captured_up) < capture:
                _capture(self.captured_up, data, capture)
            try:
                if isinstance(data, str):
                    await ws.send_str(data)
                else:
                    await ws.send_bytes(data)
            except (ConnectionError, RuntimeError):  # the provider went away mid-send
                return _End("upstream", 1006, error="upstream connection lost", error_type="upstream_lost")

    # -- provider -> client ----------------------------------------------------------------------

    async def _from_upstream(self) -> _End:
        from aiohttp import WebSocketError, WSMsgType

        ws, send, meter, ctx = self.ws, self.send, self.meter, self.ctx
        loop = asyncio.get_running_loop()
        capture = self.proxy.capture
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                data = msg.data
                now = loop.time()
                self.last = now
                if ctx.first_byte is None:
                    ctx.first_byte = time.perf_counter()
                if kind is WSMsgType.TEXT:
                    size = len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
                    out: Message = {"type": "websocket.send", "text": data}
                    if capture and len(self.captured_down) < capture:
                        _capture(self.captured_down, data, capture)
                else:
                    size = len(data)
                    out = {"type": "websocket.send", "bytes": data}
                self.frames_down += 1
                self.bytes_down += size
                reported = meter.upstream_frame(data)
                if reported is not None and self.debit is not None:
                    # Before the frame goes on: a client that saw the usage sees it counted.
                    await self.debit((reported.tokens_in or 0) + (reported.tokens_out or 0))
                try:
                    await send(out)
                except OSError:  # ASGI >= 2.4 servers raise once the client is gone
                    return _End("client", 1006, error=CLIENT_DISCONNECTED, error_type=ErrorType.CLIENT_DISCONNECT,
                                client_gone=True)  # fmt: skip
            elif kind is WSMsgType.CLOSE:
                code = msg.data if isinstance(msg.data, int) else 1005
                reason = msg.extra or ""
                if code in _NORMAL:
                    return _End("upstream", code, reason)
                return _End("upstream", code, reason, error=f"upstream closed with {code}", error_type=str(code))
            elif kind is WSMsgType.ERROR:
                exc = msg.data
                if isinstance(exc, WebSocketError) and exc.code == 1009:
                    why = f"upstream frame too large (limit {self.max_frame} bytes)"
                    return _End("upstream", 1009, why, error=why, error_type="frame_too_large")
                return _End("upstream", 1006, error=f"upstream connection lost ({type(exc).__name__})",
                            error_type="upstream_lost")  # fmt: skip
            elif kind is WSMsgType.CLOSED or kind is WSMsgType.CLOSING:
                code = ws.close_code or 1006
                if code in _NORMAL:
                    return _End("upstream", code)
                return _End("upstream", code, error="upstream connection lost", error_type="upstream_lost")

    # -- caps ------------------------------------------------------------------------------------

    async def _watch(self) -> _End:
        limits = self.proxy.limits
        loop = asyncio.get_running_loop()
        session_end = loop.time() + limits.max_session_s if limits.max_session_s else math.inf
        idle = limits.idle_timeout_s or math.inf
        while True:
            now = loop.time()
            if now >= session_end:
                why = f"session length limit reached ({limits.max_session_s:g} s)"
                return _End("gateway", 1008, why, error=why, error_type="session_limit")
            if now >= self.last + idle:
                why = f"idle for {limits.idle_timeout_s:g} s"
                return _End("gateway", 1008, why, error=why, error_type="idle_timeout")
            await asyncio.sleep(min(session_end, self.last + idle) - now)

    # -- the end ---------------------------------------------------------------------------------

    async def _close(self, end: _End) -> None:
        """Close whichever side is still open, passing the other side's code on."""
        ws = self.ws
        if end.by == "upstream":
            code = sendable(end.code, lost=1011)
            reason = end.reason or ("upstream connection lost" if code != end.code else "")
        else:
            code, reason = end.code, end.reason
        if not ws.closed:
            # The client's own close goes on as it came; the gateway's reasons are the client's business.
            up_code, up_reason = (sendable(end.code, lost=1001), end.reason) if end.by == "client" else (1001, "")
            try:
                await ws.close(code=up_code, message=_reason(up_reason).encode())
            except Exception:  # a close that fails has closed nonetheless
                logger.debug("closing the upstream socket failed", exc_info=True)
        if end.client_gone:
            return
        try:
            await self.send({"type": "websocket.close", "code": code, "reason": _reason(reason)})
        except (OSError, RuntimeError):  # gone meanwhile, or the server already closed it
            pass

    def _book(self, end: _End) -> None:
        """Fill the context for the session's log row and span."""
        ctx, meter = self.ctx, self.meter
        ctx.ended = time.perf_counter()
        if meter.usage.known():
            ctx.usage = meter.usage
        ctx.model = meter.model or ctx.model
        ctx.response_model = meter.response_model
        if end.error is not None:
            ctx.broke(end.error, end.error_type or "realtime")
        if self.captured_up:
            ctx.body = bytes(self.captured_up)
        if self.captured_down:
            ctx.response_body = bytes(self.captured_down)
        ctx.extra[LOG_METADATA] = {
            "realtime_frames_up": self.frames_up,
            "realtime_bytes_up": self.bytes_up,
            "realtime_frames_down": self.frames_down,
            "realtime_bytes_down": self.bytes_down,
            "realtime_close_code": end.code,
            "realtime_closed_by": end.by,
        }


def _capture(buffer: bytearray, text: str, cap: int) -> None:
    """Keep the first ``cap`` bytes of a direction's text frames for the log row, one per line."""
    if buffer:
        buffer += b"\n"
    buffer += text[: cap - len(buffer)].encode("utf-8", "replace")
    del buffer[cap:]
