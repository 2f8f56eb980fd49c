"""Telemetry: what happens to every finished request — priced, handed to OpenTelemetry, logged.

One object, built before the pipeline, shared by the two places requests finish: the
`TelemetryMiddleware` (HTTP requests) and the WebSocket API (each message on a socket, which
never passes through a middleware of its own). Building it first is what lets `Gateway` hand it
to both without patching either after construction.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..config import Config, validate
from ..context import RequestContext
from ..redact import Redactor, config_secrets, redact_labels
from ..types import Scope
from .cost import PriceTable
from .records import RecordSettings, apply_cost
from .stores import LogStore, make_store
from .writer import LogWriter

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

logger = logging.getLogger("aigw_asgi.telemetry")


class OTelHooks(Protocol):
    """What the recorder needs from OpenTelemetry: `aigw_asgi.telemetry.otel.OTelRecorder`."""

    def start(self, ctx: RequestContext, scope: Scope) -> Any: ...

    def finish(self, handle: Any, ctx: RequestContext) -> None: ...


class Telemetry:
    """``Telemetry(config, store=..., otel=..., prices=..., tracer_provider=..., meter_provider=...)``.

    ``store``: a `LogStore` (default: the one ``logs.store`` names). ``prices``: a `PriceTable`
    (default: the built-in table plus ``[prices]`` from the config). ``otel``: an object with
    ``start(ctx, scope)``/``finish(handle, ctx)`` (default: `OTelRecorder` when
    ``telemetry.otel`` is on, built with ``tracer_provider``/``meter_provider`` or the globals).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        store: LogStore | None = None,
        otel: OTelHooks | None = None,
        prices: PriceTable | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.config = config if config is not None else validate(Config())
        logs = self.config.logs
        self.logging = logs.enabled
        self.prices = prices if prices is not None else PriceTable(self.config.prices)
        self._redactor = _redactor(self.config)
        settings = RecordSettings(
            collect_payload=logs.collect_payload,
            max_body_bytes=logs.max_body_bytes,
            prices=self.prices,
            redactor=self._redactor,
        )
        if store is None:
            store = make_store(logs, self.config.gateway.id, self._redactor.secrets)
        self.writer = LogWriter.from_config(logs, store, settings)
        self.otel = otel if otel is not None else _make_otel(self.config, tracer_provider, meter_provider)

    @property
    def store(self) -> LogStore:
        return self.writer.store

    def start(self, ctx: RequestContext, scope: Scope) -> Any:
        """The OTel handle of a request that starts (``None`` when nothing records)."""
        otel = self.otel
        return otel.start(ctx, scope) if otel is not None else None

    def finish(self, ctx: RequestContext, handle: Any) -> None:
        """A request ended (its answer is complete, streams included): price, trace, log. Never raises."""
        if ctx.ended is None:
            ctx.ended = time.perf_counter()
        # The price feeds log rows and spans only: with both off, nobody would read it.
        if self.logging or self.otel is not None:
            try:
                apply_cost(ctx, self.prices)
            except Exception:  # pricing must never break a response
                logger.exception("could not compute the cost of a request")
            try:
                redact_labels(ctx, self._redactor)  # event id and metadata are stored and exported
            except Exception:
                logger.exception("could not redact a request's labels")
        otel = self.otel
        if handle is not None and otel is not None:
            try:
                otel.finish(handle, ctx)
            except Exception:
                logger.exception("OpenTelemetry recorder failed")
        if self.logging:
            self.writer.submit(ctx)

    def record(self, ctx: RequestContext, scope: Scope) -> None:
        """A request that did not pass through the middleware (a WebSocket message), all at once."""
        try:
            handle = self.start(ctx, scope)
        except Exception:
            logger.exception("OpenTelemetry recorder failed")
            handle = None
        self.finish(ctx, handle)

    async def flush(self) -> None:
        await self.writer.flush()

    def stats(self) -> dict[str, Any]:
        return self.writer.stats()

    async def aclose(self) -> None:
        await self.writer.aclose()


def _redactor(config: Config) -> Redactor:
    return Redactor(config_secrets(config))


def _make_otel(
    config: Config, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> OTelHooks | None:
    if not config.telemetry.otel:
        return None
    # opentelemetry-api is a core dependency: if it cannot be imported the install is broken, and
    # the operator who turned ``telemetry.otel`` on must hear it, not get silently no telemetry.
    try:
        from .otel import OTelRecorder
    except ImportError as exc:
        raise ImportError(
            f"telemetry.otel is on but OpenTelemetry cannot be imported ({exc}); "
            "reinstall opentelemetry-api or set telemetry.otel = false"
        ) from exc
    return OTelRecorder(config.telemetry, tracer_provider=tracer_provider, meter_provider=meter_provider)
