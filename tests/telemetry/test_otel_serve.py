"""`aigw serve` exports over OTLP when the standard ``OTEL_*`` variables ask for it.

The real process sends real OTLP/HTTP protobuf to a tiny collector served by the test.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aigw_asgi.config import TelemetryConfig
from aigw_asgi.telemetry import otlp, semconv as sc
from tests.examples.test_examples import ROOT, stop, write_config
from tests.fakes.upstream import RunningFake
from tests.servers import ServerThread, free_port, wait_for_port


class Collector:
    """An OTLP/HTTP receiver: keeps every POST body by path, answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.posts.append((scope["path"], body))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-protobuf")]}
        )
        await send({"type": "http.response.body", "body": b""})

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        out = []
        for path, body in self.posts:
            if path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for rs in request.resource_spans:
                    resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
                    out.extend((resource, span) for ss in rs.scope_spans for span in ss.spans)
        return out

    def metric_names(self) -> set[str]:
        names = set()
        for path, body in self.posts:
            if path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                for rm in request.resource_metrics:
                    names.update(m.name for sm in rm.scope_metrics for m in sm.metrics)
        return names


@pytest.mark.parametrize("sampler", [None, "always_off"])
def test_serve_exports_spans_and_metrics_over_otlp(
    tmp_path: Path, fake_upstream: RunningFake, serve: Callable[..., ServerThread], sampler: str | None
) -> None:
    """With ``OTEL_TRACES_SAMPLER`` (docs/opentelemetry.md: sample at high rates) the SDK's sampler
    decides which traces go out; metrics still count every request."""
    collector = Collector()
    collector_server = serve(collector)
    config = write_config(tmp_path / "aigw.toml", fake_upstream.url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        PYTHONPATH=str(ROOT),
        OTEL_EXPORTER_OTLP_ENDPOINT=collector_server.url,
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORT_INTERVAL="200",
    )
    if sampler is not None:
        env["OTEL_TRACES_SAMPLER"] = sampler
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/openai", api_key="sk-x", max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        deadline = time.monotonic() + 10
        want_spans = 0 if sampler else 2
        while time.monotonic() < deadline and (
            len(collector.spans()) < want_spans or sc.METRIC_OPERATION_DURATION not in collector.metric_names()
        ):
            time.sleep(0.05)
        if sampler:
            time.sleep(0.5)  # ten span batch delays: a span the sampler let through would be here
    finally:
        output = stop(proc)
    spans = collector.spans()
    assert sc.METRIC_OPERATION_DURATION in collector.metric_names()
    if sampler:
        assert spans == [], output
        return
    assert sorted(span.name for _, span in spans) == ["POST /openai/{path}", "chat gpt-4o-mini"], output
    resource = spans[0][0]
    assert resource["service.name"] == "aigw-asgi"
    assert sc.METRIC_OPERATION_DURATION in collector.metric_names()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_nothing_asked_nothing_installed(clean_env: pytest.MonkeyPatch) -> None:
    assert otlp.configure_from_env(TelemetryConfig()) is False


@pytest.mark.parametrize(
    ("env", "traces", "metrics"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_METRICS_EXPORTER": "none"}, True, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, False, False),
    ],
)
def test_which_signals_are_asked_for(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], traces: bool, metrics: bool
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert (otlp._wanted("traces"), otlp._wanted("metrics")) == (traces, metrics)


def test_disabled_sdk_or_config_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    assert otlp.configure_from_env(TelemetryConfig(otel=False)) is False
    clean_env.setenv("OTEL_SDK_DISABLED", "true")
    assert otlp.configure_from_env(TelemetryConfig()) is False


def test_missing_exporter_warns_once_and_exports_nothing(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    # As if the `otel` extra were not installed: the import fails before anything global is set.
    clean_env.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with caplog.at_level(logging.WARNING, logger="aigw_asgi"):
        assert otlp.configure_from_env(TelemetryConfig()) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "aigw-asgi[otel]" in warnings[0].getMessage()
