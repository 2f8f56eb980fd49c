"""Trace context: the gateway's server span joins the caller's trace.

Sources, strongest first: ``cf-aig-otel-trace-id`` / ``cf-aig-otel-parent-span-id`` (explicit, as on
Cloudflare), a span already active in the task (the host app's own instrumentation), then the
configured propagators (W3C ``traceparent``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aigw_asgi.config import TelemetryConfig
from aigw_asgi.context import ensure_context
from aigw_asgi.telemetry.otel import OTelRecorder

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER_PARENT = "b7ad6b7169203331"


@pytest.fixture
def traced() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def server_span(
    traced: tuple[TracerProvider, InMemorySpanExporter], headers: list[tuple[bytes, bytes]]
) -> ReadableSpan:
    provider, exporter = traced
    recorder = OTelRecorder(TelemetryConfig(), tracer_provider=provider)
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/openai/chat/completions", "headers": headers}
    ctx = ensure_context(scope, "gw")
    recorder.finish(recorder.start(ctx, scope), ctx)
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    return span


def test_w3c_traceparent(traced) -> None:
    span = server_span(traced, [(b"traceparent", f"00-{TRACE}-{PARENT}-01".encode())])
    assert span.context.trace_id == int(TRACE, 16)
    assert span.parent is not None and span.parent.span_id == int(PARENT, 16) and span.parent.is_remote


def test_cloudflare_headers(traced) -> None:
    span = server_span(
        traced, [(b"cf-aig-otel-trace-id", TRACE.encode()), (b"cf-aig-otel-parent-span-id", PARENT.encode())]
    )
    assert span.context.trace_id == int(TRACE, 16)
    assert span.parent is not None and span.parent.span_id == int(PARENT, 16)


def test_cloudflare_trace_id_alone_still_joins_the_trace(traced) -> None:
    span = server_span(traced, [(b"cf-aig-otel-trace-id", TRACE.encode())])
    assert span.context.trace_id == int(TRACE, 16)
    assert span.parent is not None and span.parent.span_id != 0  # a synthetic remote parent


def test_cloudflare_headers_win_over_traceparent(traced) -> None:
    span = server_span(
        traced,
        [
            (b"traceparent", f"00-{OTHER_TRACE}-{OTHER_PARENT}-01".encode()),
            (b"cf-aig-otel-trace-id", TRACE.encode()),
            (b"cf-aig-otel-parent-span-id", PARENT.encode()),
        ],
    )
    assert span.context.trace_id == int(TRACE, 16)
    assert span.parent is not None and span.parent.span_id == int(PARENT, 16)


def test_active_host_span_is_the_parent(traced) -> None:
    """Mounted in an instrumented host app, the gateway span nests under the host's server span
    (which itself already continued any incoming traceparent)."""
    provider, _ = traced
    with provider.get_tracer("host").start_as_current_span("host request") as host:
        span = server_span(traced, [(b"traceparent", f"00-{OTHER_TRACE}-{OTHER_PARENT}-01".encode())])
    assert span.context.trace_id == host.get_span_context().trace_id
    assert span.parent is not None and span.parent.span_id == host.get_span_context().span_id


def test_invalid_cloudflare_header_starts_a_new_trace(traced) -> None:
    # The request itself gets its 400 from whichever layer reads the options; tracing must not fail.
    span = server_span(traced, [(b"cf-aig-otel-trace-id", b"not-hex")])
    assert span.parent is None and span.context.trace_id != 0


def test_no_context_is_a_root_span(traced) -> None:
    span = server_span(traced, [])
    assert span.parent is None
