"""IR -> an Anthropic Messages body: an OpenAI-shaped conversation made into Anthropic turns."""

from __future__ import annotations

import pytest

from aigw_asgi.compat import anthropic_target, ir
from aigw_asgi.errors import BadCompatRequest


def chat_conversation() -> list[ir.Message]:
    """An OpenAI-shaped conversation: system prompts anywhere, tool messages apart, thinking unsigned."""
    return [
        ir.Message("system", [ir.Text("A")]),
        ir.Message("user", [ir.Text("weather?"), ir.Image(url="https://example.com/x.jpg")]),
        ir.Message("assistant", [ir.Reasoning("unsigned"), ir.Text(""), ir.ToolCall("c1", "w", '{"q": 1}')]),
        ir.Message("tool", [ir.ToolResult("c1", [ir.Text("sunny")])]),
        ir.Message("system", [ir.Text("B")]),
        ir.Message("user", [ir.Text("thanks")]),
    ]


def test_build_merges_turns_hoists_system_and_defaults_max_tokens() -> None:
    req = ir.Request(messages=chat_conversation(), tools=[ir.Tool("w", None, None, strict=True)], user="u1")
    req.reasoning_effort, req.stream, req.parallel_tool_calls = "medium", True, False
    body = anthropic_target.build_request(req, "claude-sonnet-4", "anthropic")
    assert body["system"] == [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather?"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/x.jpg"}},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "w", "input": {"q": 1}}]},
        {
            "role": "user",  # the tool result and the next user turn are one user turn
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == anthropic_target.DEFAULT_MAX_TOKENS + 4096
    assert body["tools"] == [{"name": "w", "input_schema": {"type": "object", "properties": {}}, "strict": True}]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "u1"} and body["stream"] is True


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 1}, "seed"),
        ({"n": 2}, "n > 1"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": ir.ResponseFormat("json_object")}, "json_object"),
        ({"extras": {"logit_bias": {}}}, "logit_bias"),
        ({"messages": [ir.Message("user", [ir.Audio("AAAA", "wav")])]}, "audio"),
        ({"messages": [ir.Message("assistant", [ir.ToolCall("c", "f", "{not json")])]}, "not valid JSON"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
)
def test_build_refuses_what_anthropic_cannot_honour(change: dict, named: str) -> None:
    req = ir.Request(messages=[ir.Message("user", [ir.Text("hi")])])
    for key, value in change.items():
        setattr(req, key, value)
    with pytest.raises(BadCompatRequest) as info:
        anthropic_target.build_request(req, "claude", "anthropic")
    assert named in info.value.message


def test_signed_thinking_is_replayed_and_json_schema_is_structured_output() -> None:
    req = ir.Request(
        messages=[
            ir.Message("user", [ir.Text("hi")]),
            ir.Message("assistant", [ir.Reasoning("t", "sig"), ir.Reasoning(redacted="r"), ir.Text("ok")]),
        ],
        response_format=ir.ResponseFormat("json_schema", schema={"type": "object", "properties": {}}),
    )
    body = anthropic_target.build_request(req, "claude", "anthropic")
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "t", "signature": "sig"},
        {"type": "redacted_thinking", "data": "r"},
        {"type": "text", "text": "ok"},
    ]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}}
