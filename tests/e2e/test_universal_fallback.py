"""The universal endpoint under real uvicorn against fake upstreams that fail on demand.

Two fake providers: the session fake (as ``openai``) and a second fake (as ``custom-second``),
plus a TCP server that resets every connection before answering. Delays are tiny and only
checked from below (a retry never comes sooner than its backoff), so nothing here is timed.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.conftest import gateway_config
from tests.fakes.upstream import TIMER_SLACK_S, FakeUpstream, RunningFake
from tests.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hello"}]


def chat(provider: str = "openai", model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "provider": provider,
        "endpoint": "chat/completions",
        "headers": {"authorization": "Bearer sk-step"},
        "query": {"model": model, "messages": MESSAGES, **extra.pop("query", {})},
    }
    step.update(extra)
    return step


class ResetServer:
    """Accepts connections, reads the request, then resets the connection (RST) before any answer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(1)
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def second(serve: Callable[..., ServerThread]) -> RunningFake:
    app = FakeUpstream()
    server = serve(app)
    yield RunningFake(url=server.url, app=app, server=server)
    app.reset()


@pytest.fixture
def reset_server() -> Iterator[ResetServer]:
    server = ResetServer()
    yield server
    server.close()


@pytest.fixture
def gateway(fake_upstream: RunningFake, second: RunningFake, serve: Callable[..., ServerThread], reset_server):
    """``gateway(**sections) -> (server, contexts)``: contexts are the parents' RequestContexts."""

    def _make(**sections: Any) -> tuple[ServerThread, list[Any]]:
        from aigw_asgi import Gateway

        providers = {
            "custom-second": {"base_url": f"{second.url}/v1"},
            "custom-reset": {"base_url": f"http://127.0.0.1:{reset_server.port}/v1"},
            **sections.pop("providers", {}),
        }
        sections.setdefault("retries", {"jitter": 0.0})
        gw = Gateway(gateway_config(fake_upstream.url, providers=providers, **sections))
        contexts: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope["state"] = state = dict(scope.get("state") or {})
                try:
                    await gw(scope, receive, send)
                finally:
                    contexts.append(state.get("aigw"))
            else:
                await gw(scope, receive, send)

        return serve(app), contexts

    return _make


