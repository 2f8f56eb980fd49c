"""OpenAI Chat Completions <-> IR, from the examples in OpenAI's API reference."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion

from aigw_asgi.compat import ir, openai_chat, openai_chat_target
from aigw_asgi.errors import BadCompatRequest

# The function-calling example of OpenAI's guide.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TOOL_CALL_ANSWER = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1699896916,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {"name": "get_current_weather", "arguments": '{\n"location": "Boston, MA"\n}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


def test_a_full_conversation_parses_into_typed_parts() -> None:
    body = {
        "model": "anthropic/claude-sonnet-4",
        "messages": [
            {"role": "developer", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/boardwalk.jpg", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
            TOOL_CALL_ANSWER["choices"][0]["message"],  # type: ignore[index]
            {"role": "tool", "tool_call_id": "call_abc123", "content": "72F and sunny"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_current_weather"}},
        "max_tokens": 10,
        "max_completion_tokens": 300,
        "stop": "END",
        "temperature": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        "store": True,  # dropped on purpose
        "logit_bias": {"50256": -100},  # no IR field: an extra
    }
    req = openai_chat.parse_request(body, "anthropic")
    system, user, assistant, tool = req.messages
    assert system == ir.Message("system", [ir.Text("You are terse.")])
    assert user.parts == [
        ir.Text("What's in this image?"),
        ir.Image(url="https://example.com/boardwalk.jpg", detail="high"),
        ir.Image(data="iVBORw0KGgo=", media_type="image/png"),
    ]
    assert assistant.parts == [ir.ToolCall("call_abc123", "get_current_weather", '{\n"location": "Boston, MA"\n}')]
    assert tool == ir.Message("tool", [ir.ToolResult("call_abc123", [ir.Text("72F and sunny")])])
    assert req.tools[0].name == "get_current_weather" and req.tools[0].parameters["required"] == ["location"]
    assert req.tool_choice == ir.ToolChoice("tool", "get_current_weather")
    assert req.max_tokens == 300  # max_completion_tokens wins over the deprecated max_tokens
    assert req.stop == ["END"] and req.temperature == 0.2
    assert req.stream and req.include_usage
    assert req.response_format == ir.ResponseFormat("json_schema", name="w", schema={"type": "object"})
    assert req.extras == {"logit_bias": {"50256": -100}}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"model": "x/y"}, "messages"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "hi"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "custom"}]}, "tools[0].type"),
        ({"messages": [{"role": "function", "content": "hi", "name": "f"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
        ),
    ],
)
def test_bad_bodies_are_2019_naming_the_field(body: dict, named: str) -> None:
    with pytest.raises(BadCompatRequest) as info:
        openai_chat.parse_request(body, "anthropic")
    assert info.value.code == 2019 and info.value.status == 400
    assert named in info.value.message


def test_reasoning_on_assistant_turns_is_read_back() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "hello",
                "reasoning_content": "ignored when thinking_blocks are there",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                ],
            },
            {"role": "assistant", "content": None, "reasoning_content": "plain"},
        ]
    }
    req = openai_chat.parse_request(body, "anthropic")
    assert req.messages[1].parts == [ir.Reasoning("hmm", "sig"), ir.Reasoning(redacted="opaque"), ir.Text("hello")]
    assert req.messages[2].parts == [ir.Reasoning("plain")]


def test_the_documented_tool_call_answer_parses_and_renders_back() -> None:
    resp = openai_chat_target.parse_response(TOOL_CALL_ANSWER)
    assert resp.parts == [ir.ToolCall("call_abc123", "get_current_weather", '{\n"location": "Boston, MA"\n}')]
    assert resp.finish == "tool_calls"
    assert resp.usage == ir.Usage(82, 17, reasoning_tokens=0)
    rendered = openai_chat.render_response(resp)
    ChatCompletion.model_validate(rendered)  # the SDK's own schema accepts it
    assert rendered["choices"][0]["message"]["tool_calls"] == TOOL_CALL_ANSWER["choices"][0]["message"]["tool_calls"]  # type: ignore[index]
    assert rendered["choices"][0]["finish_reason"] == "tool_calls"
    assert rendered["usage"] == {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_render_carries_reasoning_and_signatures() -> None:
    resp = ir.Response(
        id="msg_1",
        model="claude",
        parts=[ir.Reasoning("think", "sig"), ir.Text("answer")],
        finish="stop_sequence",
        usage=ir.Usage(100, 20, cached_tokens=60, reasoning_tokens=7),
    )
    rendered = openai_chat.render_response(resp)
    ChatCompletion.model_validate(rendered)
    message = rendered["choices"][0]["message"]
    assert message["content"] == "answer" and message["reasoning_content"] == "think"
    assert message["thinking_blocks"] == [{"type": "thinking", "thinking": "think", "signature": "sig"}]
    assert rendered["choices"][0]["finish_reason"] == "stop"
    assert rendered["usage"]["prompt_tokens_details"] == {"cached_tokens": 60}
    assert rendered["usage"]["completion_tokens_details"] == {"reasoning_tokens": 7}


def test_error_shape_is_what_the_openai_sdk_reads() -> None:
    assert openai_chat.error_json(429, "slow down", code=2003) == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": 2003}
    }
    assert openai_chat.error_json(503, "down")["error"]["type"] == "api_error"
