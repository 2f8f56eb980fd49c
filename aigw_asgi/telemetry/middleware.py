"""TelemetryMiddleware: times every request and hands it, finished, to `Telemetry`.

The outermost layer (SPEC §1), usable alone around any ASGI app. Per request it only:

1. takes the request context (creating it if it is the first layer to touch the request),
2. wraps ``send`` to see the status and the first byte the client gets (nothing is buffered:
   usage and timings of a stream are read by the router as the stream passes),
3. after the inner app returned -- the response is complete, streams included -- calls
   `Telemetry.finish`: the price (a memoised lookup), the OTel spans' end, and a ``put_nowait``
   on the `LogWriter`'s queue. Rows are built and written in the background (telemetry/writer.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..context import RequestContext, ensure_context
from ..types import ASGIApp, Message, Receive, Scope, Send
from .cost import PriceTable
from .recorder import OTelHooks, Telemetry
from .stores import LogStore

PER_MESSAGE = "aigw.telemetry.per_message"
"""``ctx.extra`` key set by a WebSocket layer that records each message itself (the WebSocket
API): its socket then gets no row of its own."""


if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider


class TelemetryMiddleware:
    """``TelemetryMiddleware(app, config, telemetry=...)``, or the `Telemetry` arguments to build one.

    ``store``, ``otel``, ``prices``, ``tracer_provider``, ``meter_provider``: see `Telemetry`
    (used only when no ``telemetry`` is given).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        telemetry: Telemetry | None = None,
        store: LogStore | None = None,
        otel: OTelHooks | None = None,
        prices: PriceTable | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.app = app
        self.telemetry = (
            telemetry
            if telemetry is not None
            else Telemetry(
                config,
                store=store,
                otel=otel,
                prices=prices,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
            )
        )
        self.config = self.telemetry.config
        self.gateway_id = self.config.gateway.id

    # What the admin API and operators read, from the objects that own it.
    @property
    def store(self) -> LogStore:
        return self.telemetry.store

    @property
    def prices(self) -> PriceTable:
        return self.telemetry.prices

    @property
    def otel(self) -> OTelHooks | None:
        return self.telemetry.otel

    @property
    def written(self) -> int:
        return self.telemetry.writer.written

    @property
    def dropped(self) -> int:
        return self.telemetry.writer.dropped

    @property
    def failed(self) -> int:
        return self.telemetry.writer.failed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._session(scope, receive, send)
            return
        if kind != "http":  # lifespan: the inner app's business
            await self.app(scope, receive, send)
            return
        ctx = ensure_context(scope, self.gateway_id)
        handle = self.telemetry.start(ctx, scope)

        async def send_watching(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.sent(message["status"])
            elif ctx.first_byte is None:
                ctx.first_byte = time.perf_counter()  # answers the router did not make (cache hits, errors)
            await send(message)

        try:
            await self.app(scope, receive, send_watching)
        except BaseException as exc:
            if ctx.sent_status is None:
                ctx.crashed(exc)
            raise
        finally:
            if ctx.sent_status is not None:
                ctx.status_code = ctx.sent_status  # what the client saw
            self.telemetry.finish(ctx, handle)

    async def _session(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket is one row and one span, written when it ends: a realtime session, or an
        upgrade a layer refused (auth, rate limit). The WebSocket API (``GET /``) carries many
        requests: it records each message through `Telemetry.record` and marks its socket
        `PER_MESSAGE`, which then gets no row of its own.

        The span is made at the end (`Telemetry.record`) from the context's own clock readings,
        so it still starts when the upgrade arrived, and a per-message socket costs none.
        """
        ctx = ensure_context(scope, self.gateway_id)
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            if ctx.status_code is None:
                ctx.crashed(exc)
            raise
        finally:
            if not ctx.extra.get(PER_MESSAGE):
                self.telemetry.record(ctx, scope)

    def submit(self, ctx: RequestContext) -> None:
        """Price and log a finished request that did not pass through ``__call__``."""
        self.telemetry.finish(ctx, None)

    async def flush(self) -> None:
        """Wait until every row queued so far is written (the admin API calls this before reading)."""
        await self.telemetry.flush()

    def stats(self) -> dict[str, Any]:
        return self.telemetry.stats()

    async def aclose(self) -> None:
        """Write what is queued (bounded wait), stop the writer and close the store."""
        await self.telemetry.aclose()
