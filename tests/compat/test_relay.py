"""The Relay on its own: answers re-shaped per mode, driven with ASGI messages (no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aigw_asgi.compat.plan import Planner
from aigw_asgi.compat.relay import Relay, describe_error
from aigw_asgi.compat.surfaces import CHAT, MESSAGES
from aigw_asgi.config import Config
from aigw_asgi.context import RequestContext
from aigw_asgi.providers.registry import ProviderRegistry

PLANNER = Planner(ProviderRegistry.from_config(Config()), {})
ASK = [{"role": "user", "content": "hi"}]


def relay_for(surface: Any, body: dict[str, Any]) -> tuple[Relay, list[dict[str, Any]]]:
    steps = PLANNER.plan(surface, "generate", body, None)
    parent = RequestContext(gateway_id="g", method="POST", path="/compat/x", headers=[])
    parent.children.append(RequestContext(gateway_id="g", method="POST", path="/p", headers=[], parent=parent))
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    relay = Relay(send, parent, steps)
    relay.base = 0  # the child above is the step being answered
    return relay, sent


async def answer(relay: Relay, status: int, content_type: bytes, *chunks: bytes) -> None:
    await relay({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    for i, chunk in enumerate(chunks):
        await relay({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})


async def test_a_json_answer_is_converted_with_its_new_length() -> None:
    relay, sent = relay_for(MESSAGES, {"model": "openai/gpt", "max_tokens": 5, "messages": ASK})
    native = {"id": "c1", "model": "gpt", "choices": [{"message": {"content": "hey"}, "finish_reason": "stop"}]}
    raw = json.dumps(native).encode()
    await answer(relay, 200, b"application/json", raw[:10], raw[10:])
    start, body = sent
    converted = json.loads(body["body"])
    assert converted["content"] == [{"type": "text", "text": "hey"}] and converted["type"] == "message"
    assert (b"content-length", str(len(body["body"])).encode()) in start["headers"]
    assert (b"cf-aig-provider", b"openai") in start["headers"] and (b"cf-aig-model", b"gpt") in start["headers"]


async def test_an_unreadable_2xx_answer_becomes_a_502_in_surface_shape() -> None:
    relay, sent = relay_for(CHAT, {"model": "anthropic/claude", "messages": ASK})
    await answer(relay, 200, b"application/json", b"<html>oops</html>")
    assert sent[0]["status"] == 502
    assert json.loads(sent[1]["body"])["error"]["code"] == 2005
    assert relay.parent.children[0].status_code == 502


async def test_a_stream_is_translated_chunk_by_chunk() -> None:
    relay, sent = relay_for(CHAT, {"model": "anthropic/claude", "messages": ASK, "stream": True})
    start = b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":{}}}\n\n'
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "yo"}}
    text = b"event: content_block_delta\ndata: " + json.dumps(delta, separators=(",", ":")).encode() + b"\n\n"
    await relay({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await relay({"type": "http.response.body", "body": start + text[:20], "more_body": True})
    assert len(sent) == 2 and b"chat.completion.chunk" in sent[1]["body"]  # the role chunk, at once
    await relay({"type": "http.response.body", "body": text[20:], "more_body": True})
    assert b'"content":"yo"' in sent[2]["body"]
    await relay({"type": "http.response.body", "body": b"", "more_body": False})
    assert b"upstream stream ended before its last event" in sent[3]["body"]  # no message_delta came
    assert relay.parent.children[0].error is not None


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            b'{"success":false,"result":[],"messages":[],"error":[{"code":2003,"message":"Rate limited"}]}',
            "Rate limited",
            2003,
        ),
        (
            b'{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}',
            "bad key",
            "invalid_api_key",
        ),
        (b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "Overloaded", None),
        (b'[{"error":{"code":400,"message":"bad arg","status":"INVALID_ARGUMENT"}}]', "bad arg", "INVALID_ARGUMENT"),
        (b'{"error":"model not found"}', "model not found", None),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", None),
        (b"", "upstream answered HTTP 502", None),
    ],
)
def test_describe_error_reads_every_shape(body: bytes, message: str, code: Any) -> None:
    assert describe_error(body, 502) == (message, code)


async def test_an_upstream_error_in_the_surface_shape_passes_verbatim() -> None:
    relay, sent = relay_for(CHAT, {"model": "openai/gpt", "messages": ASK})
    original = b'{"error":{"message":"nope","type":"invalid_request_error","param":"messages","code":"x"}}'
    await answer(relay, 400, b"application/json", original)
    assert sent[0]["status"] == 400 and sent[1]["body"] == original
