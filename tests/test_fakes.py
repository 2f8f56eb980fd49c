"""Tests for the test infrastructure itself: the fake upstream must satisfy the official SDKs.

Why: every gateway test trusts the fake. If its wire format drifted from what the real SDKs parse,
gateway tests would pass against a fiction. So the fake is checked here with ``openai`` and
``anthropic`` directly (no gateway), and with httpx for providers without an SDK installed.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from tests.fakes.upstream import FakeUpstream, RawResponse, RunningFake
from tests.servers import RedisServer, ServerThread

EXPECTED_TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4 "

# What a cut stream looks like to a client. Recent openai/anthropic SDKs ship on ``httpx2`` and let its
# transport error escape from stream iteration, so accept either flavour plus the SDKs' own APIError.
STREAM_CUT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.RemoteProtocolError,
    openai.APIError,
    anthropic.APIError,
)
try:
    import httpx2
except ImportError:  # older SDKs use httpx itself
    pass
else:
    STREAM_CUT_ERRORS += (httpx2.RemoteProtocolError,)


def _openai(fake: RunningFake) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test", max_retries=0, timeout=10)


def _anthropic(fake: RunningFake) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0, timeout=10)


def _sse_data(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body (tolerates CRLF separators)."""
    events = body.replace("\r\n", "\n").split("\n\n")
    return [line[len("data: ") :] for ev in events for line in ev.split("\n") if line.startswith("data: ")]


# ------------------------------------------------------------------------------------------ OpenAI


def test_openai_chat_non_stream(fake_upstream: RunningFake) -> None:
    fake_upstream.app.cached_tokens = 3
    with _openai(fake_upstream) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == EXPECTED_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 5)
    assert completion.usage.total_tokens == 15
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    req = fake_upstream.app.last
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.json["messages"] == [{"role": "user", "content": "hi"}]
    assert json.loads(req.body) == req.json
    assert req.model == "gpt-4o-mini"
    assert req.completed and not req.disconnected


def test_openai_chat_stream_with_usage(fake_upstream: RunningFake) -> None:
    with _openai(fake_upstream) as client:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.model for c in chunks} == {"gpt-4o"}


def test_openai_stream_without_include_usage_has_no_usage_chunk(fake_upstream: RunningFake) -> None:
    fake_upstream.app.chunks = 2
    with httpx.Client(base_url=fake_upstream.url) as client:
        resp = client.post("/v1/chat/completions", json={"model": "m", "messages": [], "stream": True})
    assert resp.headers["content-type"].startswith("text/event-stream")
    data = _sse_data(resp.text)
    assert data[-1] == "[DONE]"
    objs = [json.loads(d) for d in data[:-1]]
    assert len(objs) == 1 + 2 + 1  # role, content x2, finish
    assert all("usage" not in o for o in objs)


def test_openai_embeddings_float_and_base64(fake_upstream: RunningFake) -> None:
    with _openai(fake_upstream) as client:
        # The SDK asks for base64 by default and decodes it itself.
        result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        floats = client.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 8
    assert result.data[0].embedding != result.data[1].embedding
    assert result.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert result.usage.prompt_tokens == 10
    assert fake_upstream.app.requests[0].json["encoding_format"] == "base64"


def test_openai_models(fake_upstream: RunningFake) -> None:
    with _openai(fake_upstream) as client:
        ids = [m.id for m in client.models.list()]
    assert ids == fake_upstream.app.models


def test_openai_responses_api(fake_upstream: RunningFake) -> None:
    with _openai(fake_upstream) as client:
        response = client.responses.create(model="gpt-4o-mini", input="hi")
        assert response.output_text == EXPECTED_TEXT
        assert response.usage is not None and response.usage.output_tokens == 5
        events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    deltas = "".join(getattr(e, "delta", "") for e in events if e.type == "response.output_text.delta")
    assert deltas == EXPECTED_TEXT
    assert events[-1].type == "response.completed"


# ------------------------------------------------------------------------------------------ Anthropic


