"""OTLP export from the standard ``OTEL_*`` environment variables, for `aigw serve`.

For applications only: a library must not touch the global providers, so `Gateway` and the
middlewares never call this; ``aigw serve`` does, in each worker process (export threads do not
survive a fork). Needs the ``otel`` extra (the SDK and the OTLP/HTTP exporter).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import trace

from .._version import __version__
from ..config import TelemetryConfig

logger = logging.getLogger("aigw_asgi")


_OTLP_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
_configured = False


def _wanted(signal: str) -> bool:
    """Does the environment ask for OTLP export of ``signal`` ("traces" or "metrics")?"""
    chosen = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    if chosen:
        return "otlp" in {v.strip() for v in chosen.split(",")}
    return any(os.environ.get(name) for name in _OTLP_VARS)


def configure_from_env(config: TelemetryConfig | None = None) -> bool:
    """Install global OTLP tracer/meter providers if the ``OTEL_*`` variables ask for them.

    For applications (``aigw serve`` calls it in each worker): a library must not touch global
    providers, so `Gateway` itself never does. Asked for by ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
    per-signal endpoints) or ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER=otlp``;
    ``OTEL_SDK_DISABLED=true`` or ``exporter=none`` wins. The service name is ``OTEL_SERVICE_NAME``,
    else ``telemetry.service_name``. Everything else (headers, protocol, intervals) is read by the
    SDK from its own variables. Returns whether anything was installed; without the ``otel``
    extra it logs one warning and returns False.
    """
    global _configured
    config = config or TelemetryConfig()
    if _configured or not config.otel or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    traces, metrics = _wanted("traces"), _wanted("metrics")
    if not (traces or metrics):
        return False
    grpc = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower() == "grpc"
    try:
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if grpc:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
    except ImportError as exc:
        extra = "opentelemetry-exporter-otlp-proto-grpc" if grpc else "aigw-asgi[otel]"
        logger.warning("aigw: OTEL_* asks for OTLP export but %s is not installed (%s): not exporting", extra, exc)
        return False
    attributes: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes["service.name"] = config.service_name
    attributes["service.version"] = __version__
    resource = Resource.create(attributes)
    if traces:
        tracer_provider = SdkTracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
    if metrics:
        from opentelemetry.metrics import set_meter_provider

        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
        set_meter_provider(SdkMeterProvider(resource=resource, metric_readers=[reader]))
    _configured = True
    logger.info(
        "aigw: exporting OpenTelemetry %s over OTLP",
        " and ".join(s for s, on in (("traces", traces), ("metrics", metrics)) if on),
    )
    return True
