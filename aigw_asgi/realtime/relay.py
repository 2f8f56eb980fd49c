"""The relay of one accepted realtime session: frames both ways, the caps, the books.

Two pumps, one per direction, each awaiting its send before it reads the next frame: a slow
reader slows the other side's reads down to TCP (backpressure), and at most one frame per
direction sits in the gateway. A watchdog enforces the session-length and idle caps. Whichever
finishes first decides how the session ends (`SessionEnd`); the other side is closed with the
code passed on, and the context is filled for the session's log row and span.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from ..budgets.middleware import SESSION_SPEND
from ..config import RealtimeConfig
from ..context import CLIENT_DISCONNECTED, ErrorType, RequestContext
from ..ratelimit.middleware import SESSION_DEBIT
from ..telemetry.records import LOG_METADATA
from ..types import Message, Receive, Send
from ..wsframes import frame_size
from .events import SessionMeter
from .handshake import UpstreamPlan, accepted_subprotocol

logger = logging.getLogger("aigw_asgi.realtime")

__all__ = ["Relay", "SessionEnd", "close_reason", "sendable"]

_NORMAL = frozenset({1000, 1001, 1005})  # closes that end a session without an error
_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code


def sendable(code: int | None, *, lost: int) -> int:
    """A close code that may go on the wire; 1005 (no code) becomes 1000, 1006/1015 ``lost``."""
    if code is None or code == 1005:
        return 1000
    if code in (1006, 1015) or not (1000 <= code <= 1014 or 3000 <= code <= 4999) or code == 1004:
        return lost
    return code


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (123 bytes of UTF-8)."""
    raw = text.encode("utf-8")
    if len(raw) <= _REASON_BYTES:
        return text
    return raw[:_REASON_BYTES].decode("utf-8", "ignore")


@dataclass(slots=True)
class SessionEnd:
    """How a session ended: who closed it, with what, and whether that was a failure."""

    by: str  # "client" | "upstream" | "gateway"
    code: int
    reason: str = ""
    error: str | None = None
    error_type: str | None = None
    client_gone: bool = False  # nothing more can be sent to the client


def _client_gone() -> SessionEnd:
    kind = ErrorType.CLIENT_DISCONNECT
    return SessionEnd("client", 1006, error=CLIENT_DISCONNECTED, error_type=kind, client_gone=True)


def _upstream_lost(detail: str = "", code: int = 1006) -> SessionEnd:
    return SessionEnd("upstream", code, error=f"upstream connection lost{detail}", error_type="upstream_lost")