def test_anthropic_messages_non_stream(fake_upstream: RunningFake) -> None:
    with _anthropic(fake_upstream) as client:
        message = client.messages.create(
            model="claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert message.model == "claude-fake-1"
    assert message.content[0].type == "text" and message.content[0].text == EXPECTED_TEXT
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)
    assert message.stop_reason == "end_turn"
    req = fake_upstream.app.last
    assert req.path == "/v1/messages"
    # anthropic SDK 2.x sends "Authorization: Bearer"; older ones sent "x-api-key".
    assert req.headers.get("x-api-key") == "x" or req.headers.get("authorization") == "Bearer x"
    assert "anthropic-version" in req.headers


def test_anthropic_messages_stream(fake_upstream: RunningFake) -> None:
    with _anthropic(fake_upstream) as client:
        with client.messages.stream(
            model="claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
    assert pieces == [f"chunk{i} " for i in range(5)]
    assert final.content[0].type == "text" and final.content[0].text == EXPECTED_TEXT
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)
    assert final.stop_reason == "end_turn"


def test_anthropic_raw_event_sequence(fake_upstream: RunningFake) -> None:
    fake_upstream.app.chunks = 2
    with httpx.Client(base_url=fake_upstream.url) as client:
        body = {"model": "c", "max_tokens": 5, "messages": [], "stream": True}
        resp = client.post("/v1/messages", json=body)
    names = [line[len("event: ") :] for line in resp.text.split("\n") if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_error_format_in_sdk(fake_upstream: RunningFake) -> None:
    fake_upstream.app.fail(529)
    with _anthropic(fake_upstream) as client, pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 529
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "overloaded_error"


# ------------------------------------------------------------------------- Gemini / Workers AI / Ollama


def test_gemini_generate_and_stream(fake_upstream: RunningFake) -> None:
    path = "/v1beta/models/gemini-2.0-flash"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with httpx.Client(base_url=fake_upstream.url) as client:
        resp = client.post(f"{path}:generateContent", json=body, headers={"x-goog-api-key": "k"})
        stream = client.post(f"{path}:streamGenerateContent", params={"alt": "sse"}, json=body)
        array = client.post(f"{path}:streamGenerateContent", json=body)
    data = resp.json()
    assert data["candidates"][0]["content"]["parts"][0]["text"] == EXPECTED_TEXT
    assert data["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "totalTokenCount": 15,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}],
    }
    assert data["modelVersion"] == "gemini-2.0-flash"
    chunks = [json.loads(d) for d in _sse_data(stream.text)]
    assert len(chunks) == 5
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == EXPECTED_TEXT
    assert all("usageMetadata" not in c for c in chunks[:-1])
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 15
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in array.json()] == list(
        f"chunk{i} " for i in range(5)
    )
    assert fake_upstream.app.requests[1].query == {"alt": ["sse"]}
    assert fake_upstream.app.requests[0].model == "gemini-2.0-flash"


def test_workers_ai_run(fake_upstream: RunningFake) -> None:
    path = "/client/v4/accounts/acct123/ai/run/@cf/meta/llama-3.1-8b-instruct"
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=fake_upstream.url) as client:
        resp = client.post(path, json=body)
        stream = client.post(path, json={**body, "stream": True})
    assert resp.json() == {
        "result": {
            "response": EXPECTED_TEXT,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        },
        "success": True,
        "errors": [],
        "messages": [],
    }
    data = _sse_data(stream.text)
    assert data[-1] == "[DONE]"
    objs = [json.loads(d) for d in data[:-1]]
    assert "".join(o["response"] for o in objs) == EXPECTED_TEXT
    assert objs[-1]["usage"]["completion_tokens"] == 5
    assert fake_upstream.app.requests[0].model == "@cf/meta/llama-3.1-8b-instruct"


