"""Chat Completions streams <-> IR events, from the streaming examples in OpenAI's guides."""

from __future__ import annotations

from openai.types.chat import ChatCompletionChunk

from aigw_asgi.compat import ir
from aigw_asgi.compat.openai_chat_stream import ChatStreamDecoder, ChatStreamEncoder

from .helpers import decode, encode, sse


def chunk(delta: dict, finish: str | None = None, **extra: object) -> dict:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


# The function-calling guide's stream: the call opens with id and name, arguments follow in pieces
# (here two calls, as with parallel_tool_calls), then the finish chunk and the usage chunk.
TOOL_STREAM = b"".join(
    [
        sse(chunk({"role": "assistant", "content": None})),
        sse(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            )
        ),
        sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]})),
        sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]})),
        sse(
            chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time"}}]})
        ),
        sse(chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]})),
        sse(chunk({}, "tool_calls")),
        sse({**chunk({}), "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39}}),
        sse("[DONE]"),
    ]
)


def test_a_tool_call_stream_decodes_into_calls_with_argument_pieces() -> None:
    events = decode(ChatStreamDecoder(), TOOL_STREAM)
    assert events == [
        ir.Start("chatcmpl-123", "gpt-4o-mini"),
        ir.ToolCallStart(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather"),
        ir.ToolCallDelta(0, '{"location":'),
        ir.ToolCallDelta(0, ' "Paris"}'),
        ir.ToolCallStart(1, "call_2", "get_time"),
        ir.ToolCallDelta(1, "{}"),
        ir.Finish("tool_calls"),
        ir.UsageUpdate(ir.Usage(9, 30)),
    ]


def test_text_reasoning_and_errors_decode() -> None:
    stream = (
        sse(chunk({"role": "assistant", "content": ""}))
        + sse(chunk({"reasoning_content": "hmm"}))
        + sse(chunk({"content": "Hello"}))
        + sse({"error": {"message": "overloaded", "type": "server_error"}})
    )
    decoder = ChatStreamDecoder()
    assert decode(decoder, stream) == [
        ir.Start("chatcmpl-123", "gpt-4o-mini"),
        ir.ReasoningDelta("hmm"),
        ir.TextDelta("Hello"),
        ir.StreamError("overloaded"),
    ]
    assert not decoder.finished


EVENTS: list[ir.Event] = [
    ir.Start("msg_01", "claude-sonnet-4", ir.Usage(input_tokens=25)),
    ir.ReasoningDelta("Let me check."),
    ir.ReasoningDelta(signature="sig=="),
    ir.TextDelta("Checking"),
    ir.ToolCallStart(0, "toolu_01", "get_weather"),
    ir.ToolCallDelta(0, '{"location": '),
    ir.ToolCallDelta(0, '"Paris"}'),
    ir.UsageUpdate(ir.Usage(25, 40, cached_tokens=5)),
    ir.Finish("tool_calls"),
]


def test_the_encoder_writes_chunks_the_sdk_accepts() -> None:
    written = encode(ChatStreamEncoder(include_usage=True), EVENTS)
    *chunks, done = written
    assert done == (None, "[DONE]")
    for _, obj in chunks:
        ChatCompletionChunk.model_validate(obj)
    deltas = [obj["choices"][0]["delta"] for _, obj in chunks if obj["choices"]]  # type: ignore[index]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": "Let me check."}
    assert deltas[2]["thinking_blocks"][0]["signature"] == "sig=="
    assert deltas[3] == {"content": "Checking"}
    assert deltas[4] == {
        "tool_calls": [
            {"index": 0, "id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ]
    }
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[5:7]) == '{"location": "Paris"}'
    assert chunks[-2][1]["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]
    usage = chunks[-1][1]
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 25  # type: ignore[index]
    assert usage["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}  # type: ignore[index]


def test_usage_is_sent_only_when_the_client_asked() -> None:
    written = encode(ChatStreamEncoder(include_usage=False), EVENTS)
    assert all(obj == "[DONE]" or obj["choices"] for _, obj in written)  # type: ignore[index]


def test_a_stream_that_ends_early_or_fails_ends_with_an_error_event_and_no_done() -> None:
    cut = encode(ChatStreamEncoder(include_usage=True), EVENTS[:4])
    assert cut[-1][1]["error"]["message"] == "upstream stream ended before its last event"  # type: ignore[index]
    failed = encode(ChatStreamEncoder(include_usage=True), [*EVENTS[:2], ir.StreamError("boom", "overloaded_error")])
    assert failed[-1][1] == {"error": {"message": "boom", "type": "overloaded_error", "param": None, "code": None}}
    assert all(obj != "[DONE]" for _, obj in failed)