def post(server: ServerThread, body: Any, **headers: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return client.post("/", json=body, headers=headers)


def gaps(app: FakeUpstream) -> list[float]:
    times = [r.received_at for r in app.requests]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# -- the happy path and the headers -----------------------------------------------------------------


def test_one_step_object_answers_like_the_provider(gateway, fake_upstream: RunningFake) -> None:
    server, contexts = gateway()
    resp = post(server, chat(), **{"cf-aig-event-id": "evt-1"})
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"].startswith("chunk0")
    h = resp.headers
    assert h["cf-aig-step"] == "0" and h["cf-aig-cache-status"] == "MISS"
    assert h["cf-aig-provider"] == "openai" and h["cf-aig-model"] == "gpt-4o-mini"
    assert h["cf-aig-event-id"] == "evt-1"
    [parent] = contexts
    [child] = parent.children
    assert h["cf-aig-log-id"] == child.log_id and h["cf-aig-request-id"] == parent.request_id == child.request_id
    assert child.parent is parent and child.usage.tokens_in == 10 and child.usage.tokens_out == 5
    seen = fake_upstream.app.last
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-step"
    assert not any(k.startswith("cf-aig-") for k in seen.headers)


def test_bad_steps_are_400_naming_the_field(gateway, fake_upstream: RunningFake) -> None:
    server, _ = gateway()
    resp = post(server, [chat(), chat(config={"maxAttempts": 7})])
    assert resp.status_code == 400
    error = resp.json()["error"][0]
    assert error["code"] == 2004 and "steps[1].config.maxAttempts" in error["message"]
    assert resp.headers["cf-aig-step"] == "0" and resp.headers["cf-aig-log-id"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        broken = client.post("/", content=b"[{", headers={"content-type": "application/json"})
        bad_header = client.post("/", json=[chat()], headers={"cf-aig-max-attempts": "0"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"][0]["message"]
    assert bad_header.status_code == 400 and "cf-aig-max-attempts" in bad_header.json()["error"][0]["message"]
    assert fake_upstream.app.requests == []


def test_a_step_header_name_ending_in_a_newline_is_a_400_not_a_500(gateway, fake_upstream: RunningFake) -> None:
    """Found by tests/robustness: the name check's "$" matched before a final newline, so the name
    reached aiohttp, which refuses it (header injection guard) -> an unhandled error, a 500."""
    server, _ = gateway()
    resp = post(server, chat(headers={"x-trace\n": "1"}))
    assert resp.status_code == 400
    error = resp.json()["error"][0]
    assert error["code"] == 2004 and "steps[0].headers" in error["message"]
    assert fake_upstream.app.requests == []


def test_a_method_that_is_not_a_string_is_a_400_not_a_500(gateway, fake_upstream: RunningFake) -> None:
    """Found by tests/robustness: ``"method": []`` met a set lookup, an unhandled TypeError."""
    server, _ = gateway()
    resp = post(server, chat(method=["POST"]))
    assert resp.status_code == 400
    error = resp.json()["error"][0]
    assert error["code"] == 2004 and "steps[0].method" in error["message"]


def test_an_empty_unknown_key_is_quoted_in_the_field_path(gateway, fake_upstream: RunningFake) -> None:
    """Found by tests/robustness: ``{"": 1}`` was reported as "steps[0].: unknown key"."""
    server, _ = gateway()
    resp = post(server, {**chat(), "": 1})
    assert resp.status_code == 400
    assert resp.json()["error"][0]["message"] == 'Invalid universal request: steps[0][""]: unknown key'


# -- fallback ---------------------------------------------------------------------------------------


def test_5xx_retries_then_falls_back_to_the_second_provider(gateway, fake_upstream, second) -> None:
    server, contexts = gateway()
    fake_upstream.app.fail(500, times=None)
    resp = post(server, [chat(config={"maxAttempts": 2}), chat("custom-second", "other-model")])
    assert resp.status_code == 200
    assert resp.headers["cf-aig-step"] == "1"
    assert resp.headers["cf-aig-provider"] == "custom-second" and resp.headers["cf-aig-model"] == "other-model"
    assert len(fake_upstream.app.requests) == 2 and len(second.app.requests) == 1
    first, fallback = contexts[0].children
    # Each attempt is its own record: step 0 has one failed attempt kept plus its final state.
    assert [(a.step, a.attempt, a.status_code) for a in first.attempts] == [(0, 1, 500)]
    assert (first.step, first.attempt, first.status_code) == (0, 2, 500)
    assert (fallback.step, fallback.attempt, fallback.status_code) == (1, 1, 200)
    ids = {a.log_id for a in first.attempts} | {first.log_id, fallback.log_id}
    assert len(ids) == 3
    assert resp.headers["cf-aig-log-id"] == fallback.log_id


def test_a_4xx_falls_through_without_retries(gateway, fake_upstream, second) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(404, times=None, error_message="The model `nope` does not exist")
    resp = post(server, [chat(model="nope", config={"maxAttempts": 3}), chat("custom-second")])
    assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "1"
    assert len(fake_upstream.app.requests) == 1  # a 404 is not retried, it moves on


def test_all_steps_fail_answers_the_last_steps_upstream_error(gateway, fake_upstream, second) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(503, times=None, retry_after=None)
    second.app.fail(401, times=None)
    resp = post(server, [chat(), chat("custom-second")])
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"  # the provider's own body, verbatim
    assert resp.headers["cf-aig-step"] == "1" and resp.headers["cf-aig-provider"] == "custom-second"


def test_the_last_steps_gateway_error_is_answered_with_its_index(gateway, fake_upstream, reset_server) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(500, times=None)
    resp = post(server, [chat(), chat("custom-reset", config={"maxAttempts": 2, "retryDelay": 0})])
    assert resp.status_code == 502 and resp.json()["error"][0]["code"] == 2005
    assert resp.headers["cf-aig-step"] == "1"
    assert reset_server.connections == 2


def test_a_reset_before_headers_is_a_connect_error_retried_then_fallen_back(gateway, reset_server) -> None:
    server, contexts = gateway()
    resp = post(server, [chat("custom-reset", config={"maxAttempts": 3}), chat()])
    assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "1"
    assert reset_server.connections == 3
    failed = contexts[0].children[0]
    assert [a.error_type for a in failed.attempts] == ["connect_error"] * 2
    assert failed.error_type == "connect_error"


# -- retries: counts, delays, Retry-After, precedence -----------------------------------------------


@pytest.mark.parametrize(
    ("backoff", "minimum"),
    [("constant", [0.04] * 3), ("linear", [0.04, 0.08, 0.12]), ("exponential", [0.04, 0.08, 0.16])],
)
def test_backoff_schedules_space_the_attempts(gateway, fake_upstream, backoff: str, minimum: list[float]) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(503, times=3, retry_after=None)
    resp = post(server, chat(config={"maxAttempts": 4, "retryDelay": 40, "backoff": backoff}))
    assert resp.status_code == 200
    assert len(fake_upstream.app.requests) == 4
    spaced = zip(gaps(fake_upstream.app), minimum, strict=True)
    assert all(gap >= want - TIMER_SLACK_S for gap, want in spaced), gaps(fake_upstream.app)


def test_retry_after_is_honoured_within_the_cap(gateway, fake_upstream, second) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(429, times=1, retry_after="0.3")
    resp = post(server, chat(config={"maxAttempts": 2, "retryDelay": 0}))
    assert resp.status_code == 200 and len(fake_upstream.app.requests) == 2
    assert gaps(fake_upstream.app)[0] >= 0.3 - TIMER_SLACK_S
    # Beyond retries.max_retry_after_ms: no second try on this step, straight to the fallback.
    fake_upstream.app.reset()
    fake_upstream.app.fail(429, times=1, retry_after="60")
    resp = post(server, [chat(config={"maxAttempts": 3}), chat("custom-second")])
    assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "1"
    assert len(fake_upstream.app.requests) == 1


def test_precedence_step_config_then_request_headers_then_gateway(gateway, fake_upstream, second) -> None:
    server, _ = gateway(retries={"max_attempts": 2, "jitter": 0.0})
    fake_upstream.app.fail(500, times=None)
    second.app.fail(500, times=None)
    body = [chat(config={"maxAttempts": 1}), chat("custom-second")]
    resp = post(server, body, **{"cf-aig-max-attempts": "3"})
    assert resp.status_code == 500
    assert (len(fake_upstream.app.requests), len(second.app.requests)) == (1, 3)  # step config, then header
    fake_upstream.app.requests.clear()
    second.app.requests.clear()
    resp = post(server, body)
    assert (len(fake_upstream.app.requests), len(second.app.requests)) == (1, 2)  # gateway [retries]
    fake_upstream.app.requests.clear()
    second.app.requests.clear()
    body[1]["headers"]["cf-aig-max-attempts"] = "4"  # step headers beat request headers too
    resp = post(server, body, **{"cf-aig-max-attempts": "3"})
    assert (len(fake_upstream.app.requests), len(second.app.requests)) == (1, 4)


# -- timeouts ---------------------------------------------------------------------------------------


def test_a_slow_first_byte_times_out_and_falls_back(gateway, fake_upstream, second) -> None:
    server, contexts = gateway()
    fake_upstream.app.delay_s = 3.0
    resp = post(server, [chat(config={"requestTimeout": 150, "maxAttempts": 2}), chat("custom-second")])
    assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "1"
    failed = contexts[0].children[0]
    assert [a.error_type for a in failed.attempts] + [failed.error_type] == ["timeout", "timeout"]
    fake_upstream.app.wait_for_requests(2)


def test_a_hang_times_out_to_504_when_nothing_is_left(gateway, fake_upstream) -> None:
    server, _ = gateway()
    fake_upstream.app.hang = True
    resp = post(server, chat(), **{"cf-aig-request-timeout": "150"})
    assert resp.status_code == 504 and resp.json()["error"][0]["code"] == 2006
    assert resp.headers["cf-aig-step"] == "0"


def test_a_slow_stream_is_not_cut_once_it_started(gateway, fake_upstream) -> None:
    server, _ = gateway()
    fake_upstream.app.chunk_delay_s = 0.1  # the whole stream takes longer than the timeout
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post("/", json=chat(query={"stream": True}, config={"requestTimeout": 150}))
    assert resp.status_code == 200
    assert resp.text.rstrip().endswith("data: [DONE]")


# -- streams ----------------------------------------------------------------------------------------


def test_stream_falls_back_before_its_first_byte(gateway, fake_upstream, second) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(503, times=None, retry_after=None)
    second.app.chunk_delay_s = 0.05
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream(
            "POST", "/", json=[chat(query={"stream": True}), chat("custom-second", query={"stream": True})]
        ) as resp:
            assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "1"
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    texts = [
        json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:-1] if json.loads(e[6:])["choices"]
    ]
    assert "".join(t or "" for t in texts) == "chunk0 chunk1 chunk2 chunk3 chunk4 "


def test_no_fallback_after_the_first_byte(gateway, fake_upstream, second) -> None:
    server, contexts = gateway()
    fake_upstream.app.break_after = 2
    resp = post(server, [chat(query={"stream": True}), chat("custom-second")])
    assert resp.status_code == 200 and resp.headers["cf-aig-step"] == "0"
    events = [line for line in resp.text.split("\n\n") if line.strip()]
    assert "mid-stream" in json.loads(events[-1].removeprefix("data: "))["error"]["message"]
    assert second.app.requests == []
    assert len(contexts[0].children) == 1


# -- the official SDK -------------------------------------------------------------------------------


def test_openai_sdk_against_a_universal_workflow(gateway, fake_upstream, second, request) -> None:
    server, _ = gateway()
    fake_upstream.app.fail(500, times=None)
    seen: list[httpx.Response] = []
    http = httpx.Client(event_hooks={"response": [seen.append]})
    request.addfinalizer(http.close)
    client = openai.OpenAI(base_url=server.url, api_key="sk-unused", max_retries=0, http_client=http)
    steps = [chat(), chat("custom-second", "second-model")]
    completion = client.post("/", cast_to=ChatCompletion, body=steps)
    assert isinstance(completion, ChatCompletion) and completion.model == "second-model"
    assert seen[-1].headers["cf-aig-step"] == "1"
    stream_steps = [chat(query={"stream": True}), chat("custom-second", "second-model", query={"stream": True})]
    stream = client.post(
        "/", cast_to=ChatCompletion, body=stream_steps, stream=True, stream_cls=openai.Stream[ChatCompletionChunk]
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
