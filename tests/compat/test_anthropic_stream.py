"""Anthropic streams <-> IR events, from the streaming examples in Anthropic's docs."""

from __future__ import annotations

from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from aigw_asgi.compat import ir
from aigw_asgi.compat.anthropic_stream import AnthropicStreamDecoder, AnthropicStreamEncoder

from .helpers import decode, encode, sse


def ev(obj: dict[str, Any]) -> bytes:
    return sse(obj, event=obj["type"])


def delta(index: int, **d: Any) -> bytes:
    return ev({"type": "content_block_delta", "index": index, "delta": d})


# "Streaming request with tool use" and "extended thinking" from Anthropic's streaming docs.
MESSAGE = {
    "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-4",
    "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 20},
    "content": [],
    "stop_reason": None,
}
STREAM = b"".join(
    [
        ev({"type": "message_start", "message": MESSAGE}),
        ev({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        delta(0, type="thinking_delta", thinking="Let me solve this step by step"),
        delta(0, type="signature_delta", signature="EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrk"),
        ev({"type": "content_block_stop", "index": 0}),
        ev({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ev({"type": "ping"}),
        delta(1, type="text_delta", text="Okay, let's check"),
        ev({"type": "content_block_stop", "index": 1}),
        ev(
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather"}
                | {"input": {}},
            }
        ),
        delta(2, type="input_json_delta", partial_json=""),
        delta(2, type="input_json_delta", partial_json='{"location":'),
        delta(2, type="input_json_delta", partial_json=' "San Francisco, CA"}'),
        ev({"type": "content_block_stop", "index": 2}),
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 89},
            }
        ),
        ev({"type": "message_stop"}),
    ]
)


def test_the_documented_stream_decodes() -> None:
    decoder = AnthropicStreamDecoder()
    events = decode(decoder, STREAM)
    start_usage = ir.Usage(492, 2, cached_tokens=20)
    assert events == [
        ir.Start("msg_014p7gG3wDgGV9EUtLvnow3U", "claude-opus-4", start_usage),
        ir.ReasoningDelta("Let me solve this step by step"),
        ir.ReasoningDelta(signature="EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrk"),
        ir.TextDelta("Okay, let's check"),
        ir.ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
        ir.ToolCallDelta(0, '{"location":'),
        ir.ToolCallDelta(0, ' "San Francisco, CA"}'),
        ir.UsageUpdate(ir.Usage(492, 89, cached_tokens=20)),  # message_delta's counts merge into message_start's
        ir.Finish("tool_calls"),
    ]
    assert decoder.finished


def test_an_error_event_decodes() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert decode(AnthropicStreamDecoder(), ev(error)) == [ir.StreamError("Overloaded", "overloaded_error")]


def accumulate(written: list[tuple[str | None, Any]]) -> Any:
    """Validate each event with the SDK's own types and fold them as the SDK's stream helper does."""
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    snapshot = None
    buffers: dict[int, bytes] = {}  # partial tool-input JSON, per block, kept across events
    for name, obj in written:
        assert name == obj["type"]
        snapshot = accumulate_event(event=adapter.validate_python(obj), current_snapshot=snapshot, json_bufs=buffers)
    return snapshot


def test_an_openai_shaped_stream_encodes_into_blocks_the_sdk_accumulates() -> None:
    events: list[ir.Event] = [
        ir.Start("chatcmpl-1", "gpt-4o"),
        ir.ReasoningDelta("think"),
        ir.TextDelta("Hel"),
        ir.TextDelta("lo"),
        ir.ToolCallStart(0, "call_1", "get_weather"),
        ir.ToolCallDelta(0, '{"location":'),
        ir.ToolCallDelta(0, '"Paris"}'),
        ir.ToolCallStart(1, "call_2", "get_time"),
        ir.ToolCallDelta(1, "{}"),
        ir.Finish("tool_calls"),  # OpenAI: the finish chunk comes before the usage chunk
        ir.UsageUpdate(ir.Usage(30, 12, cached_tokens=10)),
    ]
    written = encode(AnthropicStreamEncoder(), events)
    names = [name for name, _ in written]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    message = accumulate(written)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[1].text == "Hello"
    assert message.content[2].input == {"location": "Paris"} and message.content[3].name == "get_time"
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 12 and message.usage.cache_read_input_tokens == 10


def test_a_stream_that_ends_early_ends_with_an_error_event() -> None:
    written = encode(AnthropicStreamEncoder(), [ir.Start("x", "m"), ir.TextDelta("partial")])
    assert written[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "upstream stream ended before its last event"}},
    )
    assert "message_stop" not in [name for name, _ in written]
