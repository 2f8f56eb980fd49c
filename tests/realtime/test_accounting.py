"""What a realtime session leaves behind: one log row with usage and cost, one span, rate-limit
counts -- and that many sessions at once each get theirs."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import InvalidStatus

from tests.realtime.conftest import OPENAI_PATH, open_ws, recv_json, session_rows, until

PRICES = {"gpt-realtime": {"input": 4e-6, "output": 16e-6, "cached_input": 0.4e-6}}


def expected_cost(responses: int, tokens_in: int = 12, tokens_out: int = 34, cached: int = 2) -> float:
    per_response = (tokens_in - cached) * 4e-6 + cached * 0.4e-6 + tokens_out * 16e-6
    return responses * per_response


def test_one_row_per_session_with_usage_cost_and_frame_counts(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(prices=PRICES)
    metadata = {"cf-aig-metadata": json.dumps({"user": "u-1"}), "authorization": "Bearer sk-client"}
    with open_ws(server, additional_headers=metadata) as ws:
        log_id = ws.response.headers["cf-aig-log-id"]  # the row's id, on the handshake answer
        recv_json(ws)
        ws.send(json.dumps({"type": "session.update", "session": {"instructions": "be brief"}}))
        until(ws, "session.updated")
        for _ in range(2):
            ws.send(json.dumps({"type": "response.create"}))
            until(ws, "response.done")
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=10) == b"\x01\x02\x03"
    (row,) = session_rows(server)
    assert row["id"] == log_id and row["provider"] == "openai" and row["model"] == "gpt-realtime"
    assert row["path"] == "/openai/v1/realtime" and row["status_code"] == 101 and row["success"] is True
    assert (row["tokens_in"], row["tokens_out"], row["cached_tokens_in"]) == (24, 68, 4)
    assert math.isclose(row["cost"], expected_cost(2), rel_tol=1e-9)
    assert row["stream"] is True and row["duration_ms"] > 0 and row["ttft_ms"] is not None
    # session.created, session.updated, 2 × (created, 3 audio, transcript, done), the echo
    meta = row["metadata"]
    assert meta["user"] == "u-1"
    assert (meta["realtime_frames_up"], meta["realtime_frames_down"]) == (4, 15)
    assert meta["realtime_bytes_up"] == sum(len(f.encode() if isinstance(f, str) else f) for f in fake.last.received)
    assert meta["realtime_bytes_down"] > 6 * 1300  # six base64 KiB audio deltas among them
    assert (meta["realtime_close_code"], meta["realtime_closed_by"]) == (1000, "client")


def test_bodies_keep_the_first_text_frames(realtime_gateway, fake) -> None:
    import httpx

    _, server = realtime_gateway(logs={"max_body_bytes": 200})
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "session.update", "session": {"instructions": "speak like a pirate"}}))
        until(ws, "session.updated")
    (row,) = session_rows(server)
    request = httpx.get(f"{server.url}/admin/logs/{row['id']}/request", timeout=10).json()["result"]
    response = httpx.get(f"{server.url}/admin/logs/{row['id']}/response", timeout=10).json()["result"]
    assert request == {"type": "session.update", "session": {"instructions": "speak like a pirate"}}
    assert (
        isinstance(response, str)
        and response.startswith('{"type": "session.created"')
        and len(response.encode()) == 200
    )  # capped


def test_no_row_when_the_client_asks_for_none(realtime_gateway, fake) -> None:
    _, server = realtime_gateway()
    with open_ws(server, additional_headers={"cf-aig-collect-log": "false", "authorization": "Bearer k"}) as ws:
        recv_json(ws)
    with open_ws(server) as ws:
        recv_json(ws)
    assert len(session_rows(server, 1)) == 1 and len(fake.wait_for_sessions(2)) == 2


def test_rate_limit_counts_the_session_at_upgrade(realtime_gateway, fake) -> None:
    _, server = realtime_gateway(rate_limit={"limit": 1, "period": 3600})
    with open_ws(server) as ws:
        recv_json(ws)
        with pytest.raises(InvalidStatus) as refused:
            with open_ws(server):
                pass
    assert refused.value.response.status_code == 429
    assert json.loads(refused.value.response.body)["error"][0]["code"] == 2003
    assert len(fake.sessions) == 1


def test_token_rules_are_debited_as_usage_is_reported(realtime_gateway, fake) -> None:
    rule = {"name": "tokens", "limit": 50, "period": 3600, "unit": "tokens", "scope": ["provider"]}
    _, server = realtime_gateway(rate_limit={"rules": [rule]})
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")  # 46 tokens: still under 50
        with open_ws(server) as second:  # admitted: the budget is not spent yet
            recv_json(second)
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")  # 92 tokens, counted before this frame reached us
        with pytest.raises(InvalidStatus) as refused:
            with open_ws(server):
                pass
    assert refused.value.response.status_code == 429


def test_one_span_per_session(fake_upstream, serve, fake) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from aigw_asgi import Gateway
    from tests.conftest import gateway_config

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    config = gateway_config(fake_upstream.url, realtime={"ping_interval_s": 0}, prices=PRICES)
    server = serve(Gateway(config, tracer_provider=tracer_provider))
    with open_ws(server) as ws:
        recv_json(ws)
        ws.send(json.dumps({"type": "response.create"}))
        until(ws, "response.done")
    session_rows(server)  # the row is written with the span: both are there once it is
    finished = spans.get_finished_spans()
    (server_span,) = [s for s in finished if s.kind == SpanKind.SERVER]
    (client_span,) = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert server_span.name == "GET /openai/{path}"
    assert server_span.attributes["http.response.status_code"] == 101
    assert server_span.attributes["gen_ai.usage.input_tokens"] == 12
    assert math.isclose(server_span.attributes["aigw.cost"], expected_cost(1))
    assert client_span.parent.span_id == server_span.context.span_id
    assert client_span.attributes["server.address"] == "127.0.0.1"
    assert client_span.attributes["gen_ai.usage.output_tokens"] == 34
    tracer_provider.shutdown()


async def test_fifty_concurrent_sessions(realtime_gateway, fake) -> None:
    _, server = await asyncio.to_thread(realtime_gateway, prices=PRICES)

    async def session(i: int) -> int:
        url = f"{server.ws_url}{OPENAI_PATH}"
        async with async_connect(url, additional_headers={"authorization": f"Bearer sk-{i}"}, open_timeout=30) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(json.dumps({"type": "fake.echo", "i": i}))
            assert json.loads(await ws.recv())["i"] == i
            await ws.send(json.dumps({"type": "response.create"}))
            while json.loads(await ws.recv())["type"] != "response.done":
                pass
            await ws.send(bytes([i]) * 1000)
            assert await ws.recv() == bytes([i]) * 1000
        return i

    assert sorted(await asyncio.gather(*(session(i) for i in range(50)))) == list(range(50))
    logged = await asyncio.to_thread(session_rows, server, 50)
    assert len(logged) == 50
    assert all(r["tokens_in"] == 12 and r["success"] for r in logged)
    assert math.isclose(sum(r["cost"] for r in logged), expected_cost(50))
    keys = sorted(s.headers["authorization"] for s in fake.sessions)
    assert keys == sorted(f"Bearer sk-{i}" for i in range(50))  # each session kept its own key
