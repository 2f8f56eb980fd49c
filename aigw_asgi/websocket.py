"""The WebSocket API (SPEC §10): ``GET /`` upgraded, many universal requests on one socket.

A client opens one socket and sends ``universal.create`` frames, each carrying what ``POST /``
accepts (one step object, an array of steps, or a ``dynamic/NAME`` step) plus an ``eventId``.
Every message runs through *the same code as the HTTP universal endpoint*: `StepRunner` turns
it into internal HTTP requests through the inner stack (cache → rate limit → router), so
caching, per-message rate limits, retries, fallback, BYOK keys and usage accounting are the
HTTP path's own. The answer — an ASGI HTTP response — is translated into frames:

* non-stream 2xx → ``universal.created`` with ``response`` (the provider's JSON);
* stream 2xx (``text/event-stream`` or NDJSON) → ``universal.created`` without ``response``,
  one ``universal.stream`` per event, then ``universal.done``;
* anything else → ``universal.error`` (gateway errors keep their code, upstream errors carry the
  upstream status as ``code``). The socket stays open.

Design decisions (docs/websocket.md has the user-facing version):

* **Contexts.** The upgrade has its own context (auth fills ``token_name``; the rate limiter
  counts the upgrade once on it). Each message gets a *fresh root* `RequestContext` — its own
  ``request_id``, ``event_id`` = the message's ``eventId`` — that inherits the socket's
  identity (token, client IP, user agent) and whose headers are the session defaults (the
  upgrade's ``cf-aig-*`` headers). It is not a child of the socket's context: ``parent`` means
  "a step of a universal request" to telemetry, and a message *is* a universal request.
* **Logs.** The internal requests never pass through `TelemetryMiddleware` (it sits above this
  layer), so each finished message is handed to ``Telemetry.record`` once: OTel spans and one
  row per attempt of each step, exactly as for ``POST /``. Frames refused before a
  request exists (bad JSON, unknown type, size or in-flight caps) are not logged.
* **Concurrency.** One task per message; sends are serialized by one lock per socket; a
  client disconnect cancels every in-flight task (their upstream calls close with them) and
  waits for them, so their rows are written with status 499.

Frame parsing and the answer-to-frame translation are pure functions in wsframes.py
(`parse_frame`, `error_from_answer`, `decode_response`), unit-tested without a socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from . import _json
from ._asgi import deny_websocket
from .config import Config
from .context import ErrorType, RequestContext, ensure_context
from .errors import GatewayError, InvalidRequest, PayloadTooLarge, RateLimited, UpstreamError
from .providers.sse import NDJSONParser, SSEParser
from .runner import StepRunner
from .telemetry.middleware import PER_MESSAGE
from .transport import UpstreamStreamError
from .types import Headers, Message, Receive, Scope, Send
from .wsframes import (
    Create,
    FrameError,
    decode_response,
    error_frame,
    error_from_answer,
    frame_size,
    header_text,
    parse_frame,
    session_headers,
)

logger = logging.getLogger("aigw_asgi.websocket")

__all__ = [
    "Create",
    "FrameError",
    "WebSocketAPI",
    "decode_response",
    "error_from_answer",
    "error_frame",
    "parse_frame",
    "session_headers",
]

DEFAULT_MAX_FRAME_BYTES = 1 << 20  # 1 MiB per client frame
DEFAULT_MAX_IN_FLIGHT = 32  # concurrent requests per socket


# -- the session ------------------------------------------------------------------------------------


class MessageRecorder(Protocol):
    """Records a finished message (price, OTel, log rows): `aigw_asgi.telemetry.Telemetry`."""

    def record(self, ctx: RequestContext, scope: Scope) -> None: ...


class UpgradeAdmission(Protocol):
    """Counts the upgrade as one request: `aigw_asgi.ratelimit.RateLimitMiddleware`."""

    async def check(self, ctx: RequestContext) -> GatewayError | None: ...

    async def debit(self, ctx: RequestContext) -> None: ...


class WebSocketAPI:
    """The ASGI handler for ``GET /`` WebSocket scopes (`UniversalMiddleware` routes them here).

    ``runner`` is the universal endpoint's `StepRunner`. ``telemetry`` records each finished
    message and ``rate_limit`` counts the upgrade; `Gateway` passes its own, standalone (None)
    messages are neither logged nor is the upgrade counted.
    """

    def __init__(
        self,
        runner: StepRunner,
        config: Config | None = None,
        *,
        telemetry: MessageRecorder | None = None,
        rate_limit: UpgradeAdmission | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.runner = runner
        self.config = config or Config()
        self.gateway_id = self.config.gateway.id
        self.telemetry = telemetry
        self.rate_limit = rate_limit
        self.max_frame_bytes = max_frame_bytes
        self.max_in_flight = max_in_flight
        # Non-stream answers are buffered to become one frame: bounded like request bodies.
        self.max_response_bytes = self.config.gateway.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = ensure_context(scope, self.gateway_id)
        ctx.extra[PER_MESSAGE] = True  # each message gets its rows; the socket none of its own
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake
        refusal = await self._admit(ctx)
        if refusal is not None:
            await deny_websocket(scope, send, refusal, ctx.response_headers())
            return
        await send({"type": "websocket.accept"})
        session = _Session(self, scope, ctx, send)
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    await session.on_frame(message)
                elif kind == "websocket.disconnect":
                    break
        finally:
            await session.close()

    async def _admit(self, ctx: RequestContext) -> GatewayError | None:
        """Checks made once per socket: valid session headers, and the upgrade counted as one request."""
        try:
            ctx.options  # noqa: B018 - a bad cf-aig-* default would fail every message: refuse it now
        except GatewayError as exc:
            return exc
        if self.rate_limit is None:
            return None
        refusal = await self.rate_limit.check(ctx)
        if refusal is None:
            await self.rate_limit.debit(ctx)  # an upgrade used no tokens: releases the bookkeeping
        return refusal

    def log(self, ctx: RequestContext, scope: Scope) -> None:
        """One finished message: its OTel spans and metrics, then its log rows (never raises)."""
        if self.telemetry is None:
            return
        try:
            self.telemetry.record(ctx, scope)
        except Exception:
            logger.exception("could not log a WebSocket message")


class _Session:
    """One accepted socket: its in-flight message tasks, its send lock, its base HTTP scope."""

    def __init__(self, api: WebSocketAPI, scope: Scope, ctx: RequestContext, send: Send) -> None:
        self.api = api
        self.ctx = ctx
        self._send = send
        self.lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight: set[str] = set()
        self.defaults = session_headers(ctx.headers)
        root = scope.get("root_path", "")
        state = {k: v for k, v in (scope.get("state") or {}).items() if k != "aigw"}
        # The internal requests' scope: an HTTP POST / from the same client. StepRunner points a
        # copy of it at /{provider}/{endpoint} for each step.
        self.scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https" if scope.get("scheme") == "wss" else "http",
            "path": f"{root}/",
            "raw_path": f"{root}/".encode(),
            "query_string": b"",
            "root_path": root,
            "headers": self.defaults,
            "client": scope.get("client"),
            "server": scope.get("server"),
            "state": state,
            "extensions": {},
        }

    # -- frames in ----------------------------------------------------------------------------

    async def on_frame(self, message: Message) -> None:
        data, size = frame_size(message)
        if size > self.api.max_frame_bytes:
            exc: GatewayError = PayloadTooLarge(f"Frame too large (limit {self.api.max_frame_bytes} bytes)")
            await self.emit(error_frame(None, exc.code, exc.message))
            return
        try:
            create = parse_frame(data)
        except FrameError as bad:
            await self.emit(error_frame(bad.event_id, bad.error.code, bad.error.message))
            return
        if create.event_id in self.in_flight:
            exc = InvalidRequest(f"Invalid frame: eventId {create.event_id[:64]!r} is already in flight")
            await self.emit(error_frame(create.event_id, exc.code, exc.message))
            return
        # Counted by eventId, released synchronously when a message ends (a task's done callback
        # runs a loop turn later: a client answering at once could otherwise be refused).
        if len(self.in_flight) >= self.api.max_in_flight:
            exc = RateLimited(f"Too many requests in flight on this socket (limit {self.api.max_in_flight})")
            await self.emit(error_frame(create.event_id, exc.code, exc.message))
            return
        self.in_flight.add(create.event_id)
        task = asyncio.get_running_loop().create_task(self._run(create), name=f"aigw-ws-{create.event_id[:32]}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- frames out ---------------------------------------------------------------------------

    async def emit(self, frame: dict[str, Any]) -> None:
        """Send one frame; frames from concurrent messages never interleave mid-write."""
        if self.closed.is_set():
            return
        text = _json.dumps(frame).decode()
        async with self.lock:
            if self.closed.is_set():
                return
            try:
                await self._send({"type": "websocket.send", "text": text})
            except (OSError, RuntimeError):  # the client is gone (ASGI ≥ 2.4 raises OSError)
                self.closed.set()

    async def _wait_closed(self) -> Message:
        """The internal requests' ``receive``: their bodies are replayed; this says when the client left."""
        await self.closed.wait()
        return {"type": "http.disconnect"}

    # -- one message --------------------------------------------------------------------------

    def _context(self, event_id: str) -> RequestContext:
        sock = self.ctx
        return RequestContext(
            gateway_id=sock.gateway_id,
            method="POST",
            path="/",
            headers=self.defaults,
            client_ip=sock.client_ip,
            user_agent=sock.user_agent,
            event_id=event_id,
            token_name=sock.token_name,
            gateway_token=sock.gateway_token,
            key=sock.key,
        )

    async def _run(self, create: Create) -> None:
        ctx = self._context(create.event_id)
        reply = _Reply(self, ctx, create.event_id)
        try:
            try:
                plan = self.api.runner.plan(create.payload)
            except GatewayError as exc:
                ctx.fail(exc)
                await self.emit(error_frame(create.event_id, exc.code, exc.message))
                return
            try:
                await self.api.runner.run_steps(ctx, self.scope, plan, self._wait_closed, reply.send)
            except asyncio.CancelledError:
                # The client left: the parent and the step that was running say so in their rows.
                for part in (ctx, *ctx.children[-1:]):
                    part.client_gone()
                raise
            except GatewayError as exc:
                ctx.fail(exc)
                await reply.fail(exc.code, exc.message)
                return
            except Exception as exc:
                # UpstreamStreamError: a non-streamed body broke after it had started.
                if not isinstance(exc, UpstreamStreamError):
                    logger.exception("unhandled error in a WebSocket message")
                error = UpstreamError("Upstream connection lost mid-answer") if reply.status else GatewayError()
                if ctx.status_code is None or ctx.status_code < 400:
                    ctx.broke(error.message, type(exc).__name__)
                await reply.fail(error.code, error.message)
                return
            await reply.finish()
        finally:
            self.in_flight.discard(create.event_id)
            if ctx.ended is None:
                ctx.ended = time.perf_counter()
            self.api.log(ctx, self.scope)

    async def close(self) -> None:
        """The client left: cancel what is in flight (closing those upstream calls) and wait for it."""
        self.closed.set()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Reply:
    """Turns the ASGI HTTP answer of one message into frames.

    Streams are relayed event by event as they arrive (never buffered); a non-stream answer is
    collected (bounded) and becomes one ``universal.created`` or ``universal.error`` frame.
    """

    __slots__ = ("session", "ctx", "event_id", "status", "headers", "parser", "chunks", "size", "too_big")

    def __init__(self, session: _Session, ctx: RequestContext, event_id: str) -> None:
        self.session = session
        self.ctx = ctx
        self.event_id = event_id
        self.status: int | None = None
        self.headers: Headers = []
        self.parser: SSEParser | NDJSONParser | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_big = False

    def metadata(self) -> dict[str, Any]:
        """What Cloudflare puts in ``metadata``, read off the answer's own ``cf-aig-*`` headers."""
        answer = self.ctx.answer
        headers = self.headers
        step = header_text(headers, b"cf-aig-step")
        cache_status = header_text(headers, b"cf-aig-cache-status")
        return {
            "cacheStatus": cache_status or ("HIT" if answer.cache_status == "HIT" else "MISS"),
            "eventId": self.event_id,
            "logId": header_text(headers, b"cf-aig-log-id") or answer.log_id,
            "step": step if step is not None else str(answer.step),
            "contentType": header_text(headers, b"content-type") or "",
        }

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers") or ())
            if 200 <= self.status < 300:
                content_type = (header_text(self.headers, b"content-type") or "").lower()
                if content_type.startswith("text/event-stream"):
                    self.parser = SSEParser()
                elif content_type.startswith("application/x-ndjson"):
                    self.parser = NDJSONParser()
                if self.parser is not None:
                    await self.session.emit({"type": "universal.created", "metadata": self.metadata()})
        elif kind == "http.response.body":
            body = message.get("body", b"")
            if not body:
                return
            if self.parser is not None:
                await self._events(self.parser.feed(body))
            elif not self.too_big:
                self.size += len(body)
                if self.size > self.session.api.max_response_bytes:
                    self.too_big, self.chunks = True, []
                else:
                    self.chunks.append(body)

    async def _events(self, events: list[Any]) -> None:
        for event in events:
            data = event if isinstance(event, bytes) else event.data
            if not data or data == b"[DONE]":
                continue
            try:
                response = _json.loads(data)
            except _json.JSONDecodeError:
                response = data.decode("utf-8", "replace")
            await self.session.emit(
                {"type": "universal.stream", "metadata": {"eventId": self.event_id}, "response": response}
            )

    async def fail(self, code: int, message: str) -> None:
        metadata = self.metadata() if self.status is not None else {}
        metadata.pop("eventId", None)
        await self.session.emit(error_frame(self.event_id, code, message, metadata))

    async def finish(self) -> None:
        status = self.status
        if status is None:
            exc = UpstreamError("The request produced no answer")
            await self.session.emit(error_frame(self.event_id, exc.code, exc.message))
            return
        metadata = self.metadata()
        if self.parser is not None:
            await self._events(self.parser.flush())
            answer = self.ctx.answer
            if answer.error_type == ErrorType.STREAM_ERROR:
                await self.fail(UpstreamError.code, answer.error or "upstream stream broke")
            else:
                await self.session.emit({"type": "universal.done", "metadata": metadata})
            return
        if self.too_big:
            limit = self.session.api.max_response_bytes
            await self.fail(PayloadTooLarge.code, f"Response too large for one frame (limit {limit} bytes)")
            return
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        if 200 <= status < 300:
            response, encoding = decode_response(body)
            if encoding is not None:
                metadata["encoding"] = encoding
            await self.session.emit({"type": "universal.created", "metadata": metadata, "response": response})
            return
        code, message, response = error_from_answer(status, body)
        metadata.pop("eventId")
        metadata["status"] = status
        await self.session.emit(error_frame(self.event_id, code, message, metadata, response))
