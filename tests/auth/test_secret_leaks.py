"""No secret leaves the gateway: a run full of credentials, then a search of everything it produced.

One gateway (authentication on, BYOK keys, an admin token) under real uvicorn takes successful,
refused, failing and odd requests that carry every kind of secret. Then every place a secret
could surface is searched for every secret string:

- what clients received from the gateway itself (its error bodies and headers);
- what the fake upstream received (gateway tokens and the admin token must never get there);
- every OpenTelemetry span (name, attributes, events, status) and metric attribute, recorded by
  the gateway's own `TelemetryMiddleware` with content capture on;
- every Python log record of the gateway side (aigw_asgi, uvicorn, aiohttp);
- every log row in the gateway's log store, read back through the admin API.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect

from aigw_asgi import Gateway
from aigw_asgi.auth import hash_token
from tests.conftest import gateway_config
from tests.fakes.upstream import RunningFake
from tests.servers import ServerThread

GATEWAY_TOKEN = "gwtok-PLAIN-7f3a9c1e"
HASHED_TOKEN = "gwtok-HASHED-4b8d2e6f"
WRONG_TOKEN = "gwtok-WRONG-0a1b2c3d"
ADMIN_TOKEN = "admintok-5e6f7a8b9c"
WRONG_ADMIN_TOKEN = "admintok-WRONG-1c2d3e"
BYOK_OPENAI = "sk-byok-openai-9d8c7b6a"
BYOK_ANTHROPIC = "sk-ant-byok-1f2e3d4c"
CLIENT_KEY = "sk-client-own-2a3b4c5d"
GEMINI_QUERY_KEY = "AIza-client-query-6e7f8a9b"
BODY_KEY = "sk-in-universal-body-3c4d5e6f"

# Gateway-side secrets: no client-visible gateway answer and no upstream request may contain them.
GATEWAY_SECRETS = (GATEWAY_TOKEN, HASHED_TOKEN, WRONG_TOKEN, ADMIN_TOKEN, WRONG_ADMIN_TOKEN)
# Everything: no log row, span, metric or log line may contain any of these.
ALL_SECRETS = (*GATEWAY_SECRETS, BYOK_OPENAI, BYOK_ANTHROPIC, CLIENT_KEY, GEMINI_QUERY_KEY, BODY_KEY)
GATEWAY_LOGGERS = ("aigw_asgi", "uvicorn", "aiohttp")


@dataclass
class Run:
    gateway: Gateway
    server: ServerThread
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    responses: list[httpx.Response] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"


@pytest.fixture
def run(fake_upstream: RunningFake, serve: Callable[..., ServerThread], monkeypatch) -> Iterator[Run]:
    monkeypatch.setenv("AIGW_TEST_LEAK_TOKEN", GATEWAY_TOKEN)
    monkeypatch.setenv("AIGW_TEST_LEAK_ADMIN", ADMIN_TOKEN)
    config = gateway_config(
        fake_upstream.url,
        gateway={
            "authentication": True,
            "tokens": [
                {"name": "app", "token": "env:AIGW_TEST_LEAK_TOKEN"},
                {"name": "ci", "sha256": hash_token(HASHED_TOKEN)},
            ],
            "admin_token": "env:AIGW_TEST_LEAK_ADMIN",
        },
        providers={"openai": {"api_key": BYOK_OPENAI}, "anthropic": {"api_key": BYOK_ANTHROPIC}},
        telemetry={"capture_content": True},  # bodies on spans: the hardest case for redaction
    )
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    # The gateway's own telemetry layer, with in-memory OTel providers instead of the global ones.
    gateway = Gateway(config, tracer_provider=tracer_provider, meter_provider=meter_provider)
    server = serve(gateway)
    yield Run(gateway, server, spans, metrics)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def cf(token: str) -> dict[str, str]:
    return {"cf-aig-authorization": f"Bearer {token}"}


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def exercise(run: Run, fake: RunningFake) -> None:
    """Requests that carry every kind of secret, through success, refusal and failure."""
    app = fake.app
    with httpx.Client(timeout=10) as http:

        def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = http.request(method, run.url(path), **kwargs)
            run.responses.append(response)
            return response

        bearer_client = {"authorization": f"Bearer {CLIENT_KEY}"}
        # Success: token header + the client's own key; the hashed token; the token in the provider slot.
        assert call("POST", "/openai/chat/completions", json=CHAT, headers={**cf(GATEWAY_TOKEN), **bearer_client})
        assert call("POST", "/openai/chat/completions", json={**CHAT, "stream": True}, headers=cf(HASHED_TOKEN))
        assert call("POST", "/openai/chat/completions", json=CHAT, headers={"authorization": f"Bearer {GATEWAY_TOKEN}"})
        anthropic_body = {"model": "claude-fake-1", "max_tokens": 8, "messages": CHAT["messages"]}
        assert call("POST", "/anthropic/v1/messages", json=anthropic_body, headers=cf(GATEWAY_TOKEN)).status_code == 200
        # Refused: no token, a wrong token, a wrong token in the provider slot.
        assert call("POST", "/openai/chat/completions", json=CHAT).status_code == 401
        assert call("POST", "/openai/chat/completions", json=CHAT, headers=cf(WRONG_TOKEN)).status_code == 401
        slot = {"authorization": f"Bearer {WRONG_TOKEN}"}
        assert call("POST", "/openai/chat/completions", json=CHAT, headers=slot).status_code == 401
        # The upstream rejects the key it got and echoes it back, as providers do: the client's own
        # key, then the gateway's BYOK key.
        app.fail(401, error_message=f"Incorrect API key provided: {CLIENT_KEY}")
        call("POST", "/openai/chat/completions", json=CHAT, headers={**cf(GATEWAY_TOKEN), **bearer_client})
        app.fail(401, error_message=f"Incorrect API key provided: {BYOK_OPENAI}")
        call("POST", "/openai/chat/completions", json=CHAT, headers=cf(GATEWAY_TOKEN))
        # A Gemini key in the query string, another in the header.
        gemini = {"contents": [{"parts": [{"text": "hi"}]}]}
        call(
            "POST",
            f"/google-ai-studio/v1beta/models/gemini-fake:generateContent?key={GEMINI_QUERY_KEY}",
            json=gemini,
            headers=cf(GATEWAY_TOKEN),
        )
        call(
            "POST",
            "/google-ai-studio/v1beta/models/gemini-fake:generateContent",
            json=gemini,
            headers={**cf(GATEWAY_TOKEN), "x-goog-api-key": CLIENT_KEY},
        )
        # A universal request carrying a provider key inside its JSON body.
        step = {
            "provider": "openai",
            "endpoint": "chat/completions",
            "headers": {"Authorization": f"Bearer {BODY_KEY}", "Content-Type": "application/json"},
            "query": CHAT,
        }
        call("POST", "/", json=[step], headers=cf(GATEWAY_TOKEN))
        # The admin API: wrong token, right token.
        assert call("GET", "/admin/health", headers={"authorization": f"Bearer {WRONG_ADMIN_TOKEN}"}).status_code == 401
        assert call("GET", "/admin/health", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    # Realtime sessions: the stored key injected, a browser's key and token as subprotocols, a
    # Gemini key in the query, and a provider refusing the stored key.
    openai_rt = "/openai/v1/realtime?model=gpt-realtime"
    browser = ["realtime", f"cf-aig-authorization.{HASHED_TOKEN}", f"openai-insecure-api-key.{CLIENT_KEY}"]
    realtime: list[tuple[str, dict[str, Any]]] = [
        (openai_rt, {"additional_headers": cf(GATEWAY_TOKEN)}),
        (openai_rt, {"subprotocols": browser}),
        (f"/google-ai-studio?key={GEMINI_QUERY_KEY}", {"additional_headers": cf(GATEWAY_TOKEN)}),
        (openai_rt, {"subprotocols": [f"cf-aig-authorization.{WRONG_TOKEN}"]}),
    ]
    for path, kwargs in realtime:
        try:
            with connect(f"{run.server.ws_url}{path}", open_timeout=5, close_timeout=2, **kwargs) as ws:
                ws.send(json.dumps({"type": "response.create"}))
                ws.send(json.dumps({"setup": {"model": "models/gemini-live"}}))
                for _ in range(3):
                    ws.recv(timeout=5)
        except (InvalidStatus, WebSocketException, TimeoutError):
            pass
    app.realtime.refuse(401)
    with connect(f"{run.server.ws_url}{openai_rt}", open_timeout=5, additional_headers=cf(GATEWAY_TOKEN)) as ws:
        try:
            ws.recv(timeout=5)
        except WebSocketException:
            pass
    # WebSocket API upgrades with the token as header and as subprotocol.
    for kwargs in (
        {"additional_headers": cf(GATEWAY_TOKEN)},
        {"subprotocols": [f"cf-aig-authorization.{HASHED_TOKEN}"]},
        {"subprotocols": [f"cf-aig-authorization.{WRONG_TOKEN}"]},
    ):
        try:
            with connect(f"{run.server.ws_url}/", open_timeout=5, close_timeout=1, **kwargs) as ws:
                ws.recv(timeout=2)
        except (InvalidStatus, WebSocketException, TimeoutError):
            pass
    # OpenAI SDK too, so its own headers are part of the run.
    with openai.OpenAI(
        base_url=run.url("/openai"), api_key=CLIENT_KEY, default_headers=cf(GATEWAY_TOKEN), max_retries=0
    ) as client:
        client.embeddings.create(model="text-embedding-3-small", input="hi")


def span_texts(run: Run) -> list[str]:
    texts = []
    for span in run.spans.get_finished_spans():
        texts.append(span.to_json())  # name, attributes, events, links, status, resource
    data = run.metrics.get_metrics_data()
    if data is not None:
        texts.append(data.to_json())
    return texts


def wait_for_spans(run: Run, at_least: int) -> None:
    deadline = time.monotonic() + 5
    while len(run.spans.get_finished_spans()) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)


def find(texts: list[str], secrets: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(secret, text[:300]) for text in texts for secret in secrets if secret in text]


@pytest.fixture
def gateway_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in GATEWAY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_no_secret_in_answers_upstream_spans_or_log_lines(run: Run, fake_upstream: RunningFake, gateway_logs) -> None:
    exercise(run, fake_upstream)
    http_requests = sum(1 for r in run.responses)
    wait_for_spans(run, http_requests)

    # What the gateway itself answered: its envelopes and headers.
    gateway_made = [r for r in run.responses if "cf-aig-log-id" in r.headers or r.url.path.startswith("/admin")]
    assert any(r.status_code == 401 for r in gateway_made)
    for response in gateway_made:
        upstream_body = response.status_code == 401 and "Incorrect API key" in response.text
        if upstream_body:
            continue  # a provider's own error body passes through verbatim (SPEC §4)
        text = response.text + json.dumps(list(response.headers.items()))
        assert not find([text], GATEWAY_SECRETS), (response.request.url, response.status_code)

    # What reached the provider: never a gateway token or the admin token.
    assert fake_upstream.app.requests, "the run must have reached the upstream"
    for seen in fake_upstream.app.requests:
        text = json.dumps(seen.headers) + seen.path + seen.query_string + seen.body.decode("utf-8", "replace")
        assert not find([text], GATEWAY_SECRETS), seen.path
    assert len(fake_upstream.app.realtime.sessions) == 4, "the realtime sessions must have reached the upstream"
    for session in fake_upstream.app.realtime.sessions:
        text = json.dumps([session.headers, session.subprotocols, session.path, session.query_string])
        assert not find([text], GATEWAY_SECRETS), session.path

    # Spans and metrics.
    spans = run.spans.get_finished_spans()
    assert spans, "the recorder produced no spans"
    texts = span_texts(run)
    assert find(texts, ("hello",)), "content capture is on: the prompt must be on a span"
    assert not find(texts, ALL_SECRETS)

    # Gateway-side log lines (uvicorn's included: it logs WebSocket paths and errors).
    lines = [
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in gateway_logs.records
        if r.name.split(".")[0] in GATEWAY_LOGGERS
    ]
    assert not find(lines, ALL_SECRETS)


def test_no_secret_in_log_rows_or_stored_bodies(run: Run, fake_upstream: RunningFake) -> None:
    exercise(run, fake_upstream)
    with httpx.Client(base_url=run.server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        response = admin.get("/admin/logs", params={"per_page": 100})
        assert response.status_code == 200, response.text  # reads flush the log writer first
        rows: list[Any] = response.json()["result"]
        assert len(rows) >= 10, rows
        assert any(row["token_name"] == "app" for row in rows) and any(row["token_name"] == "ci" for row in rows)
        texts = [json.dumps(row) for row in rows]
        for row in rows:
            for part in ("request", "response"):
                body = admin.get(f"/admin/logs/{row['id']}/{part}")
                if body.status_code == 200:
                    texts.append(body.text)
    # Positive control: bodies are stored, so the secrets were really looked for in them.
    assert find(texts, ("Incorrect API key",)) and find(texts, ("hello",))
    assert not find(texts, ALL_SECRETS)
