"""The stream pipe: upstream SSE bytes -> surface SSE bytes, and whole answers replayed as events."""

from __future__ import annotations

import json

from aigw_asgi.compat import ir
from aigw_asgi.compat.anthropic_stream import AnthropicStreamEncoder
from aigw_asgi.compat.openai_chat_stream import ChatStreamDecoder, ChatStreamEncoder
from aigw_asgi.compat.surfaces import StreamTranslator, events_from_response

from .helpers import sse


def chunk(delta: dict, finish: str | None = None) -> bytes:
    return sse({"id": "c", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_bytes_split_anywhere_translate_as_they_arrive() -> None:
    translator = StreamTranslator(ChatStreamDecoder(), AnthropicStreamEncoder())
    raw = chunk({"content": "Hel"}) + chunk({"content": "lo"}) + chunk({}, "stop") + sse("[DONE]")
    out = [translator.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)]
    assert out[0] == b""  # nothing whole yet
    joined = b"".join(out) + translator.finish()
    assert joined.count(b"text_delta") == 2 and joined.endswith(
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


def test_an_unreadable_event_ends_the_stream_with_the_surfaces_error() -> None:
    translator = StreamTranslator(ChatStreamDecoder(), ChatStreamEncoder(include_usage=False))
    out = translator.feed(chunk({"content": "a"}) + b"data: {not json\n\n" + chunk({"content": "b"}))
    assert b'"content":"a"' in out and b"could not be read" in out and b'"content":"b"' not in out
    assert translator.failed and translator.finish() == b""


def test_a_whole_answer_replays_as_events() -> None:
    resp = ir.Response("r", "m", [ir.Reasoning("t"), ir.Text("hi"), ir.ToolCall("c", "f", "{}")], "tool_calls")
    events = events_from_response(resp)
    assert ir.response_from_events(events) == resp
    encoder = ChatStreamEncoder(include_usage=False)
    lines = (b"".join(encoder.feed(e) for e in events) + encoder.finish()).split(b"\n\n")
    assert lines[-2] == b"data: [DONE]"
    assert json.loads(lines[-3][6:])["choices"][0]["finish_reason"] == "tool_calls"
