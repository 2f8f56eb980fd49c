"""`otel_providers`: whether a provider records, and the caller's trace headers read from raw ASGI headers."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.propagate import get_global_textmap
from opentelemetry.sdk.trace import TracerProvider

from aigw_asgi.telemetry.otel_providers import HEADERS_GETTER, propagation_fields, recording_state

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_recording_state_tells_noop_proxy_and_sdk_apart() -> None:
    proxy, noop = trace.ProxyTracerProvider, trace.NoOpTracerProvider
    assert recording_state(trace.NoOpTracerProvider(), proxy, noop) is False
    assert recording_state(trace.ProxyTracerProvider(), proxy, noop) is None  # records once an SDK is set
    assert recording_state(TracerProvider(), proxy, noop) is True


def test_header_getter_reads_raw_headers_case_insensitively() -> None:
    headers = [(b"traceparent", TRACEPARENT.encode()), (b"x-a", b"1"), (b"x-a", b"2")]
    assert HEADERS_GETTER.get(headers, "TraceParent") == [TRACEPARENT]
    assert HEADERS_GETTER.get(headers, "x-a") == ["1", "2"]
    assert HEADERS_GETTER.get(headers, "tracestate") is None
    assert HEADERS_GETTER.keys(headers) == ["traceparent", "x-a", "x-a"]


def test_propagation_fields_are_the_propagators_header_names() -> None:
    fields = propagation_fields(get_global_textmap())
    assert b"traceparent" in fields and b"baggage" in fields

    class Unlisted:  # a propagator that does not say what it reads: always extract
        @property
        def fields(self) -> set[str]:
            raise NotImplementedError

    assert propagation_fields(Unlisted()) == frozenset()
