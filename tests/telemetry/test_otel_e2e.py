"""End to end: the official openai SDK -> a real Gateway under uvicorn -> the fake upstream, with
OpenTelemetry read back through in-memory exporters.

The gateway's `TelemetryMiddleware` is rebuilt with injected providers (a library never sets the
global ones, and neither do tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aigw_asgi import Gateway
from aigw_asgi.telemetry import semconv as sc
from tests.conftest import gateway_config
from tests.fakes.upstream import TIMER_SLACK_S, RunningFake
from tests.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hello"}]


@dataclass
class Setup:
    url: str
    port: int
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def wait_for_server_spans(self, n: int = 1) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
        """(server spans, client spans) once ``n`` requests finished (finish runs on the server thread
        just after the client has its answer)."""
        deadline = time.monotonic() + 5
        while True:
            spans = self.spans.get_finished_spans()
            servers = [s for s in spans if s.kind == SpanKind.SERVER]
            if len(servers) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        clients = sorted((s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
        return servers, clients

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def client(traced_gateway: Setup) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{traced_gateway.url}/openai", api_key="sk-client-key", max_retries=0) as client:
        yield client


@pytest.fixture
def traced_gateway(fake_upstream: RunningFake, serve: Callable[..., ServerThread]) -> Iterator[Setup]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    # The gateway's own telemetry, given these providers instead of the global ones.
    gateway = Gateway(gateway_config(fake_upstream.url), tracer_provider=tracer_provider, meter_provider=meter_provider)
    server = serve(gateway)
    yield Setup(server.url, server.port, spans, metrics)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_openai_chat_is_traced(traced_gateway: Setup, client: openai.OpenAI, fake_upstream: RunningFake) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
    )
    raw.parse()
    (server,), (upstream,) = traced_gateway.wait_for_server_spans()

    assert server.name == "POST /openai/{path}"
    assert server.context.trace_id == int(trace_id, 16)
    assert server.parent is not None and server.parent.span_id == int(parent_id, 16)
    assert server.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert server.attributes[sc.AIGW_LOG_ID] == raw.headers["cf-aig-log-id"]

    assert upstream.name == "chat gpt-4o-mini"
    assert upstream.parent is not None and upstream.parent.span_id == server.context.span_id
    attrs = dict(upstream.attributes or {})
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[sc.SERVER_PORT] == int(fake_upstream.url.rsplit(":", 1)[1])
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 10 and attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert attrs[sc.AIGW_LOG_ID] == raw.headers["cf-aig-log-id"]
    assert attrs[sc.AIGW_COST] > 0 and server.attributes[sc.AIGW_COST] == attrs[sc.AIGW_COST]  # priced by telemetry
    assert "sk-client-key" not in repr([dict(s.attributes or {}) for s in (server, upstream)])

    (duration,) = traced_gateway.points(sc.METRIC_OPERATION_DURATION)
    assert duration.count == 1 and duration.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    tokens = {p.attributes[sc.GEN_AI_TOKEN_TYPE]: p.sum for p in traced_gateway.points(sc.METRIC_TOKEN_USAGE)}
    assert tokens == {"input": 10, "output": 5}


def test_openai_stream_has_time_to_first_chunk(
    traced_gateway: Setup, client: openai.OpenAI, fake_upstream: RunningFake
) -> None:
    fake_upstream.app.delay_s = 0.1  # a slow first byte, so the time to first chunk is visibly > 0
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    _, (upstream,) = traced_gateway.wait_for_server_spans()
    assert upstream.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    # the fake's 0.1 s sleep runs on a loop whose clock has 1 ms steps: it may end a little early
    assert upstream.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0.1 - TIMER_SLACK_S
    assert upstream.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5  # usage read from the stream
    (ttfc,) = traced_gateway.points(sc.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttfc.count == 1 and ttfc.sum >= 0.1 - TIMER_SLACK_S


def test_retried_request_has_one_span_per_attempt(
    traced_gateway: Setup, client: openai.OpenAI, fake_upstream: RunningFake
) -> None:
    fake_upstream.app.fail(503, times=1)
    fake_upstream.app.retry_after = None
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"cf-aig-max-attempts": "2"})
    (server,), attempts = traced_gateway.wait_for_server_spans()
    assert [a.attributes[sc.AIGW_ATTEMPT] for a in attempts] == [1, 2]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert attempts[0].attributes[sc.ERROR_TYPE] == "503"
    assert attempts[1].status.status_code == StatusCode.UNSET
    assert server.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert len(fake_upstream.app.requests) == 2


def test_upstream_error_is_recorded(traced_gateway: Setup, client: openai.OpenAI, fake_upstream: RunningFake) -> None:
    fake_upstream.app.fail(400, times=1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (server,), (upstream,) = traced_gateway.wait_for_server_spans()
    assert upstream.attributes[sc.ERROR_TYPE] == "400" and upstream.status.status_code == StatusCode.ERROR
    assert server.status.status_code == StatusCode.UNSET  # a 4xx passes through: not the gateway's failure
    (requests,) = traced_gateway.points(sc.METRIC_REQUESTS)
    assert requests.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 400


def test_universal_fallback_traces_each_step(traced_gateway: Setup, fake_upstream: RunningFake) -> None:
    fake_upstream.app.fail(503, times=1, model="gpt-broken")
    body = {"model": "gpt-broken", "messages": MESSAGES}
    steps = [
        {
            "provider": "openai",
            "endpoint": "chat/completions",
            "headers": {"authorization": "Bearer sk-x"},
            "query": body,
        },
        {
            "provider": "openai",
            "endpoint": "chat/completions",
            "headers": {"authorization": "Bearer sk-x"},
            "query": {**body, "model": "gpt-4o-mini"},
        },
    ]
    reply = httpx.post(f"{traced_gateway.url}/", json=steps)
    assert reply.status_code == 200 and reply.headers["cf-aig-step"] == "1"
    (server,), clients = traced_gateway.wait_for_server_spans()
    assert [(c.name, c.attributes[sc.AIGW_STEP], c.attributes.get(sc.ERROR_TYPE)) for c in clients] == [
        ("chat gpt-broken", 0, "503"),
        ("chat gpt-4o-mini", 1, None),
    ]
    assert server.attributes[sc.AIGW_STEP] == 1
    assert server.attributes[sc.AIGW_LOG_ID] == reply.headers["cf-aig-log-id"] == clients[1].attributes[sc.AIGW_LOG_ID]
