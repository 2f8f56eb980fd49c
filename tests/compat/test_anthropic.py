"""Anthropic Messages <-> IR, from the examples in Anthropic's tool-use and thinking docs."""

from __future__ import annotations

import pytest
from anthropic.types import Message

from aigw_asgi.compat import anthropic, anthropic_target, ir
from aigw_asgi.errors import BadCompatRequest

GET_WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
        "required": ["location"],
    },
}
# The tool-use guide's answer.
TOOL_USE_ANSWER = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "model": "claude-opus-4",
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "role": "assistant",
    "content": [
        {"type": "text", "text": "I need to use get_weather."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
    ],
    "usage": {"input_tokens": 472, "output_tokens": 89, "cache_read_input_tokens": 100},
}


def test_the_tool_use_conversation_parses() -> None:
    body = {
        "model": "openai/gpt-4o",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be precise.", "cache_control": {"type": "ephemeral"}}],
        "tools": [GET_WEATHER],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "What is the weather like in San Francisco?"},
            {"role": "assistant", "content": TOOL_USE_ANSWER["content"]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-42"},
        "stop_sequences": ["###"],
        "service_tier": "auto",  # dropped on purpose
        "container": "c1",  # no IR field: an extra (refused by non-Anthropic targets)
    }
    req = anthropic.parse_request(body, "openai")
    system, question, call, result, follow_up = req.messages
    assert system == ir.Message("system", [ir.Text("Be precise.")])
    assert question.parts == [ir.Text("What is the weather like in San Francisco?")]
    assert call.parts[1] == ir.ToolCall(
        "toolu_01A09q90qw90lq917835lq9", "get_weather", '{"location": "San Francisco, CA", "unit": "celsius"}'
    )
    assert result == ir.Message("tool", [ir.ToolResult("toolu_01A09q90qw90lq917835lq9", [ir.Text("15 degrees")])])
    assert follow_up == ir.Message("user", [ir.Text("And tomorrow?")])
    assert req.tools == [ir.Tool("get_weather", GET_WEATHER["description"], GET_WEATHER["input_schema"])]  # type: ignore[arg-type]
    assert req.tool_choice == ir.ToolChoice("required") and req.parallel_tool_calls is False
    assert req.reasoning_budget == 2048 and req.user == "u-42" and req.stop == ["###"] and req.max_tokens == 1024
    assert req.extras == {"container": "c1"}


def test_images_documents_and_structured_output_parse() -> None:
    body = {
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                ],
            }
        ],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    req = anthropic.parse_request(body, "openai")
    assert req.messages[0].parts == [
        ir.Image(data="/9j/", media_type="image/jpeg"),
        ir.Image(url="https://example.com/a.png"),
        ir.File(data="JVBE", media_type="application/pdf"),
    ]
    assert req.response_format is not None and req.response_format.schema == {"type": "object"}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"max_tokens": 1}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": [1]}, "stop_sequences"),
    ],
)
def test_bad_bodies_are_2019_naming_the_field(body: dict, named: str) -> None:
    with pytest.raises(BadCompatRequest) as info:
        anthropic.parse_request(body, "openai")
    assert named in info.value.message


def test_the_documented_answer_parses_and_renders_back() -> None:
    resp = anthropic_target.parse_response(TOOL_USE_ANSWER)
    assert resp.finish == "tool_calls"
    assert resp.usage == ir.Usage(572, 89, cached_tokens=100)  # input counts the cache reads
    rendered = anthropic.render_response(resp)
    Message.model_validate(rendered)
    assert rendered["content"] == TOOL_USE_ANSWER["content"]
    assert rendered["stop_reason"] == "tool_use"
    assert rendered["usage"] == {
        "input_tokens": 472,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
        "output_tokens": 89,
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("stop_sequence", "stop_sequence")],
)
def test_finish_reasons_map_to_stop_reasons(finish: ir.FinishReason, reason: str) -> None:
    rendered = anthropic.render_response(ir.Response("m", "x", [ir.Text("a")], finish=finish))
    assert rendered["stop_reason"] == reason
    Message.model_validate(rendered)


def test_error_shape_is_what_the_anthropic_sdk_reads() -> None:
    assert anthropic.error_json(529, "busy") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    assert anthropic.error_json(400, "bad")["error"]["type"] == "invalid_request_error"
