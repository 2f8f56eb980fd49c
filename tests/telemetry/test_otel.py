"""OTelRecorder driven directly with hand-made contexts, read back through in-memory exporters.

Providers are built per test and injected; the global OTel providers are never set.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aigw_asgi.config import TelemetryConfig
from aigw_asgi.context import RequestContext, Usage, ensure_context
from aigw_asgi.telemetry import semconv as sc
from aigw_asgi.telemetry.otel import OTelRecorder


@dataclass
class Otel:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def recorder(self, **config: Any) -> OTelRecorder:
        return OTelRecorder(
            TelemetryConfig(**config), tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def finished(self) -> tuple[ReadableSpan, list[ReadableSpan]]:
        """(the server span, the client spans in start order)."""
        spans = self.spans.get_finished_spans()
        servers = [s for s in spans if s.kind == SpanKind.SERVER]
        assert len(servers) == 1, [s.name for s in spans]
        clients = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
        assert len(servers) + len(clients) == len(spans)
        return servers[0], clients

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(tracer_provider, meter_provider, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def request(path: str = "/openai/chat/completions", headers: list[tuple[bytes, bytes]] | None = None) -> tuple:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "headers": headers or [(b"user-agent", b"test-agent/1")],
        "client": ("10.1.2.3", 50000),
    }
    ctx = ensure_context(scope, "gw")
    ctx.started -= 0.3  # the request arrived a while ago, so every timing below lies in the past
    ctx.started_at -= 0.3
    return ctx, scope


def answered(
    ctx: RequestContext,
    *,
    provider: str = "openai",
    endpoint: str = "chat/completions",
    model: str = "gpt-4o-mini",
    status: int = 200,
    host: str = "api.openai.com",
) -> RequestContext:
    """Fill ``ctx`` as the router does after an upstream answer."""
    ctx.provider, ctx.endpoint, ctx.model = provider, endpoint, model
    ctx.response_model = f"{model}-2025" if status < 400 else None
    ctx.upstream_host, ctx.upstream_port = host, 443
    ctx.status_code = status
    if status < 400:
        ctx.usage = Usage(tokens_in=12, tokens_out=5, cached_tokens_in=2)
    else:
        ctx.error_type = str(status)
    ctx.ended = time.perf_counter()
    ctx.first_byte = ctx.started + (ctx.ended - ctx.started) / 4
    return ctx


def test_one_request_one_server_and_one_client_span(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request()
    ctx.token_name = "team-a"
    ctx.gateway_token = "gw-secret-token"
    handle = recorder.start(ctx, scope)
    answered(ctx)
    ctx.cost = 0.0042
    recorder.finish(handle, ctx)

    server, clients = otel.finished()
    assert server.name == "POST /openai/{path}"
    attrs = dict(server.attributes or {})
    assert attrs[sc.HTTP_REQUEST_METHOD] == "POST"
    assert attrs[sc.HTTP_ROUTE] == "/openai/{path}"
    assert attrs[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert attrs[sc.CLIENT_ADDRESS] == "10.1.2.3"
    assert attrs[sc.USER_AGENT_ORIGINAL] == "test-agent/1"
    assert attrs[sc.AIGW_CACHE_STATUS] == "MISS"
    assert attrs[sc.AIGW_LOG_ID] == ctx.log_id
    assert attrs[sc.AIGW_TOKEN_NAME] == "team-a"
    assert attrs[sc.AIGW_COST] == 0.0042
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert server.status.status_code == StatusCode.UNSET

    (client,) = clients
    assert client.name == "chat gpt-4o-mini"
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.context.trace_id == server.context.trace_id
    cattrs = dict(client.attributes or {})
    assert cattrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert cattrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert cattrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert cattrs[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2025"
    assert cattrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert cattrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert cattrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2
    assert cattrs[sc.SERVER_ADDRESS] == "api.openai.com" and cattrs[sc.SERVER_PORT] == 443
    assert cattrs[sc.AIGW_LOG_ID] == ctx.log_id and cattrs[sc.AIGW_ATTEMPT] == 1 and cattrs[sc.AIGW_STEP] == 0
    assert cattrs[sc.AIGW_COST] == 0.0042
    assert sc.ERROR_TYPE not in cattrs and sc.GEN_AI_REQUEST_STREAM not in cattrs
    assert client.status.status_code == StatusCode.UNSET
    # The client span has the attempt's real times, inside the server span.
    assert client.start_time is not None and client.end_time is not None
    assert server.start_time is not None and server.end_time is not None
    assert abs((client.end_time - client.start_time) - (ctx.ended - ctx.started) * 1e9) < 1_000
    assert server.start_time <= client.start_time and client.end_time <= server.end_time

    # No secret, no body anywhere.
    everything = repr([dict(s.attributes or {}) for s in (server, client)])
    assert "gw-secret-token" not in everything and "messages" not in everything

    (duration,) = otel.points(sc.METRIC_OPERATION_DURATION)
    assert duration.count == 1 and duration.sum == pytest.approx(ctx.ended - ctx.started)
    assert list(duration.explicit_bounds) == list(sc.DURATION_BUCKETS)
    assert dict(duration.attributes) == {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2025",
        sc.SERVER_ADDRESS: "api.openai.com",
        sc.SERVER_PORT: 443,
    }
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p for p in otel.points(sc.METRIC_TOKEN_USAGE)}
    assert tokens["input"].sum == 12 and tokens["output"].sum == 5
    assert list(tokens["input"].explicit_bounds) == list(sc.TOKEN_BUCKETS)
    (requests,) = otel.points(sc.METRIC_REQUESTS)
    assert requests.value == 1
    assert dict(requests.attributes) == {
        sc.AIGW_CACHE_STATUS: "MISS",
        sc.HTTP_RESPONSE_STATUS_CODE: 200,
        sc.AIGW_PROVIDER: "openai",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    }
    assert otel.points(sc.METRIC_TIME_TO_FIRST_CHUNK) == []  # not a stream


def test_retries_make_one_client_span_per_attempt(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    ctx.provider, ctx.endpoint, ctx.model = "openai", "chat/completions", "gpt-4o-mini"
    ctx.upstream_host, ctx.upstream_port = "api.openai.com", 443
    first_log_id = ctx.log_id
    ctx.next_attempt(status_code=429, error="upstream 429", error_type="429")
    ctx.next_attempt(status_code=504, error="timeout", error_type="timeout")
    answered(ctx)
    recorder.finish(handle, ctx)

    server, clients = otel.finished()
    assert [c.attributes[sc.AIGW_ATTEMPT] for c in clients] == [1, 2, 3]
    assert clients[0].attributes[sc.AIGW_LOG_ID] == first_log_id
    assert len({c.attributes[sc.AIGW_LOG_ID] for c in clients}) == 3
    assert clients[2].attributes[sc.AIGW_LOG_ID] == ctx.log_id == server.attributes[sc.AIGW_LOG_ID]
    assert [c.attributes.get(sc.ERROR_TYPE) for c in clients] == ["429", "timeout", None]
    assert [c.status.status_code for c in clients] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert clients[0].attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429
    assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in clients)
    for earlier, later in zip(clients, clients[1:], strict=False):
        assert earlier.end_time is not None and later.start_time is not None
        assert earlier.end_time <= later.start_time
    # Only the answering attempt knows the response model.
    assert sc.GEN_AI_RESPONSE_MODEL not in clients[0].attributes
    assert clients[2].attributes[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2025"

    durations = otel.points(sc.METRIC_OPERATION_DURATION)
    by_error = {p.attributes.get(sc.ERROR_TYPE): p.count for p in durations}
    assert by_error == {"429": 1, "timeout": 1, None: 1}
    (requests,) = otel.points(sc.METRIC_REQUESTS)
    assert requests.value == 1  # one client request, however many attempts


def test_universal_steps_each_get_their_attempts(otel: Otel) -> None:
    recorder = otel.recorder()
    parent, scope = request(path="/")
    handle = recorder.start(parent, scope)
    step0 = RequestContext(gateway_id="gw", method="POST", path="/openai/chat/completions", headers=[])
    step0.parent, step0.step = parent, 0
    answered(step0, status=503)
    step0.cost = 0.0
    step1 = RequestContext(gateway_id="gw", method="POST", path="/anthropic/v1/messages", headers=[])
    step1.parent, step1.step = parent, 1
    step1.model = "claude-fake-1"
    step1.next_attempt(status_code=529, error="overloaded", error_type="529")
    answered(step1, provider="anthropic", endpoint="v1/messages", model="claude-fake-1", host="api.anthropic.com")
    step1.cost = 0.01
    parent.children = [step0, step1]
    parent.status_code = 200
    parent.log_id = step1.log_id
    recorder.finish(handle, parent)

    server, clients = otel.finished()
    assert server.name == "POST /anthropic/{path}"
    assert server.attributes[sc.AIGW_STEP] == 1
    assert server.attributes[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert server.attributes[sc.AIGW_COST] == pytest.approx(0.01)
    summary = [
        (c.name, c.attributes[sc.AIGW_STEP], c.attributes[sc.AIGW_ATTEMPT], c.attributes.get(sc.ERROR_TYPE))
        for c in clients
    ]
    assert summary == [
        ("chat gpt-4o-mini", 0, 1, "503"),
        ("chat claude-fake-1", 1, 1, "529"),
        ("chat claude-fake-1", 1, 2, None),
    ]
    assert clients[2].attributes[sc.SERVER_ADDRESS] == "api.anthropic.com"
    assert clients[2].attributes[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    (requests,) = otel.points(sc.METRIC_REQUESTS)
    assert requests.attributes[sc.AIGW_PROVIDER] == "anthropic"


def test_cache_hit_is_a_server_span_only(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    ctx.provider, ctx.model, ctx.cache_status, ctx.status_code = "openai", "gpt-4o-mini", "HIT", 200
    recorder.finish(handle, ctx)

    server, clients = otel.finished()
    assert clients == []
    assert server.attributes[sc.AIGW_CACHE_STATUS] == "HIT"
    assert server.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert otel.points(sc.METRIC_OPERATION_DURATION) == []  # no upstream operation happened
    (requests,) = otel.points(sc.METRIC_REQUESTS)
    assert requests.attributes[sc.AIGW_CACHE_STATUS] == "HIT"


def test_stream_records_time_to_first_chunk(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    answered(ctx)
    ctx.stream = True
    recorder.finish(handle, ctx)

    _, (client,) = otel.finished()
    assert client.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    expected = ctx.first_byte - ctx.started
    assert client.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == pytest.approx(expected)
    (ttfc,) = otel.points(sc.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(expected)
    assert ttfc.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"


def test_upstream_timeout_is_an_error_on_both_spans(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    answered(ctx, status=504)
    ctx.error_type, ctx.error_code, ctx.usage = "timeout", 2006, Usage()
    recorder.finish(handle, ctx)

    server, (client,) = otel.finished()
    assert client.status.status_code == StatusCode.ERROR
    assert client.attributes[sc.ERROR_TYPE] == "timeout"
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes[sc.ERROR_TYPE] == "timeout"
    assert server.attributes[sc.AIGW_ERROR_CODE] == 2006
    assert otel.points(sc.METRIC_TOKEN_USAGE) == []  # unknown counts are never reported
    (duration,) = otel.points(sc.METRIC_OPERATION_DURATION)
    assert duration.attributes[sc.ERROR_TYPE] == "timeout"


def test_gateway_refusal_has_no_client_span_and_is_not_a_server_error(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    ctx.status_code, ctx.error_type, ctx.error_code = 401, "Unauthorized", 2009
    recorder.finish(handle, ctx)

    server, clients = otel.finished()
    assert clients == []
    assert server.name == "POST"  # no provider resolved: no route
    assert server.status.status_code == StatusCode.UNSET  # 4xx is the client's problem (HTTP semconv)
    assert server.attributes[sc.ERROR_TYPE] == "Unauthorized"
    (requests,) = otel.points(sc.METRIC_REQUESTS)
    assert dict(requests.attributes) == {sc.AIGW_CACHE_STATUS: "MISS", sc.HTTP_RESPONSE_STATUS_CODE: 401}


def test_content_is_captured_only_when_asked(otel: Otel) -> None:
    body = (
        b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},'
        b'{"role":"user","content":"hello there"}]}'
    )
    answer = b'{"choices":[{"message":{"role":"assistant","content":"hi!"},"finish_reason":"stop"}]}'
    for capture in (False, True):
        recorder = otel.recorder(capture_content=capture)
        ctx, scope = request()
        handle = recorder.start(ctx, scope)
        ctx.body, ctx.response_body = body, answer
        answered(ctx)
        recorder.finish(handle, ctx)
    spans = [s for s in otel.spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    off, on = (dict(s.attributes or {}) for s in spans)
    assert not any(key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system")) for key in off)
    assert "hello there" not in repr(off)
    assert on[sc.GEN_AI_INPUT_MESSAGES] == '[{"role": "user", "parts": [{"type": "text", "content": "hello there"}]}]'
    assert on[sc.GEN_AI_SYSTEM_INSTRUCTIONS] == '[{"type": "text", "content": "be brief"}]'
    assert json.loads(on[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hi!"}], "finish_reason": "stop"}
    ]


def test_metadata_becomes_attributes(otel: Otel) -> None:
    recorder = otel.recorder()
    ctx, scope = request(headers=[(b"cf-aig-metadata", b'{"team":"AI","user":12345}')])
    handle = recorder.start(ctx, scope)
    answered(ctx)
    recorder.finish(handle, ctx)
    server, _ = otel.finished()
    assert server.attributes["aigw.metadata.team"] == "AI"
    assert server.attributes["aigw.metadata.user"] == 12345


def test_record_after_the_fact(otel: Otel) -> None:
    """WebSocket messages are traced once finished: the spans still get the request's real times."""
    recorder = otel.recorder()
    ctx, _ = request()
    answered(ctx)
    recorder.record(ctx)
    server, (client,) = otel.finished()
    assert server.start_time is not None and client.start_time is not None and client.end_time is not None
    assert server.start_time <= client.start_time <= client.end_time
    assert abs((client.end_time - client.start_time) - (ctx.ended - ctx.started) * 1e9) < 1_000
    assert server.end_time is not None and server.end_time - server.start_time >= 300_000_000


