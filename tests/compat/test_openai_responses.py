"""OpenAI Responses surface <-> IR, from the examples in OpenAI's Responses guides."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from aigw_asgi.compat import ir, openai_responses
from aigw_asgi.compat.openai_responses_stream import ResponsesStreamEncoder
from aigw_asgi.errors import BadCompatRequest

from .helpers import encode

# The function-calling guide: the call the model made goes back as an input item, with its output.
FUNCTION_CALL_ITEM = {
    "type": "function_call",
    "id": "fc_12345xyz",
    "call_id": "call_12345xyz",
    "name": "get_weather",
    "arguments": '{"location":"Paris, France"}',
}


def test_input_items_become_a_conversation() -> None:
    body = {
        "model": "anthropic/claude-sonnet-4",
        "instructions": "Talk like a pirate.",
        "input": [
            {"role": "user", "content": "What's the weather like in Paris today?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "look it up"}]}
            | {"encrypted_content": "sig"},
            FUNCTION_CALL_ITEM,
            {"type": "function_call_output", "call_id": "call_12345xyz", "output": "14°C"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "and this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "low"},
                ],
            },
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 500,
        "store": False,  # dropped on purpose
        "previous_response_id": "resp_1",  # no state on a translated target: an extra, refused there
    }
    req = openai_responses.parse_request(body, "anthropic")
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool", "user"]
    assert req.messages[2].parts == [
        ir.Reasoning("look it up", "sig"),
        ir.ToolCall("call_12345xyz", "get_weather", '{"location":"Paris, France"}'),
    ]
    assert req.messages[3].parts == [ir.ToolResult("call_12345xyz", [ir.Text("14°C")])]
    assert req.messages[4].parts == [ir.Text("and this?"), ir.Image(data="iVBO", media_type="image/png", detail="low")]
    assert req.tools == [ir.Tool("get_weather", None, {"type": "object"}, True)]
    assert req.tool_choice == ir.ToolChoice("tool", "get_weather")
    assert req.response_format == ir.ResponseFormat("json_schema", "w", {"type": "object"}, True)
    assert req.reasoning_effort == "high" and req.max_tokens == 500
    assert req.extras == {"previous_response_id": "resp_1"}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"model": "x"}, "input"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "file_id"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ],
)
def test_bad_or_untranslatable_bodies_are_2019(body: dict, named: str) -> None:
    with pytest.raises(BadCompatRequest) as info:
        openai_responses.parse_request(body, "anthropic")
    assert named in info.value.message


def test_a_response_renders_as_the_sdk_expects() -> None:
    resp = ir.Response(
        id="msg_1",
        model="claude-sonnet-4",
        parts=[
            ir.Reasoning("thinking", "sig"),
            ir.Text("Hello "),
            ir.Text("world"),
            ir.ToolCall("toolu_1", "get_weather", '{"location": "Paris"}'),
        ],
        finish="tool_calls",
        usage=ir.Usage(20, 10, cached_tokens=5, reasoning_tokens=3),
    )
    rendered = openai_responses.render_response(resp)
    parsed = Response.model_validate(rendered)
    assert parsed.output_text == "Hello world" and parsed.status == "completed"
    reasoning, message, call = rendered["output"]
    assert reasoning["encrypted_content"] == "sig" and reasoning["summary"][0]["text"] == "thinking"
    assert message["content"][0]["text"] == "Hello world"
    assert call["call_id"] == "toolu_1" and call["arguments"] == '{"location": "Paris"}'
    assert rendered["usage"]["input_tokens_details"] == {"cached_tokens": 5, "cache_write_tokens": 0}
    assert rendered["id"].startswith("resp_")
    truncated = openai_responses.render_response(ir.Response("r", "m", [ir.Text("a")], finish="length"))
    assert truncated["status"] == "incomplete" and truncated["incomplete_details"] == {"reason": "max_output_tokens"}


def validated(written: list[tuple[str | None, Any]]) -> list[dict[str, Any]]:
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for name, obj in written:
        assert name == obj["type"]
        adapter.validate_python(obj)
    numbers = [obj["sequence_number"] for _, obj in written]
    assert numbers == list(range(len(numbers)))
    return [obj for _, obj in written]


def test_a_stream_encodes_items_deltas_and_the_whole_response() -> None:
    events: list[ir.Event] = [
        ir.Start("msg_1", "claude-sonnet-4", ir.Usage(input_tokens=20)),
        ir.ReasoningDelta("hm"),
        ir.ReasoningDelta(signature="sig"),
        ir.TextDelta("Hel"),
        ir.TextDelta("lo"),
        ir.ToolCallStart(0, "toolu_1", "get_weather"),
        ir.ToolCallDelta(0, '{"location":'),
        ir.ToolCallDelta(0, '"Paris"}'),
        ir.UsageUpdate(ir.Usage(20, 9)),
        ir.Finish("tool_calls"),
    ]
    out = validated(encode(ResponsesStreamEncoder(), events))
    kinds = [o["type"] for o in out]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_item.added") == 3 and kinds.count("response.output_item.done") == 3
    assert [o["delta"] for o in out if o["type"] == "response.output_text.delta"] == ["Hel", "lo"]
    assert [o["delta"] for o in out if o["type"] == "response.function_call_arguments.delta"] == [
        '{"location":',
        '"Paris"}',
    ]
    final = out[-1]
    assert final["type"] == "response.completed"
    response = Response.model_validate(final["response"])
    assert response.output_text == "Hello" and response.usage is not None and response.usage.output_tokens == 9
    assert [item["type"] for item in final["response"]["output"]] == ["reasoning", "message", "function_call"]
    assert final["response"]["output"][0]["encrypted_content"] == "sig"
    assert final["response"]["output"][2]["arguments"] == '{"location":"Paris"}'


def test_a_failed_stream_ends_with_error_and_response_failed() -> None:
    out = validated(encode(ResponsesStreamEncoder(), [ir.Start("x", "m"), ir.TextDelta("a"), ir.StreamError("boom")]))
    assert [o["type"] for o in out][-2:] == ["error", "response.failed"]
    assert out[-2]["message"] == "boom" and out[-1]["response"]["status"] == "failed"
    cut = validated(encode(ResponsesStreamEncoder(), [ir.Start("x", "m"), ir.TextDelta("a")]))
    assert cut[-1]["type"] == "response.failed"
