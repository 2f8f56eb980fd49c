"""IR -> a body for an OpenAI-compatible provider, and its answers -> IR."""

from __future__ import annotations

import pytest

from aigw_asgi.compat import ir, openai_chat_target
from aigw_asgi.errors import BadCompatRequest


def test_build_for_an_openai_compatible_provider() -> None:
    req = ir.Request(
        messages=[
            ir.Message("system", [ir.Text("Be brief.")]),
            ir.Message("user", [ir.Text("hi"), ir.Image(data="AAAA", media_type="image/jpeg")]),
            ir.Message("assistant", [ir.Reasoning("secret"), ir.ToolCall("c1", "f", '{"a":1}')]),
            ir.Message("tool", [ir.ToolResult("c1", [ir.Text("1")])]),
            ir.Message("user", [ir.Text("thanks")]),
        ],
        max_tokens=50,
        stop=["x"],
        tools=[ir.Tool("f", "does f", None)],
        tool_choice=ir.ToolChoice("required"),
        reasoning_budget=10_000,
        stream=True,
    )
    body = openai_chat_target.build_request(
        req, "gpt-4o", "openai", completion_tokens=True, stream_usage=True, top_k=False
    )
    assert body["model"] == "gpt-4o" and body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",  # reasoning from another provider is not replayed to OpenAI
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "user", "content": "thanks"},
    ]
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert body["tool_choice"] == "required" and body["stop"] == ["x"]
    assert body["reasoning_effort"] == "high"  # a 10k-token thinking budget
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    other = openai_chat_target.build_request(
        req, "llama", "groq", completion_tokens=False, stream_usage=False, top_k=True
    )
    assert other["max_tokens"] == 50 and "stream_options" not in other


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"extras": {"container": {"id": "x"}}}, "container"),
        ({"top_k": 5}, "top_k"),
        ({"messages": [ir.Message("tool", [ir.ToolResult("c", [ir.Image(url="https://x/y.png")])])]}, "image"),
    ],
)
def test_build_refuses_what_openai_cannot_honour(change: dict, named: str) -> None:
    req = ir.Request(messages=[ir.Message("user", [ir.Text("hi")])])
    for key, value in change.items():
        setattr(req, key, value)
    with pytest.raises(BadCompatRequest) as info:
        openai_chat_target.build_request(
            req, "gpt-4o", "openai", completion_tokens=True, stream_usage=True, top_k=False
        )
    assert named in info.value.message and "openai" in info.value.message


def test_deepseek_reasoning_and_cache_hits_are_read() -> None:
    answer = {
        "id": "x",
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "42", "reasoning_content": "6*7"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 8},
    }
    resp = openai_chat_target.parse_response(answer)
    assert resp.parts == [ir.Reasoning("6*7"), ir.Text("42")]
    assert resp.finish == "length" and resp.usage == ir.Usage(10, 5, cached_tokens=8)