def test_disabled_records_nothing(otel: Otel) -> None:
    recorder = otel.recorder(otel=False)
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    assert handle is None
    recorder.finish(handle, answered(ctx))
    assert otel.spans.get_finished_spans() == ()
    assert otel.points(sc.METRIC_REQUESTS) == []


def test_global_noop_providers_by_default() -> None:
    """Without an SDK (or with the global no-op providers) the recorder costs nothing and never fails."""
    recorder = OTelRecorder(TelemetryConfig())
    ctx, scope = request()
    handle = recorder.start(ctx, scope)
    recorder.finish(handle, answered(ctx))
    assert handle is None  # nothing would record: no span is even started


def _counted(method: Any, calls: list[Any], *args: Any) -> Any:
    calls.append(args)
    return method(*args)


def test_an_unsampled_trace_builds_only_the_metrics_a_meter_provider_keeps(otel: Otel) -> None:
    """A trace the sampler dropped still feeds the metrics; with no meter provider either, finishing
    the request builds nothing (docs/opentelemetry.md: sampling is the answer at high rates)."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(otel.spans))
    for meter_provider, metered in ((otel.meter_provider, True), (NoOpMeterProvider(), False)):
        recorder = OTelRecorder(TelemetryConfig(), tracer_provider=tracer_provider, meter_provider=meter_provider)
        attempts: list[Any] = []
        recorder._upstream = functools.partial(_counted, recorder._upstream, attempts)  # type: ignore[method-assign]
        ctx, scope = request()
        handle = recorder.start(ctx, scope)
        assert handle is not None and handle.span is not None and not handle.span.is_recording()
        recorder.finish(handle, answered(ctx))
        assert len(attempts) == (1 if metered else 0)
    assert otel.spans.get_finished_spans() == ()
    assert len(otel.points(sc.METRIC_REQUESTS)) == 1  # the metered recorder's request only


def test_spans_without_a_meter_provider_are_the_same_and_no_sample_is_built(otel: Otel) -> None:
    """Tracing alone (no meter provider): the spans carry what they carry with metrics on, and
    no metric sample is built for the API's no-op instruments."""
    from opentelemetry.metrics import NoOpMeterProvider

    class Instrument:
        def __init__(self) -> None:
            self.calls = 0

        def record(self, *args: Any) -> None:
            self.calls += 1

        add = record

    def spans(meter_provider: Any) -> list[tuple[str, dict[str, Any]]]:
        recorder = OTelRecorder(TelemetryConfig(), tracer_provider=otel.tracer_provider, meter_provider=meter_provider)
        instruments = [Instrument() for _ in range(4)]
        recorder.duration, recorder.tokens, recorder.ttfc, recorder.requests = instruments  # type: ignore[assignment]
        ctx, scope = request()
        ctx.stream = True
        recorder.finish(recorder.start(ctx, scope), answered(ctx))
        assert sum(i.calls for i in instruments) == (0 if isinstance(meter_provider, NoOpMeterProvider) else 5)
        finished = otel.spans.get_finished_spans()
        otel.spans.clear()
        volatile = {sc.AIGW_LOG_ID, sc.AIGW_REQUEST_ID, sc.AIGW_EVENT_ID, sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}
        return sorted((s.name, {k: v for k, v in (s.attributes or {}).items() if k not in volatile}) for s in finished)

    assert spans(NoOpMeterProvider()) == spans(otel.meter_provider)