def test_ollama_chat(fake_upstream: RunningFake) -> None:
    body: dict[str, Any] = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=fake_upstream.url) as client:
        resp = client.post("/api/chat", json={**body, "stream": False})
        stream = client.post("/api/chat", json=body)  # Ollama streams by default
    data = resp.json()
    assert data["message"] == {"role": "assistant", "content": EXPECTED_TEXT}
    assert (data["prompt_eval_count"], data["eval_count"], data["done"]) == (10, 5, True)
    assert stream.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in stream.text.splitlines()]
    assert [line["done"] for line in lines] == [False] * 5 + [True]
    assert "".join(line["message"]["content"] for line in lines) == EXPECTED_TEXT
    assert (lines[-1]["prompt_eval_count"], lines[-1]["eval_count"]) == (10, 5)


@pytest.mark.parametrize(
    ("path", "status", "check"),
    [
        ("/v1/chat/completions", 400, lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/messages", 401, lambda b: (b["type"], b["error"]["type"]) == ("error", "authentication_error")),
        ("/v1beta/models/g:generateContent", 429, lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED"),
        ("/client/v4/accounts/a/ai/run/@cf/x", 500, lambda b: b["success"] is False and b["errors"]),
        ("/api/chat", 503, lambda b: isinstance(b["error"], str)),
    ],
)
def test_forced_errors_use_provider_format(fake_upstream: RunningFake, path: str, status: int, check: Any) -> None:
    with httpx.Client(base_url=fake_upstream.url) as client:
        resp = client.post(path, json={"model": "m"}, headers={"x-fake-status": str(status)})
    assert resp.status_code == status
    assert check(resp.json())
    assert ("retry-after" in resp.headers) == (status in (429, 503))


def test_unknown_path_is_404(fake_upstream: RunningFake) -> None:
    with httpx.Client(base_url=fake_upstream.url) as client:
        resp = client.get("/nope")
        wrong_method = client.get("/v1/chat/completions")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"message": "not found", "type": "invalid_request_error"}}
    assert wrong_method.status_code == 404
    assert fake_upstream.app.requests[0].path == "/nope"


# ------------------------------------------------------------------------------------------ steering


def test_rate_limit_is_sdk_rate_limit_error(fake_upstream: RunningFake) -> None:
    fake_upstream.app.fail(429, times=1, retry_after="7")
    with _openai(fake_upstream) as client:
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert info.value.response.headers["retry-after"] == "7"
        # times=1: the next request succeeds again.
        ok = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert ok.choices[0].message.content == EXPECTED_TEXT


def test_rules_are_fifo_and_filtered(fake_upstream: RunningFake) -> None:
    app = fake_upstream.app
    app.fail(500, times=1, path="/v1/messages")
    app.fail(503, times=2)
    with httpx.Client(base_url=fake_upstream.url) as client:
        statuses = [client.post("/v1/chat/completions", json={"model": "m"}).status_code for _ in range(3)]
        anth = client.post("/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []})
        app.steer(times=None, model="short-model", chunks=1)
        short = client.post("/v1/chat/completions", json={"model": "short-model"}).json()
        other = client.post("/v1/chat/completions", json={"model": "m"}).json()
    assert statuses == [503, 503, 200]  # the /v1/messages rule is skipped, the 503 rule used up
    assert anth.status_code == 500
    assert short["choices"][0]["message"]["content"] == "chunk0 "
    assert other["choices"][0]["message"]["content"] == EXPECTED_TEXT
    with pytest.raises(TypeError):
        app.steer(nonsense=1)


def test_broken_stream_raises_in_sdk(fake_upstream: RunningFake) -> None:
    fake_upstream.app.break_after = 3
    with _openai(fake_upstream) as client:
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
        seen: list[str] = []
        with pytest.raises(STREAM_CUT_ERRORS):
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "chunk0 chunk1 "
    assert not fake_upstream.app.last.completed


def test_broken_stream_via_header_in_anthropic_sdk(fake_upstream: RunningFake) -> None:
    with _anthropic(fake_upstream) as client, pytest.raises(STREAM_CUT_ERRORS):
        with client.messages.stream(
            model="c",
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-break-after": "4"},
        ) as stream:
            stream.get_final_message()


def test_break_after_beyond_length_still_omits_terminal_frame(fake_upstream: RunningFake) -> None:
    with httpx.Client(base_url=fake_upstream.url) as client:
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "m", "stream": True},
            headers={"x-fake-break-after": "999"},
        ) as resp:
            received = b""
            with pytest.raises(httpx.RemoteProtocolError):
                for part in resp.iter_bytes():
                    received += part
    assert b"[DONE]" not in received and b'"finish_reason":"stop"' in received


