"""TelemetryMiddleware: times every request, prices it, logs it, and hands it to OpenTelemetry.

The outermost layer (SPEC §1), usable alone around any ASGI app. Per request it only:

1. takes the request context (creating it if it is the first layer to touch the request),
2. wraps ``send`` to see the status and the first byte the client gets (nothing is buffered:
   usage and timings of a stream are read by the router as the stream passes),
3. after the inner app returned -- the response is complete, streams included -- sets
   ``ctx.cost`` (a memoised price lookup), lets the OTel recorder end its spans, and puts the
   finished context on a bounded queue with ``put_nowait``.

Everything else -- building rows (one per upstream attempt), decoding and redacting bodies,
writing to the store -- runs in a background writer task that drains the queue in batches of
``logs.batch_size`` rows at most every ``logs.flush_interval_ms``. The writer starts lazily in the
running loop (a mounted gateway gets no lifespan events) and `aclose` flushes and stops it. When
the store cannot keep up and the queue is full, rows are dropped and counted (``dropped``, with
a warning) rather than making a client wait: logs must never slow the traffic they describe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .._asgi import ASGIApp, Message, Receive, Scope, Send
from ..config import Config, validate
from ..context import RequestContext, ensure_context
from ..errors import GatewayError
from .cost import PriceTable
from .records import LogRecord, RecordSettings, apply_cost, records_from_context
from .stores import LogStore, make_store

logger = logging.getLogger("aigw_asgi.telemetry")

_WARN_EVERY_S = 10.0


class _Flush:
    """A marker put on the queue by `TelemetryMiddleware.flush`: set once everything before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = asyncio.Event()


