"""The gateway under real uvicorn, called by the official SDKs by changing only ``base_url``."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from tests.fakes.upstream import RunningFake

MESSAGES = [{"role": "user", "content": "hello"}]


def test_openai_chat_non_stream(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-client-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert completion.usage is not None and completion.usage.prompt_tokens == 10
    headers = raw.headers
    assert headers["cf-aig-cache-status"] == "MISS" and headers["cf-aig-step"] == "0"
    assert headers["cf-aig-provider"] == "openai" and headers["cf-aig-model"] == "gpt-4o-mini"
    assert headers["cf-aig-log-id"] == headers["cf-aig-request-id"] == headers["cf-aig-event-id"]
    seen = fake_upstream.app.last
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-client-key"  # the client's key passes through
    assert seen.headers["accept-encoding"] == "identity"


def test_openai_stream_arrives_as_the_upstream_sends_it(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.chunk_delay_s = 0.25
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    start = time.perf_counter()
    arrivals: list[tuple[float, str]] = []
    usage_seen = False
    for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        if chunk.usage is not None:
            usage_seen = True
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.perf_counter() - start, chunk.choices[0].delta.content))
    assert [text for _, text in arrivals] == [f"chunk{i} " for i in range(5)]
    # Each content chunk arrived on its own, about one chunk delay after the previous one —
    # nothing was held back until the end of the stream.
    gaps = [b - a for (a, _), (b, _) in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap > 0.05 for gap in gaps), gaps  # buffered delivery would show ~0 gaps
    assert arrivals[-1][0] - arrivals[0][0] > 0.8
    # The gateway asked the upstream for usage, and hid the extra chunk from this client.
    assert fake_upstream.app.last.json["stream_options"] == {"include_usage": True}
    assert not usage_seen


def test_openai_stream_with_usage_requested(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="sk-x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 5
    assert fake_upstream.app.last.path == "/v1/chat/completions"  # /v1 not doubled


def test_openai_embeddings_and_models(make_gateway) -> None:
    _, server = make_gateway()
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    emb = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0
    assert [m.id for m in client.models.list()]


def test_anthropic_messages_non_stream_and_stream(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    client = anthropic.Anthropic(base_url=f"{server.url}/anthropic", api_key="sk-ant-x", max_retries=0)
    message = client.messages.create(model="claude-fake-1", max_tokens=50, messages=MESSAGES)
    assert message.content[0].text == "chunk0 chunk1 chunk2 chunk3 chunk4 "  # type: ignore[union-attr]
    assert message.usage.input_tokens == 10
    assert fake_upstream.app.last.path == "/v1/messages"
    with client.messages.stream(model="claude-fake-1", max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    assert final.usage.output_tokens == 5


def test_gzip_answers_are_forwarded_intact(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.gzip = True
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2 chunk3 chunk4 "
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("chunk0")


def test_upstream_errors_pass_through_verbatim(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.fail(429)
    client = openai.OpenAI(base_url=f"{server.url}/openai", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.response.headers["cf-aig-step"] == "0"
    body = info.value.response.json()
    assert "error" in body and "success" not in body  # the provider's body, not our envelope


def test_stream_broken_mid_way_ends_with_an_error_event(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.break_after = 2
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post(
            "/openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        )
    assert resp.status_code == 200  # the status was sent before the break …
    events = [line for line in resp.text.split("\n\n") if line.strip()]
    assert len(events) == 3  # … two upstream events, then our error event, never a silent end
    last = json.loads(events[-1].removeprefix("data: "))
    assert "error" in last and "mid-stream" in last["error"]["message"]


def test_retries_on_5xx_then_succeed(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.fail(503, times=2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post(
            "/openai/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers={"cf-aig-max-attempts": "3", "cf-aig-retry-delay": "10"},
        )
    assert resp.status_code == 200
    assert len(fake_upstream.app.requests) == 3


def test_first_byte_timeout_is_504(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.delay_s = 2.0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post(
            "/openai/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers={"cf-aig-request-timeout": "200"},
        )
    assert resp.status_code == 504
    assert resp.json()["error"][0]["code"] == 2006
    assert resp.headers["cf-aig-log-id"]


def test_unreachable_upstream_is_502(serve) -> None:
    from aigw_asgi import Gateway
    from tests.conftest import gateway_config
    from tests.servers import free_port

    gateway = Gateway(gateway_config(f"http://127.0.0.1:{free_port()}"))
    server = serve(gateway)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        resp = client.post("/openai/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert resp.status_code == 502
    assert resp.json() == {
        "success": False,
        "result": [],
        "messages": [],
        "error": [{"code": 2005, "message": "Failed to get response from provider (ConnectionRefusedError)"}],
    }


def test_client_disconnect_closes_the_upstream_stream(make_gateway, fake_upstream: RunningFake) -> None:
    _, server = make_gateway()
    fake_upstream.app.chunk_delay_s = 0.3
    fake_upstream.app.chunks = 20
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream(
            "POST",
            "/openai/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        ) as resp:
            for _ in resp.iter_raw():
                break  # read one chunk, then hang up
    deadline = time.time() + 5
    while time.time() < deadline and not fake_upstream.app.last.disconnected:
        time.sleep(0.05)
    assert fake_upstream.app.last.disconnected, "the gateway kept reading from the upstream"