class Relay:
    """One relayed session: two pumps (one per direction), a watchdog for the caps, the books."""

    def __init__(
        self,
        limits: RealtimeConfig,
        capture: int,
        ctx: RequestContext,
        plan: UpstreamPlan,
        ws: Any,
        receive: Receive,
        send: Send,
        meter: SessionMeter,
    ) -> None:
        self.limits = limits
        self.capture = capture  # bytes of text frames kept for the log row, each way
        self.ctx = ctx
        self.plan = plan
        self.ws = ws
        self.receive = receive
        self.send = send
        self.meter = meter
        self.max_frame = limits.max_frame_bytes
        self.debit = ctx.extra.get(SESSION_DEBIT)
        self.spend = ctx.extra.get(SESSION_SPEND)  # the budget layer's check, when budgets apply
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
            self._book(_client_gone())
            return
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        tasks = [
            loop.create_task(self._from_client(), name="aigw-realtime-up"),
            loop.create_task(self._from_upstream(), name="aigw-realtime-down"),
        ]
        limits = self.limits
        if limits.max_session_s or limits.idle_timeout_s:
            tasks.append(loop.create_task(self._watch(), name="aigw-realtime-caps"))
        end: SessionEnd | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            end = self._first(tasks, done)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if end is None:  # cancelled (server shutdown): both sides go away
                end = SessionEnd(
                    "gateway", 1001, "gateway shutting down", error="cancelled", error_type=ErrorType.CANCELLED
                )
            try:
                await self._close(end)
            finally:
                self._book(end)

    @staticmethod
    def _first(tasks: list[asyncio.Task[SessionEnd]], done: set[asyncio.Task[SessionEnd]]) -> SessionEnd:
        for task in tasks:  # in a fixed order, should two finish in the same loop turn
            if task in done:
                exc = task.exception()
                if exc is None:
                    return task.result()
                logger.error("realtime relay failed", exc_info=exc)
                return SessionEnd("gateway", 1011, "gateway error", error=f"internal error ({type(exc).__name__})")
        raise AssertionError("asyncio.wait returned nothing done")  # pragma: no cover

    # -- client -> provider ----------------------------------------------------------------------

    async def _from_client(self) -> SessionEnd:
        receive, ws, meter, max_frame = self.receive, self.ws, self.meter, self.max_frame
        loop = asyncio.get_running_loop()
        capture = self.capture
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                code = message.get("code", 1005)
                # A close frame, whatever its code, is the client's own choice. A connection lost
                # without one is 1006, or (uvicorn) 1005 with no "reason": a close frame has one.
                if code != 1006 and not (code == 1005 and "reason" not in message):
                    return SessionEnd("client", code, message.get("reason") or "", client_gone=True)
                return _client_gone()
            if kind != "websocket.receive":
                continue
            data, size = frame_size(message)
            if size > max_frame:
                why = f"frame too large (limit {max_frame} bytes)"
                return SessionEnd("gateway", 1009, why, error=f"client {why}", error_type="frame_too_large")
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
                return _upstream_lost()

    # -- provider -> client ----------------------------------------------------------------------

    async def _from_upstream(self) -> SessionEnd:
        from aiohttp import WebSocketError, WSMsgType

        ws, send, meter, ctx = self.ws, self.send, self.meter, self.ctx
        loop = asyncio.get_running_loop()
        capture = self.capture
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
                    return _client_gone()
                if reported is not None and self.spend is not None:
                    # After the frame: the client gets the answer it was charged for, then the end.
                    refusal = await self.spend(meter.usage)
                    if refusal is not None:
                        why = refusal.message
                        return SessionEnd("gateway", 1008, why, error=why, error_type="budget_exhausted")
            elif kind is WSMsgType.CLOSE:
                code = msg.data if isinstance(msg.data, int) else 1005
                reason = msg.extra or ""
                if code in _NORMAL:
                    return SessionEnd("upstream", code, reason)
                return SessionEnd("upstream", code, reason, error=f"upstream closed with {code}", error_type=str(code))
            elif kind is WSMsgType.ERROR:
                exc = msg.data
                if isinstance(exc, WebSocketError) and exc.code == 1009:
                    why = f"upstream frame too large (limit {self.max_frame} bytes)"
                    return SessionEnd("upstream", 1009, why, error=why, error_type="frame_too_large")
                return _upstream_lost(f" ({type(exc).__name__})")
            elif kind is WSMsgType.CLOSED or kind is WSMsgType.CLOSING:
                code = ws.close_code or 1006
                if code in _NORMAL:
                    return SessionEnd("upstream", code)
                return _upstream_lost(code=code)

    # -- caps ------------------------------------------------------------------------------------

    async def _watch(self) -> SessionEnd:
        limits = self.limits
        loop = asyncio.get_running_loop()
        session_end = loop.time() + limits.max_session_s if limits.max_session_s else math.inf
        idle = limits.idle_timeout_s or math.inf
        while True:
            now = loop.time()
            if now >= session_end:
                why = f"session length limit reached ({limits.max_session_s:g} s)"
                return SessionEnd("gateway", 1008, why, error=why, error_type="session_limit")
            if now >= self.last + idle:
                why = f"idle for {limits.idle_timeout_s:g} s"
                return SessionEnd("gateway", 1008, why, error=why, error_type="idle_timeout")
            await asyncio.sleep(min(session_end, self.last + idle) - now)

    # -- the end ---------------------------------------------------------------------------------

    async def _close(self, end: SessionEnd) -> None:
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
                await ws.close(code=up_code, message=close_reason(up_reason).encode())
            except Exception:  # a close that fails has closed nonetheless
                logger.debug("closing the upstream socket failed", exc_info=True)
        if end.client_gone:
            return
        try:
            await self.send({"type": "websocket.close", "code": code, "reason": close_reason(reason)})
        except (OSError, RuntimeError):  # gone meanwhile, or the server already closed it
            pass

    def _book(self, end: SessionEnd) -> None:
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