class TelemetryMiddleware:
    """``TelemetryMiddleware(app, config, store=..., otel=..., prices=...)``.

    ``store``: a `LogStore` (default: the one ``logs.store`` names). ``prices``: a `PriceTable`
    (default: the built-in table plus ``[prices]`` from the config). ``otel``: an object with
    ``start(ctx, scope)``/``finish(handle, ctx)`` (default: `OTelRecorder` when
    ``telemetry.otel`` is on, built with ``tracer_provider``/``meter_provider`` or the globals).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        store: LogStore | None = None,
        otel: Any = None,
        prices: PriceTable | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.app = app
        self.config = config if config is not None else validate(Config())
        logs = self.config.logs
        self.gateway_id = self.config.gateway.id
        self.logging = logs.enabled
        self.store: LogStore = store if store is not None else make_store(logs, self.gateway_id)
        self.prices = prices if prices is not None else PriceTable(self.config.prices)
        self.settings = RecordSettings(
            collect_payload=logs.collect_payload,
            max_body_bytes=logs.max_body_bytes,
            prices=self.prices,
            redactor=_redactor(self.config),
        )
        self.otel = otel if otel is not None else _make_otel(self.config, tracer_provider, meter_provider)
        self._batch_size = logs.batch_size
        self._interval = logs.flush_interval_ms / 1000
        self._queue_size = logs.queue_size
        self._queue: asyncio.Queue[RequestContext | _Flush] | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushes = 0
        self._warned_at = 0.0
        # Counters (rows): written to the store, dropped because the queue was full, lost to a
        # failing store. ``store.refused`` counts rows a full STOP_INSERTING store turned away.
        self.written = 0
        self.dropped = 0
        self.failed = 0

    # -- the request path -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # lifespan: the inner app's business. websocket: the universal WebSocket layer logs
            # each message itself through `submit`, since one socket carries many requests.
            await self.app(scope, receive, send)
            return
        ctx = ensure_context(scope, self.gateway_id)
        otel = self.otel
        handle = otel.start(ctx, scope) if otel is not None else None
        sent_status = 0

        async def send_watching(message: Message) -> None:
            nonlocal sent_status
            if message["type"] == "http.response.start":
                sent_status = message["status"]
            elif ctx.first_byte is None:
                ctx.first_byte = time.perf_counter()  # answers the router did not make (cache hits, errors)
            await send(message)

        try:
            await self.app(scope, receive, send_watching)
        except BaseException as exc:
            if not sent_status:
                _note_exception(ctx, exc)
            raise
        finally:
            if sent_status:
                ctx.status_code = sent_status  # what the client saw
            if ctx.ended is None:
                ctx.ended = time.perf_counter()
            self._finish(ctx, handle)

    def _finish(self, ctx: RequestContext, handle: Any) -> None:
        # The price feeds log rows and spans only: with both off, nobody would read it.
        if self.logging or self.otel is not None:
            try:
                apply_cost(ctx, self.prices)
            except Exception:  # pricing must never break a response
                logger.exception("could not compute the cost of a request")
        if handle is not None:
            try:
                self.otel.finish(handle, ctx)
            except Exception:
                logger.exception("OpenTelemetry recorder failed")
        if self.logging:
            _trim(ctx, self.settings.max_body_bytes if self.settings.collect_payload else 0)
            self._enqueue(ctx)

    def submit(self, ctx: RequestContext) -> None:
        """Price and log a finished request that did not pass through ``__call__`` (WebSocket messages)."""
        if ctx.ended is None:
            ctx.ended = time.perf_counter()
        self._finish(ctx, None)

    def _enqueue(self, ctx: RequestContext) -> None:
        queue = self._queue
        if queue is None or self._loop is not asyncio.get_running_loop() or self._task is None or self._task.done():
            queue = self._start_writer()
        try:
            queue.put_nowait(ctx)
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_S:
                self._warned_at = now
                logger.warning(
                    "log queue full (logs.queue_size=%d): dropping rows; %d dropped so far",
                    self._queue_size,
                    self.dropped,
                )
            return
        if queue.qsize() >= self._batch_size and self._wake is not None:
            self._wake.set()

    # -- the writer -----------------------------------------------------------------------------

    def _start_writer(self) -> asyncio.Queue[RequestContext | _Flush]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue = asyncio.Queue(self._queue_size)
            self._wake = asyncio.Event()
            self._loop = loop
        self._task = loop.create_task(self._write_forever(self._queue), name="aigw-log-writer")
        return self._queue

    async def _write_forever(self, queue: asyncio.Queue[RequestContext | _Flush]) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            batch = [await queue.get()]
            if not isinstance(batch[0], _Flush) and queue.qsize() + 1 < self._batch_size and not self._flushes:
                # Give the batch time to fill, unless it is full or someone waits for a flush.
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), self._interval)
                except TimeoutError:
                    pass
            while len(batch) < self._batch_size:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._write(batch)

    async def _write(self, batch: list[RequestContext | _Flush]) -> None:
        contexts = [item for item in batch if not isinstance(item, _Flush)]
        if contexts:
            records: list[LogRecord] = []

            def build() -> list[LogRecord]:
                records.extend(self._build(contexts))
                return records

            try:
                # Row building decodes and redacts bodies: keep that CPU off the event loop. A
                # store with a thread of its own builds there: one thread handoff per batch.
                write_built = getattr(self.store, "write_built", None)
                if write_built is not None:
                    self.written += await write_built(build)
                else:
                    self.written += await self.store.write(await asyncio.to_thread(build))
            except Exception:
                self.failed += len(records) or len(contexts)
                now = time.monotonic()
                if now - self._warned_at > _WARN_EVERY_S:
                    self._warned_at = now
                    logger.exception("log store %s failed; %d rows lost so far", self.store.kind, self.failed)
        for item in batch:
            if isinstance(item, _Flush):
                item.done.set()

    def _build(self, contexts: list[RequestContext]) -> list[LogRecord]:
        out: list[LogRecord] = []
        for ctx in contexts:
            out.extend(records_from_context(ctx, self.settings))
        return out

    async def flush(self) -> None:
        """Wait until every row queued so far is written (the admin API calls this before reading)."""
        if self._queue is None or self._task is None or self._task.done():
            return
        if self._loop is not asyncio.get_running_loop():
            return
        marker = _Flush()
        self._flushes += 1
        try:
            await self._queue.put(marker)
            if self._wake is not None:
                self._wake.set()
            await marker.done.wait()
        finally:
            self._flushes -= 1

    def stats(self) -> dict[str, Any]:
        return {
            "store": self.store.kind,
            "queued": self._queue.qsize() if self._queue is not None else 0,
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "refused": self.store.refused,
        }

    async def aclose(self) -> None:
        """Write what is queued (bounded wait), stop the writer and close the store."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            same_loop = self._loop is asyncio.get_running_loop()
            if same_loop:
                self._task = task  # flush() needs the running writer
                try:
                    await asyncio.wait_for(self.flush(), 10)
                except TimeoutError:
                    logger.warning("log store too slow at shutdown: %d rows not written", self._queue_qsize())
                self._task = None
            task.cancel()
            if same_loop:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._queue = None
        self._wake = None
        self._loop = None
        await self.store.aclose()

    def _queue_qsize(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0


def _trim(ctx: RequestContext, cap: int) -> None:
    """Keep no more of the request body than a row stores: queued contexts must stay small
    (a 25 MB upload would otherwise sit in memory until its row is written)."""
    if ctx.body is not None and len(ctx.body) > cap:
        ctx.body = ctx.body[:cap] if cap else None
    for child in ctx.children:
        _trim(child, cap)


def _note_exception(ctx: RequestContext, exc: BaseException) -> None:
    """The outcome of a request whose inner app raised before answering (the host answers it)."""
    if isinstance(exc, GatewayError):
        ctx.status_code = exc.status
        ctx.error, ctx.error_code = exc.message, exc.code
        ctx.error_type = ctx.error_type or type(exc).__name__
    elif isinstance(exc, asyncio.CancelledError):
        ctx.status_code = ctx.status_code or 499
        ctx.error, ctx.error_type = ctx.error or "cancelled", ctx.error_type or "cancelled"
    elif isinstance(exc, Exception):
        ctx.status_code = 500
        # The class name only: an exception's text may carry anything, secrets included.
        ctx.error, ctx.error_type = f"internal error ({type(exc).__name__})", type(exc).__name__


def _redactor(config: Config) -> Any:
    try:
        from ..redact import Redactor, config_secrets
    except ImportError:  # pragma: no cover - redact.py ships with the package
        return None
    return Redactor(config_secrets(config))


def _make_otel(config: Config, tracer_provider: Any, meter_provider: Any) -> Any:
    if not config.telemetry.otel:
        return None
    try:
        from .otel import OTelRecorder
    except ImportError:
        return None
    return OTelRecorder(config.telemetry, tracer_provider=tracer_provider, meter_provider=meter_provider)
