"""OpenTelemetry for the gateway: spans and metrics made from the finished request context.

Nothing here touches the hot path while a request runs. `OTelRecorder.start` opens the SERVER
span when the request arrives (so its parent is the caller's trace); `OTelRecorder.finish`, called
once the answer is complete, reads the `RequestContext` and writes everything else after the
fact: one CLIENT span ``"{operation} {model}"`` per upstream attempt, with the attempt's real
start and end times, and the metrics. Writing the client spans afterwards costs nothing while
bytes stream, and retries/fallbacks are already known by then.

Only ``opentelemetry-api`` is needed: with no SDK configured every call is a cheap no-op. The
providers are injectable (tests use in-memory exporters) and default to the global ones, which
``aigw serve`` sets up from the standard ``OTEL_*`` variables (`otlp.configure_from_env`).

Never on a span: provider keys, gateway tokens, bodies (unless ``telemetry.capture_content``).

Beside it: `otel_names` (the operation and provider names, pure tables), `otel_providers`
(whether the API's providers record, the header getter for propagation), `otel_content` (the
captured messages).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider, get_meter_provider
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .._version import __version__
from ..config import TelemetryConfig
from ..context import RequestContext, Usage
from ..errors import GatewayError
from ..types import Scope
from . import semconv as sc
from .otel_content import content_attributes
from .otel_names import operation_name, provider_name
from .otel_providers import (
    HEADERS_GETTER,
    ProxyMeterProvider,
    global_provider,
    metrics_api,
    propagation_fields,
    recording_state,
)

__all__ = ["OTelRecorder", "operation_name", "provider_name"]

logger = logging.getLogger("aigw_asgi")

_SCOPE = "aigw_asgi"


@dataclass(slots=True)
class _Handle:
    """What `start` gives `finish`: the server span and a wall/perf_counter anchor taken together,
    so every perf_counter timing in the context converts to epoch nanoseconds consistently."""

    span: Span | None  # None: no tracer provider records spans (metrics only)
    wall_ns: int
    perf: float
    metering: bool = True  # a meter provider records: metrics are due even for an unsampled span

    def ns(self, perf: float) -> int:
        return self.wall_ns + int((perf - self.perf) * 1e9)


class OTelRecorder:
    """Turns request contexts into spans and metrics. Build it once; it holds no per-request state."""

    def __init__(
        self,
        config: TelemetryConfig | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.config = config or TelemetryConfig()
        self.enabled = self.config.otel
        self.capture_content = self.config.capture_content
        tp = tracer_provider or trace.get_tracer_provider()
        mp = meter_provider or get_meter_provider()
        # Whether spans / metrics go anywhere: see `recording_state`.
        self._tracing = recording_state(tp, trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self._metering = recording_state(mp, ProxyMeterProvider, NoOpMeterProvider)
        self._textmap: Any = None
        self._fields: frozenset[bytes] = frozenset()
        self.tracer = tp.get_tracer(_SCOPE, __version__)
        meter = mp.get_meter(_SCOPE, __version__)
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration (one per upstream attempt).",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used, as the provider reported them.",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS,
        )
        self.ttfc = meter.create_histogram(
            sc.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the upstream request to the first chunk of a streamed answer.",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS,
        )
        self.requests = meter.create_counter(
            sc.METRIC_REQUESTS,
            unit="{request}",
            description="Requests answered by the gateway, by status, provider, model and cache status.",
        )

    # -- request start ----------------------------------------------------------------------------

    def _active(self) -> tuple[bool, bool]:
        """(tracing, metering): whether an SDK would receive spans / metrics right now."""
        tracing, metering = self._tracing, self._metering
        if tracing is None:
            provider = global_provider(trace, "_TRACER_PROVIDER", trace.get_tracer_provider)
            if provider is not None and recording_state(provider, trace.ProxyTracerProvider, trace.NoOpTracerProvider):
                self._tracing = tracing = True  # a global provider is set once and for all
        if metering is None:
            provider = global_provider(metrics_api, "_METER_PROVIDER", get_meter_provider)
            if provider is not None and recording_state(provider, ProxyMeterProvider, NoOpMeterProvider):
                self._metering = metering = True
        return bool(tracing), bool(metering)

    def start(self, ctx: RequestContext, scope: Scope) -> _Handle | None:
        """Open the SERVER span (named ``{method}`` until the route is known at `finish`).

        ``None`` (and `finish` does nothing) when neither spans nor metrics would go anywhere:
        with the OpenTelemetry API alone, no SDK, a request costs two ``isinstance`` checks.
        """
        if not self.enabled:
            return None
        tracing, metering = self._active()
        if not tracing:
            return _Handle(None, time.time_ns(), time.perf_counter()) if metering else None
        perf, wall_ns = time.perf_counter(), time.time_ns()
        attributes: dict[str, Any] = {
            sc.HTTP_REQUEST_METHOD: ctx.method,
            sc.URL_PATH: scope.get("path", ctx.path),
            sc.URL_SCHEME: scope.get("scheme", "http"),
            sc.AIGW_GATEWAY_ID: ctx.gateway_id,
        }
        if ctx.client_ip:
            attributes[sc.CLIENT_ADDRESS] = ctx.client_ip
        if ctx.user_agent:
            attributes[sc.USER_AGENT_ORIGINAL] = ctx.user_agent
        span = self.tracer.start_span(
            ctx.method,
            context=self._parent(ctx),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=wall_ns - int((perf - ctx.started) * 1e9),
        )
        return _Handle(span, wall_ns, perf, metering)

    def _parent(self, ctx: RequestContext) -> Any:
        """The caller's trace: ``cf-aig-otel-*`` (explicit) first, then a span already active in this
        task (a host app's own instrumentation), then the propagators (W3C ``traceparent``)."""
        try:
            options = ctx.options
        except GatewayError:
            options = None  # the request will get its 400 elsewhere; trace it as a new root
        if options is not None and options.otel_trace_id:
            span_id = options.otel_parent_span_id
            # OTel cannot start a root span inside a given trace: with only a trace id the span
            # hangs under a synthetic remote parent, which trace UIs show as "missing parent".
            parent_id = int(span_id, 16) if span_id else (int.from_bytes(os.urandom(8), "big") or 1)
            parent = SpanContext(
                trace_id=int(options.otel_trace_id, 16),
                span_id=parent_id,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            return trace.set_span_in_context(NonRecordingSpan(parent))
        if trace.get_current_span().get_span_context().is_valid:
            return None  # start_span uses the current context
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._textmap, self._fields = textmap, propagation_fields(textmap)
        fields = self._fields
        if fields and not any(key in fields for key, _ in ctx.headers):
            return None  # no propagation header: a root span (what extracting nothing gives)
        return propagate.extract(ctx.headers, getter=HEADERS_GETTER)

    def record(self, ctx: RequestContext, scope: dict[str, Any] | None = None) -> None:
        """Trace a finished request that never went through `start` (a WebSocket message):
        its spans still carry their real times, from the context's own clock readings."""
        self.finish(self.start(ctx, scope or {}), ctx)

    # -- request end ------------------------------------------------------------------------------

    def finish(self, handle: _Handle | None, ctx: RequestContext) -> None:
        """Write the client spans and metrics, then end the server span. Never raises."""
        if handle is None:
            return
        end_ns = time.time_ns()
        span = handle.span
        try:
            answer = ctx.answer
            recording = span is not None and span.is_recording()
            if not recording and not handle.metering:
                # A trace the sampler dropped and no meter provider: nothing here would be kept,
                # so none of it is built (a sampled-out request costs the sampler's decision only).
                return
            parent = trace.set_span_in_context(span) if span is not None and recording else None
            for part in ctx.children or (ctx,):  # a universal request calls upstream only in its steps
                if part.upstream_host is not None and part.cache_status != "HIT":
                    self._upstream(handle, part, parent, recording)
            if span is not None:
                self._server(span, ctx, answer, recording)
            if not handle.metering:
                return  # spans only: the API's no-op instruments would drop the samples
            requests: dict[str, str | int] = {sc.AIGW_CACHE_STATUS: ctx.cache_status}
            if ctx.status_code is not None:
                requests[sc.HTTP_RESPONSE_STATUS_CODE] = ctx.status_code
            if answer.provider:
                requests[sc.AIGW_PROVIDER] = answer.provider
                requests[sc.GEN_AI_PROVIDER_NAME] = provider_name(answer.provider)
            if answer.model:
                requests[sc.GEN_AI_REQUEST_MODEL] = answer.model
            self.requests.add(1, requests)
        except Exception:  # telemetry must never break a request that has already been answered
            logger.exception("aigw: could not record OpenTelemetry data")
        finally:
            if span is not None:
                span.end(end_time=end_ns)

    def _server(self, span: Span, ctx: RequestContext, answer: RequestContext, recording: bool) -> None:
        status = ctx.status_code
        if answer.provider:
            route = f"/{answer.provider}/{{path}}"  # slugs come from the config: low cardinality
        elif ctx.children or ctx.path == "/":
            route = "/"
        else:
            route = None
        if route is not None:
            span.update_name(f"{ctx.method} {route}")
        failed = status is None or status >= 500
        error_type = ctx.error_type or (str(status) if status is not None and status >= 500 else None)
        if failed:
            span.set_status(Status(StatusCode.ERROR, ctx.error_type or None))
        if not recording:
            return
        attributes: dict[str, Any] = {
            sc.AIGW_CACHE_STATUS: ctx.cache_status,
            sc.AIGW_STEP: answer.step,
            sc.AIGW_LOG_ID: answer.log_id,
            sc.AIGW_EVENT_ID: ctx.event_id,
            sc.AIGW_REQUEST_ID: ctx.request_id,
        }
        if route is not None:
            attributes[sc.HTTP_ROUTE] = route
        if status is not None:
            attributes[sc.HTTP_RESPONSE_STATUS_CODE] = status
        if error_type:
            attributes[sc.ERROR_TYPE] = error_type
        if answer.provider:
            attributes[sc.AIGW_PROVIDER] = answer.provider
            attributes[sc.GEN_AI_PROVIDER_NAME] = provider_name(answer.provider)
            attributes[sc.GEN_AI_OPERATION_NAME] = _operation(answer)
        if answer.model:
            attributes[sc.GEN_AI_REQUEST_MODEL] = answer.model
        if answer.response_model:
            attributes[sc.GEN_AI_RESPONSE_MODEL] = answer.response_model
        _usage_attributes(attributes, answer.usage)
        cost = ctx.cost
        if cost is None and ctx.children:
            costs = [c.cost for c in ctx.children if c.cost is not None]
            cost = sum(costs) if costs else None
        if cost is not None:
            attributes[sc.AIGW_COST] = cost
        if ctx.token_name:
            attributes[sc.AIGW_TOKEN_NAME] = ctx.token_name
        if ctx.rate_limited_by:
            attributes[sc.AIGW_RATE_LIMITED_BY] = ctx.rate_limited_by
        if ctx.error_code is not None:
            attributes[sc.AIGW_ERROR_CODE] = ctx.error_code
        for key, value in ctx.metadata.items():
            attributes[sc.AIGW_METADATA_PREFIX + key] = value
        span.set_attributes(attributes)

    def _upstream(self, handle: _Handle, ctx: RequestContext, parent: Any, recording: bool) -> None:
        """One CLIENT span and one duration sample per upstream attempt of ``ctx``."""
        base: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: _operation(ctx),
            sc.GEN_AI_PROVIDER_NAME: provider_name(ctx.provider),
        }
        if ctx.upstream_host:
            base[sc.SERVER_ADDRESS] = ctx.upstream_host
            if ctx.upstream_port is not None:
                base[sc.SERVER_PORT] = ctx.upstream_port
        for failed in ctx.attempts:
            status = failed.status_code
            self._attempt(
                handle, ctx, parent, recording, base, None,
                model=failed.model, attempt=failed.attempt, log_id=failed.log_id, started=failed.started,
                ended=failed.ended, usage=failed.usage, status_code=status,
                error=failed.error_type or (str(status) if status else sc.OTHER),
            )  # fmt: skip
        status = ctx.status_code
        self._attempt(
            handle, ctx, parent, recording, base, ctx,
            model=ctx.model, attempt=ctx.attempt, log_id=ctx.log_id, started=ctx.started,
            ended=ctx.ended if ctx.ended is not None else time.perf_counter(), usage=ctx.usage, status_code=status,
            error=ctx.error_type or (str(status) if status is not None and status >= 400 else None),
        )  # fmt: skip

    def _attempt(
        self,
        handle: _Handle,
        ctx: RequestContext,
        parent: Any,
        recording: bool,
        base: dict[str, Any],
        final: RequestContext | None,
        *,
        model: str | None,
        attempt: int,
        log_id: str,
        started: float,
        ended: float,
        usage: Usage,
        status_code: int | None,
        error: str | None,
    ) -> None:
        """Emit one attempt: its span and metric samples. ``final`` is set for the attempt that
        answered (it alone knows the response model, the stream timings, the cost)."""
        metric = dict(base)
        if model:
            metric[sc.GEN_AI_REQUEST_MODEL] = model
        if final is not None and final.response_model:
            metric[sc.GEN_AI_RESPONSE_MODEL] = final.response_model
        ttfc = None
        if final is not None and final.stream and final.first_byte is not None:
            ttfc = max(final.first_byte - started, 0.0)
        if recording:
            attributes = dict(metric)
            attributes[sc.AIGW_PROVIDER] = ctx.provider
            attributes[sc.AIGW_STEP] = ctx.step
            attributes[sc.AIGW_ATTEMPT] = attempt
            attributes[sc.AIGW_LOG_ID] = log_id
            attributes[sc.AIGW_CACHE_STATUS] = ctx.cache_status
            if status_code is not None:
                attributes[sc.HTTP_RESPONSE_STATUS_CODE] = status_code
            if error:
                attributes[sc.ERROR_TYPE] = error
            _usage_attributes(attributes, usage)
            if final is not None:
                if final.stream:
                    attributes[sc.GEN_AI_REQUEST_STREAM] = True
                if ttfc is not None:
                    attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
                if final.cost is not None:
                    attributes[sc.AIGW_COST] = final.cost
                if self.capture_content:
                    content_attributes(attributes, final)
            op = base[sc.GEN_AI_OPERATION_NAME]
            span = self.tracer.start_span(
                f"{op} {model}" if model else op,
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=handle.ns(started),
            )
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(end_time=handle.ns(ended))
        if not handle.metering:
            return
        if usage.tokens_in is not None:
            self.tokens.record(usage.tokens_in, {**metric, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_INPUT})
        if usage.tokens_out is not None:
            self.tokens.record(usage.tokens_out, {**metric, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_OUTPUT})
        if ttfc is not None:
            self.ttfc.record(ttfc, metric)
        if error:
            metric[sc.ERROR_TYPE] = error
        self.duration.record(max(ended - started, 0.0), metric)


def _operation(ctx: RequestContext) -> str:
    """`operation_name` for a context; the body is consulted (parsed once, as the router already
    did for JSON) only when the path says nothing."""
    op = operation_name(ctx.endpoint)
    if op == sc.OTHER and ctx.body and ctx.body[:1] == b"{":
        op = operation_name(None, ctx.json())
    return op


def _usage_attributes(attributes: dict[str, Any], usage: Usage) -> None:
    if usage.tokens_in is not None:
        attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.tokens_in
    if usage.tokens_out is not None:
        attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.tokens_out
    if usage.cached_tokens_in is not None:
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens_in
    if usage.reasoning_tokens_out is not None:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens_out