def test_truncated_non_stream_body(fake_upstream: RunningFake) -> None:
    fake_upstream.app.break_after = 0
    with httpx.Client(base_url=fake_upstream.url) as client, pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json={"model": "m"})


def test_chunk_delay_spaces_out_chunks(fake_upstream: RunningFake) -> None:
    """Arrival times prove the stream is delivered incrementally, not buffered."""
    delay = 0.2
    arrivals: list[float] = []
    with httpx.Client(base_url=fake_upstream.url) as client:
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "m", "stream": True},
            headers={"x-fake-chunk-delay": str(delay), "x-fake-chunks": "3"},
        ) as resp:
            for _line in resp.iter_lines():
                if _line.startswith("data: "):
                    arrivals.append(time.monotonic())
    assert len(arrivals) == 1 + 3 + 1 + 1  # role, 3 content, finish, [DONE]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) > delay * 0.3  # buffered delivery would show ~0 gaps
    assert arrivals[-1] - arrivals[0] > delay * (len(arrivals) - 1) * 0.8


def test_delay_before_headers(fake_upstream: RunningFake) -> None:
    fake_upstream.app.delay_s = 0.3
    with httpx.Client(base_url=fake_upstream.url) as client:
        start = time.monotonic()
        resp = client.post("/v1/chat/completions", json={"model": "m"})
        elapsed = time.monotonic() - start
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json={"model": "m"}, timeout=0.05)
    assert resp.status_code == 200 and 0.25 < elapsed < 5


