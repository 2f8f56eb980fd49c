"""The WebSocket API (``GET /`` upgraded) end to end: real uvicorn, the real `websockets` client.

Every message runs through the universal path (cache → rate limit → router) against the fake
upstream; these tests check the frames a client sees and what the gateway did meanwhile (upstream
requests, log rows, the rate limiter). Interleaving is forced with the fake's per-request delays,
never asserted from timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.fakes.upstream import RunningFake

TOKEN = "ws-api-token-0123456789"
MESSAGES = [{"role": "user", "content": "hello"}]


def chat(event_id: str | None = "e1", *, stream: bool = False, model: str = "gpt-4o-mini", **extra: Any) -> dict:
    step: dict[str, Any] = {
        "provider": "openai",
        "endpoint": "chat/completions",
        "headers": {"authorization": "Bearer sk-client", **extra.pop("headers", {})},
        "query": {"model": model, "messages": MESSAGES, **({"stream": True} if stream else {})},
    }
    if event_id is not None:
        step["eventId"] = event_id
    step.update(extra)
    return step


def create(request: Any, **frame: Any) -> str:
    return json.dumps({"type": "universal.create", "request": request, **frame})


@contextmanager
def ws_connect(server: Any, path: str = "/", **kwargs: Any) -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}{path}", open_timeout=5, close_timeout=2, **kwargs) as ws:
        yield ws


def recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws: ClientConnection, done: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """Frames until ``done(frame)`` is true (that frame included)."""
    frames = []
    while True:
        frame = recv(ws, timeout)
        frames.append(frame)
        if done(frame):
            return frames


def delta_text(frame: dict[str, Any]) -> str:
    choices = frame["response"]["choices"]
    return (choices[0]["delta"].get("content") or "") if choices else ""


def rows(server: Any, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(f"{server.url}/admin/logs", params={"per_page": 100, **params}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def test_non_stream_message(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    with ws_connect(server) as ws:
        ws.send(create(chat("first")))
        frame = recv(ws)
    assert frame["type"] == "universal.created"
    meta = frame["metadata"]
    assert meta["eventId"] == "first" and meta["step"] == "0" and meta["cacheStatus"] == "MISS"
    assert meta["contentType"].startswith("application/json") and len(meta["logId"]) == 36
    assert frame["response"]["object"] == "chat.completion"
    assert frame["response"]["choices"][0]["message"]["content"] == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    upstream = fake_upstream.app.last
    assert upstream.path == "/v1/chat/completions" and upstream.headers["authorization"] == "Bearer sk-client"
    assert not any(name.startswith(("sec-websocket", "cf-aig")) for name in upstream.headers)


def test_stream_message(make_gateway) -> None:
    _, server = make_gateway()
    with ws_connect(server) as ws:
        ws.send(create(chat("s1", stream=True)))
        frames = recv_until(ws, lambda f: f["type"] in ("universal.done", "universal.error"))
    created, *chunks, done = frames
    assert created["type"] == "universal.created" and "response" not in created
    assert created["metadata"]["contentType"].startswith("text/event-stream")
    assert all(f["type"] == "universal.stream" and f["metadata"] == {"eventId": "s1"} for f in chunks)
    text = "".join(delta_text(c) for c in chunks)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert all(c["response"] != "[DONE]" for c in chunks)
    assert done["type"] == "universal.done" and done["metadata"] == created["metadata"]


def test_anthropic_stream_and_array_request_with_frame_event_id(make_gateway) -> None:
    _, server = make_gateway()
    step = {
        "provider": "anthropic",
        "endpoint": "v1/messages",
        "headers": {"x-api-key": "sk-ant"},
        "query": {"model": "claude-fake-1", "max_tokens": 16, "messages": MESSAGES, "stream": True},
    }
    with ws_connect(server) as ws:
        ws.send(create([step], eventId="arr"))
        frames = recv_until(ws, lambda f: f["type"] in ("universal.done", "universal.error"))
    assert frames[-1]["type"] == "universal.done" and frames[-1]["metadata"]["eventId"] == "arr"
    kinds = [f["response"]["type"] for f in frames[1:-1]]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_interleaved_requests_on_one_socket(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    slow = chat("slow", stream=True, headers={"x-fake-chunk-delay": "0.05"})
    fast = chat("fast", stream=True, headers={"x-fake-chunk-delay": "0.05", "x-fake-delay": "0.08"})
    with ws_connect(server) as ws:
        ws.send(create(slow))
        ws.send(create(fast))
        frames: list[dict[str, Any]] = []
        finished: set[str] = set()
        while len(finished) < 2:
            frame = recv(ws)
            frames.append(frame)
            if frame["type"] in ("universal.done", "universal.error"):
                finished.add(frame["metadata"]["eventId"])
    order = [f["metadata"]["eventId"] for f in frames]
    assert {f["type"] for f in frames} == {"universal.created", "universal.stream", "universal.done"}
    # Interleaved: the fast one started before the slow one was done.
    first_fast = order.index("fast")
    assert "slow" in order[first_fast:]
    for event_id in ("slow", "fast"):
        mine = [f for f in frames if f["metadata"]["eventId"] == event_id]
        assert mine[0]["type"] == "universal.created" and mine[-1]["type"] == "universal.done"
        text = "".join(delta_text(f) for f in mine[1:-1])
        assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert len(fake_upstream.app.requests) == 2


def test_session_defaults_from_the_upgrade_are_overridden_per_message(make_gateway) -> None:
    _, server = make_gateway()
    headers = {"cf-aig-metadata": json.dumps({"who": "session"}), "cf-aig-event-id": "ignored"}
    with ws_connect(server, additional_headers=headers) as ws:
        ws.send(create(chat("a")))
        a = recv(ws)
        ws.send(create(chat("b", headers={"cf-aig-metadata": json.dumps({"who": "message"})})))
        b = recv(ws)
    row_a = rows(server, event_id="a")
    row_b = rows(server, event_id="b")
    assert [r["id"] for r in row_a] == [a["metadata"]["logId"]]
    assert [r["id"] for r in row_b] == [b["metadata"]["logId"]]
    assert row_a[0]["metadata"] == {"who": "session"} and row_b[0]["metadata"] == {"who": "message"}


def test_second_identical_message_is_a_cache_hit(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    with ws_connect(server, additional_headers={"cf-aig-cache-ttl": "600"}) as ws:
        ws.send(create(chat("one")))
        first = recv(ws)
        ws.send(create(chat("two")))
        second = recv(ws)
        ws.send(create(chat("three", stream=True)))
        stream_miss = recv_until(ws, lambda f: f["type"] == "universal.done")
        ws.send(create(chat("four", stream=True)))
        stream_hit = recv_until(ws, lambda f: f["type"] == "universal.done")
    assert first["metadata"]["cacheStatus"] == "MISS" and second["metadata"]["cacheStatus"] == "HIT"
    assert second["response"] == first["response"] and second["metadata"]["eventId"] == "two"
    assert stream_miss[-1]["metadata"]["cacheStatus"] == "MISS"
    assert stream_hit[-1]["metadata"]["cacheStatus"] == "HIT"
    assert [f["response"] for f in stream_hit[1:-1]] == [f["response"] for f in stream_miss[1:-1]]
    assert len(fake_upstream.app.requests) == 2


def test_rate_limit_applies_per_message_and_counts_the_upgrade_once(make_gateway, fake_upstream) -> None:
    # limit 3: the upgrade is one request, two messages are two more, the third message is refused.
    _, server = make_gateway(rate_limit={"limit": 3, "period": 600})
    with ws_connect(server, additional_headers={"cf-aig-cache-ttl": "600"}) as ws:
        ws.send(create(chat("m1")))
        assert recv(ws)["type"] == "universal.created"
        ws.send(create(chat("hit")))  # identical: a cache hit, which never counts
        assert recv(ws)["metadata"]["cacheStatus"] == "HIT"
        ws.send(create(chat("m2", model="gpt-4o")))
        assert recv(ws)["type"] == "universal.created"
        ws.send(create(chat("m3", model="gpt-4o-2")))
        refused = recv(ws)
        assert refused["type"] == "universal.error" and refused["metadata"]["eventId"] == "m3"
        assert refused["error"]["code"] == 2003 and refused["metadata"]["status"] == 429
        # The socket stays open: a cached answer still comes.
        ws.send(create(chat("hit2")))
        assert recv(ws)["metadata"]["cacheStatus"] == "HIT"
    assert len(fake_upstream.app.requests) == 2
    # The window is spent: a new upgrade is refused before accept.
    with pytest.raises(InvalidStatus) as refused_upgrade:
        with ws_connect(server):
            pass
    assert refused_upgrade.value.response.status_code == 429


def test_bad_frames_get_error_frames_and_the_socket_stays_open(make_gateway, fake_upstream) -> None:
    _, server = make_gateway()
    bad = [
        ("not json", None, "not JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (json.dumps({"type": "universal.cancel", "eventId": "x"}), "x", "unknown type"),
        (json.dumps({"request": chat("y")}), "y", "missing type"),
        (json.dumps({"type": "universal.create", "eventId": "z"}), "z", "missing request"),
        (create(chat(None)), None, "missing eventId"),
        (create(chat(None), eventId=7), None, "eventId must be"),
        (create("hello", eventId="s"), "s", "request must be"),
        (create({**chat("w"), "confg": {}}), "w", "steps[0].confg"),
        (create(chat("p", provider="nope")), "p", "steps[0].provider"),
    ]
    with ws_connect(server) as ws:
        for text, event_id, words in bad:
            ws.send(text)
            frame = recv(ws)
            assert frame["type"] == "universal.error", text
            assert frame["metadata"]["eventId"] == event_id, text
            assert words in frame["error"]["message"], (text, frame)
            assert frame["error"]["code"] == (2008 if event_id == "p" else 2004), frame
        ws.send(b'{"type": "universal.create", "request": ' + json.dumps(chat("bin")).encode() + b"}")
        assert recv(ws)["type"] == "universal.created"  # binary frames carry JSON too
    assert len(fake_upstream.app.requests) == 1


def test_oversized_frame_is_refused_and_the_socket_stays_open(make_gateway) -> None:
    gateway, server = make_gateway()
    gateway.universal.websocket.max_frame_bytes = 4096
    with ws_connect(server) as ws:
        big = chat("big")
        big["query"]["messages"] = [{"role": "user", "content": "x" * 5000}]
        ws.send(create(big))
        frame = recv(ws)
        assert frame["type"] == "universal.error" and frame["error"]["code"] == 2007
        assert "4096" in frame["error"]["message"]
        ws.send(create(chat("small")))
        assert recv(ws)["type"] == "universal.created"


def test_in_flight_cap_refuses_the_excess(make_gateway, fake_upstream: RunningFake) -> None:
    gateway, server = make_gateway()
    gateway.universal.websocket.max_in_flight = 2
    with ws_connect(server) as ws:
        ws.send(create(chat("h1", headers={"x-fake-hang": "1"})))
        ws.send(create(chat("h2", headers={"x-fake-hang": "1"})))
        fake_upstream.app.wait_for_requests(2)
        ws.send(create(chat("h3")))
        refused = recv(ws)
        assert refused["type"] == "universal.error" and refused["metadata"]["eventId"] == "h3"
        assert refused["error"]["code"] == 2003 and "in flight" in refused["error"]["message"]
        ws.send(create(chat("h1")))  # an eventId already in flight is ambiguous: refused
        dup = recv(ws)
        assert dup["error"]["code"] == 2004 and "already in flight" in dup["error"]["message"]
        fake_upstream.app.release()
        done = {recv(ws)["metadata"]["eventId"], recv(ws)["metadata"]["eventId"]}
        assert done == {"h1", "h2"}
        ws.send(create(chat("h4")))  # capacity is back
        assert recv(ws)["type"] == "universal.created"


def test_fallback_across_steps_reports_the_step(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.fail(500, times=None, model="broken")
    with ws_connect(server) as ws:
        ws.send(create([chat(None, model="broken"), chat(None, model="gpt-4o-mini")], eventId="fb"))
        frame = recv(ws)
        assert frame["type"] == "universal.created" and frame["metadata"]["step"] == "1"
        ws.send(create([chat(None, model="broken"), chat(None, model="broken")], eventId="all-fail"))
        failed = recv(ws)
    assert failed["type"] == "universal.error" and failed["metadata"]["eventId"] == "all-fail"
    assert failed["error"]["code"] == 500 and failed["metadata"]["step"] == "1"
    assert failed["response"]["error"]["message"] == failed["error"]["message"]
    fb_rows = rows(server, event_id="fb")
    assert sorted(r["step"] for r in fb_rows) == [0, 1]
    assert {r["request_id"] for r in fb_rows} != {r["request_id"] for r in rows(server, event_id="all-fail")}


def test_gateway_errors_keep_their_code(make_gateway) -> None:
    _, server = make_gateway(providers={"custom-dead": {"base_url": "http://127.0.0.1:9/v1"}})
    with ws_connect(server) as ws:
        ws.send(create({**chat("dead"), "provider": "custom-dead"}))
        frame = recv(ws)
    assert frame["type"] == "universal.error" and frame["error"]["code"] == 2005
    assert frame["metadata"]["eventId"] == "dead" and "response" not in frame


def test_disconnect_cancels_in_flight_upstream_calls(make_gateway, fake_upstream: RunningFake) -> None:
    gateway, server = make_gateway()
    with ws_connect(server) as ws:
        ws.send(create(chat("hang", headers={"x-fake-hang": "1"})))
        ws.send(create(chat("slow-stream", stream=True, headers={"x-fake-chunk-delay": "1"})))
        fake_upstream.app.wait_for_requests(2)
        assert recv(ws)["type"] == "universal.created"  # the stream has started
    deadline = time.monotonic() + 5
    while not all(r.disconnected for r in fake_upstream.app.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.disconnected for r in fake_upstream.app.requests] == [True, True]
    logged = {r["event_id"]: r for r in rows(server)}
    assert logged["hang"]["status_code"] == 499 and logged["slow-stream"]["status_code"] == 200
    assert logged["slow-stream"]["error"]


def test_log_rows_once_per_message(make_gateway) -> None:
    gateway, server = make_gateway()
    with ws_connect(server, user_agent_header="ws-test-agent/1") as ws:
        for i in range(3):
            ws.send(create(chat(f"log{i}", stream=i == 1)))
        seen: dict[str, str] = {}
        while len(seen) < 3:
            frame = recv(ws)
            if frame["type"] == "universal.done" or (frame["type"] == "universal.created" and "response" in frame):
                seen[frame["metadata"]["eventId"]] = frame["metadata"]["logId"]
        ws.send(create(chat("bad", provider="nope")))
        assert recv(ws)["type"] == "universal.error"
        ws.send("not json")  # not a request: no row
        assert recv(ws)["type"] == "universal.error"
    everything = rows(server)
    assert len(everything) == 4
    for event_id, log_id in seen.items():
        (row,) = [r for r in everything if r["event_id"] == event_id]
        assert row["id"] == log_id and row["status_code"] == 200 and row["success"] is True
        assert row["path"] == "/openai/chat/completions" and row["tokens_in"] == 10 and row["tokens_out"] == 5
        assert row["user_agent"] == "ws-test-agent/1" and row["client_ip"] == "127.0.0.1"
    (bad,) = [r for r in everything if r["event_id"] == "bad"]
    assert bad["status_code"] == 400 and bad["success"] is False
    assert len({r["request_id"] for r in everything}) == 4  # each message is its own request
    assert gateway.telemetry.written == 4


def test_auth_by_header_and_by_subprotocol_and_refusal_without(make_gateway) -> None:
    _, server = make_gateway(gateway={"authentication": True, "tokens": [{"name": "app", "token": TOKEN}]})
    with ws_connect(server, additional_headers={"cf-aig-authorization": f"Bearer {TOKEN}"}) as ws:
        ws.send(create(chat("by-header")))
        assert recv(ws)["type"] == "universal.created"
    with ws_connect(server, subprotocols=[f"cf-aig-authorization.{TOKEN}"]) as ws:
        assert ws.subprotocol == f"cf-aig-authorization.{TOKEN}"  # nothing else offered: echoed
        ws.send(create(chat("by-subprotocol")))
        assert recv(ws)["type"] == "universal.created"
    for kwargs in ({}, {"subprotocols": ["cf-aig-authorization.wrong-token"]}):
        with pytest.raises(InvalidStatus) as refused:
            with ws_connect(server, **kwargs):
                pass
        assert refused.value.response.status_code == 401
    logged = rows(server)
    names = {r["event_id"]: r["token_name"] for r in logged if r["status_code"] != 401}
    assert names == {"by-header": "app", "by-subprotocol": "app"}
    # The refused upgrades are logged like refused HTTP requests; accepted sockets get no row.
    assert sorted(r["status_code"] for r in logged) == [200, 200, 401, 401]


def test_bad_session_header_refuses_the_upgrade(make_gateway) -> None:
    _, server = make_gateway()
    with pytest.raises(InvalidStatus) as refused:
        with ws_connect(server, additional_headers={"cf-aig-max-attempts": "99"}):
            pass
    assert refused.value.response.status_code == 400
    assert b"cf-aig-max-attempts" in refused.value.response.body


def test_mounted_gateway_and_other_websocket_paths(make_gateway) -> None:
    _, server = make_gateway(gateway={"mount_path": "/ai"})
    with ws_connect(server, "/ai") as ws:
        ws.send(create(chat("mounted")))
        assert recv(ws)["type"] == "universal.created"
    with ws_connect(server, "/ai/") as ws:
        ws.send(create(chat("mounted")))
        assert recv(ws)["type"] == "universal.created"
    # Other paths are the realtime pass-through (tests/realtime/): a provider without one is a 404.
    with pytest.raises(InvalidStatus) as refused:
        with ws_connect(server, "/ai/anthropic/v1/messages"):
            pass
    assert refused.value.response.status_code == 404


def test_each_message_is_traced_once(fake_upstream: RunningFake, serve) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from aigw_asgi import Gateway
    from tests.conftest import gateway_config

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    server = serve(Gateway(gateway_config(fake_upstream.url), tracer_provider=tracer_provider))
    fake_upstream.app.fail(500, times=None, model="broken")
    with ws_connect(server) as ws:
        ws.send(create([chat(None, model="broken"), chat(None)], eventId="traced"))
        assert recv(ws)["metadata"]["step"] == "1"
        ws.send(create(chat("traced-2", stream=True)))
        assert recv_until(ws, lambda f: f["type"] == "universal.done")
    deadline = time.monotonic() + 5
    while len([s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]) < 2:
        assert time.monotonic() < deadline, spans.get_finished_spans()
        time.sleep(0.01)
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind == SpanKind.SERVER]
    clients = [s for s in finished if s.kind == SpanKind.CLIENT]
    assert len(servers) == 2 and len(clients) == 3  # one per message; one per upstream call
    per_trace = sorted(sum(c.context.trace_id == s.context.trace_id for c in clients) for s in servers)
    assert per_trace == [1, 2]  # the fallback message's two attempts sit in its own trace
    tracer_provider.shutdown()


def test_stream_broken_midway_ends_with_an_error_frame(make_gateway) -> None:
    _, server = make_gateway()
    with ws_connect(server) as ws:
        ws.send(create(chat("cut", stream=True, headers={"x-fake-break-after": "2"})))
        frames = recv_until(ws, lambda f: f["type"] in ("universal.done", "universal.error"))
        ws.send(create(chat("after")))  # the socket is fine
        assert recv(ws)["type"] == "universal.created"
    assert frames[0]["type"] == "universal.created"
    last = frames[-1]
    assert last["type"] == "universal.error" and last["error"]["code"] == 2005
    assert last["metadata"]["eventId"] == "cut" and last["metadata"]["logId"] == frames[0]["metadata"]["logId"]
    assert "done" not in {f["type"] for f in frames}
    # Two upstream frames (the role chunk, chunk0), then the provider-format error event.
    assert "".join(delta_text(f) for f in frames[1:-1] if "choices" in f["response"]) == "chunk0 "
    assert "error" in frames[-2]["response"]


def test_ndjson_stream_from_ollama(make_gateway) -> None:
    _, server = make_gateway()
    step = {"provider": "ollama", "endpoint": "api/chat", "query": {"model": "llama3", "messages": MESSAGES}}
    with ws_connect(server) as ws:
        ws.send(create(step, eventId="nd"))
        frames = recv_until(ws, lambda f: f["type"] in ("universal.done", "universal.error"))
    assert frames[0]["metadata"]["contentType"].startswith("application/x-ndjson")
    assert frames[-1]["type"] == "universal.done"
    pieces = [f["response"] for f in frames[1:-1]]
    assert "".join(p["message"]["content"] for p in pieces) == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert pieces[-1]["done"] is True
