"""Secrets put in ``cf-aig-event-id`` or ``cf-aig-metadata`` are redacted in log rows and spans.

Issue 11 defect 10: a gateway token or a provider key in those headers was stored verbatim, so
anyone reading the logs (or the tracing backend) could read it back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aigw_asgi import Gateway
from aigw_asgi.telemetry import semconv as sc
from tests.conftest import gateway_config
from tests.fakes.upstream import RunningFake
from tests.servers import ServerThread

TOKEN = "gw-token-0123456789abcdef"
STORED_KEY = "sk-stored-provider-key-abcdef"
CLIENT_KEY = "sk-client-own-key-9876543210"


def test_secrets_in_event_id_and_metadata_never_reach_rows_or_spans(
    fake_upstream: RunningFake, serve: Callable[..., ServerThread]
) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    config = gateway_config(
        fake_upstream.url,
        gateway={"authentication": True, "tokens": [{"name": "app", "token": TOKEN}]},
        providers={"anthropic": {"api_key": STORED_KEY}},
    )
    server = serve(Gateway(config, tracer_provider=tracer_provider))
    metadata = {"user": "alice", "leak": f"token {TOKEN}", "key": STORED_KEY, "mine": f"Bearer {CLIENT_KEY}"}
    headers = {
        "cf-aig-authorization": f"Bearer {TOKEN}",
        "authorization": f"Bearer {CLIENT_KEY}",
        "cf-aig-event-id": f"evt-{CLIENT_KEY}",
        "cf-aig-metadata": json.dumps(metadata),
    }
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post("/openai/chat/completions", json=body, headers=headers)
        assert resp.status_code == 200
        assert resp.headers["cf-aig-event-id"] == f"evt-{CLIENT_KEY}"  # echoed to its own sender only
        logs = client.get("/admin/logs").json()["result"]
    (row,) = logs
    stored = json.dumps({"event_id": row["event_id"], "metadata": row["metadata"]})
    for secret in (TOKEN, STORED_KEY, CLIENT_KEY):
        assert secret not in stored, stored
    assert row["metadata"]["user"] == "alice" and "[REDACTED]" in row["metadata"]["key"]
    assert row["event_id"] == "evt-[REDACTED]"

    deadline = time.monotonic() + 5
    while not any(s.kind == SpanKind.SERVER for s in spans.get_finished_spans()) and time.monotonic() < deadline:
        time.sleep(0.01)
    (span,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    attributes = dict(span.attributes or {})
    exported = json.dumps({k: v for k, v in attributes.items() if isinstance(v, str)})
    for secret in (TOKEN, STORED_KEY, CLIENT_KEY):
        assert secret not in exported, exported
    assert attributes[sc.AIGW_EVENT_ID] == "evt-[REDACTED]"
    assert attributes[sc.AIGW_METADATA_PREFIX + "user"] == "alice"


def test_requests_without_labels_are_not_searched() -> None:
    """Nothing client-chosen, nothing to redact: the event id is the gateway's own log id."""
    from aigw_asgi.context import ensure_context
    from aigw_asgi.redact import redact_labels

    class Spy:
        calls = 0

        def __call__(self, text: str, extra: object = ()) -> str:
            Spy.calls += 1
            return text.replace(TOKEN, "[REDACTED]")

    def context(headers: list[tuple[bytes, bytes]]):  # as every layer gets it: event id = log id
        return ensure_context({"type": "http", "method": "POST", "path": "/openai/x", "headers": headers})

    plain = context([])
    redact_labels(plain, Spy())  # type: ignore[arg-type]
    assert Spy.calls == 0 and plain.event_id == plain.log_id

    labelled = context([(b"cf-aig-metadata", f'{{"k":"{TOKEN}"}}'.encode())])
    labelled.event_id = f"evt-{TOKEN}"
    redact_labels(labelled, Spy())  # type: ignore[arg-type]
    assert labelled.event_id == "evt-[REDACTED]" and labelled.metadata == {"k": "[REDACTED]"}