def test_gzip_body_decodes(fake_upstream: RunningFake) -> None:
    with httpx.Client(base_url=fake_upstream.url, headers={"accept-encoding": "identity"}) as client:
        resp = client.post("/v1/chat/completions", json={"model": "m"}, headers={"x-fake-gzip": "1"})
        raw = client.post("/api/chat", json={"model": "m", "stream": False}, headers={"x-fake-gzip": "1"})
        with client.stream(
            "POST",
            "/v1/messages",
            json={"model": "m", "max_tokens": 5, "stream": True},
            headers={"x-fake-gzip": "1"},
        ) as stream_resp:
            stream_text = "".join(stream_resp.iter_text())
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.json()["choices"][0]["message"]["content"] == EXPECTED_TEXT
    assert raw.headers["content-encoding"] == "gzip" and raw.json()["done"] is True
    assert stream_resp.headers["content-encoding"] == "gzip"
    assert "event: message_stop" in stream_text
    with _openai(fake_upstream) as sdk:
        fake_upstream.app.gzip = True
        assert sdk.chat.completions.create(model="m", messages=[]).choices[0].message.content == EXPECTED_TEXT
        chunks = list(sdk.chat.completions.create(model="m", messages=[], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == EXPECTED_TEXT


def test_gzip_raw_bytes_are_really_gzip(fake_upstream: RunningFake) -> None:
    fake_upstream.app.gzip = True
    with httpx.Client(base_url=fake_upstream.url) as client:
        with client.stream("POST", "/v1/embeddings", json={"model": "m", "input": "x"}) as resp:
            raw = b"".join(resp.iter_raw())
    assert raw[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(raw))["object"] == "list"


def test_hang_until_release(fake_upstream: RunningFake) -> None:
    app = fake_upstream.app
    app.hang = True
    with httpx.Client(base_url=fake_upstream.url) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json={"model": "m"}, timeout=0.3)
        assert app.wait_for_requests(1)[0].path == "/v1/chat/completions"
        # The client gave up; the fake notices the disconnect and stops hanging.
        deadline = time.monotonic() + 5
        while not app.requests[0].disconnected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.requests[0].disconnected
    # A hang doubles as a gate: release() lets waiting requests proceed normally.
    with ServerThread(FakeUpstream()) as server:
        gated: FakeUpstream = server.app
        gated.hang = True
        results: list[int] = []

        def call() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                results.append(c.post("/v1/chat/completions", json={"model": "m"}).status_code)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        gated.wait_for_requests(3)
        time.sleep(0.1)
        assert results == []
        gated.release()
        for t in threads:
            t.join(10)
    assert results == [200, 200, 200]


async def test_async_client_and_await_requests(fake_upstream: RunningFake) -> None:
    async with openai.AsyncOpenAI(base_url=fake_upstream.url + "/v1", api_key="sk", max_retries=0) as client:
        stream = await client.chat.completions.create(model="m", messages=[], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == EXPECTED_TEXT
    assert len(await fake_upstream.app.await_requests(1)) == 1


def test_client_disconnect_mid_stream_is_recorded(fake_upstream: RunningFake) -> None:
    """Gateways must cancel upstream work when their client leaves; the fake makes that observable."""
    fake_upstream.app.chunk_delay_s = 0.1
    fake_upstream.app.chunks = 50
    with httpx.Client(base_url=fake_upstream.url) as client:
        with client.stream("POST", "/v1/chat/completions", json={"model": "m", "stream": True}) as resp:
            next(resp.iter_lines())
    deadline = time.monotonic() + 5
    while not fake_upstream.app.last.disconnected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_upstream.app.last.disconnected and not fake_upstream.app.last.completed


def test_raw_response_and_bad_header(fake_upstream: RunningFake) -> None:
    fake_upstream.app.steer(response=RawResponse(502, b"<html>bad gateway</html>", content_type="text/html"))
    with httpx.Client(base_url=fake_upstream.url) as client:
        html = client.post("/v1/chat/completions", json={"model": "m"})
        bad = client.post("/v1/chat/completions", json={"model": "m"}, headers={"x-fake-delay": "soon"})
    assert (html.status_code, html.text) == (502, "<html>bad gateway</html>")
    assert bad.status_code == 400 and "x-fake-delay" in bad.json()["error"]["message"]


def test_reset_clears_everything(fake_upstream: RunningFake) -> None:
    app = fake_upstream.app
    app.status, app.chunks = 500, 1
    app.fail(401, times=None)
    with httpx.Client(base_url=fake_upstream.url) as client:
        assert client.post("/v1/chat/completions", json={"model": "m"}).status_code == 401
        app.reset()
        assert app.requests == []
        resp = client.post("/v1/chat/completions", json={"model": "m"})
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == EXPECTED_TEXT


# ------------------------------------------------------------------------------------------ servers


def test_serve_fixture_runs_any_asgi_app(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})

    server = serve(app, lifespan="off")
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert httpx.get(server.url).text == "hello"


def test_serve_fixture_websockets_without_deprecation_warnings(serve: Any) -> None:
    """The default ws implementation must not emit uvicorn's deprecation warning (warnings are errors)."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket
    from websockets.sync.client import connect

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("echo:" + await websocket.receive_text())
        await websocket.close()

    server = serve(Starlette(routes=[WebSocketRoute("/ws", echo)]), lifespan="on")
    with connect(server.ws_url + "/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo:hi"


def test_redis_server_stop_and_restart_on_same_port(redis_url: str, redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        assert client.ping() is True
        client.set("k", "v")
        port = redis_server.port
        redis_server.stop()
        assert not redis_server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert redis_server.port == port
        assert client.ping() is True
        assert client.get("k") is None  # no persistence: a restart starts empty
    finally:
        client.close()


def test_redis_url_fixture_flushes(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("leftover", "1")
    finally:
        client.close()