_LATE_SDK = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aigw_asgi.config import TelemetryConfig
from aigw_asgi.context import ensure_context
from aigw_asgi.telemetry.otel import OTelRecorder

def request():
    scope = {"type": "http", "method": "POST", "path": "/openai/v1/chat/completions", "headers": []}
    ctx = ensure_context(scope, "gw")
    ctx.provider, ctx.endpoint, ctx.upstream_host, ctx.status_code = "openai", "v1/chat/completions", "x", 200
    return ctx, scope

recorder = OTelRecorder(TelemetryConfig())
ctx, scope = request()
assert recorder.start(ctx, scope) is None
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
ctx, scope = request()
handle = recorder.start(ctx, scope)
assert handle is not None and handle.span is None, handle
recorder.finish(handle, ctx)
data = reader.get_metrics_data()
print(sorted({m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}))
"""


def test_sdk_installed_after_the_recorder_is_built() -> None:
    """The global proxies are asked per request: `aigw serve` or the host may install the SDK after
    the gateway was built. A metrics-only SDK gets its metrics without any span being made.
    (In a subprocess: a global provider can be set only once per process.)"""
    out = subprocess.run([sys.executable, "-c", _LATE_SDK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = json.loads(out.stdout.replace("'", '"'))
    assert sc.METRIC_REQUESTS in names and sc.METRIC_OPERATION_DURATION in names
