"""The official Anthropic SDK against ``/compat/v1/messages``, with OpenAI and Gemini targets behind it."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.fakes.upstream import RunningFake

TARGETS = ["openai/gpt-4o-mini", "google-ai-studio/gemini-2.5-flash", "anthropic/claude-fake-1"]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4 "


@pytest.fixture
def client(make_gateway) -> anthropic.Anthropic:
    _, server = make_gateway()
    return anthropic.Anthropic(base_url=f"{server.url}/compat", api_key="sk-client", max_retries=0)


@pytest.mark.parametrize("model", TARGETS)
def test_messages(client: anthropic.Anthropic, fake_upstream: RunningFake, model: str) -> None:
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=100, system="Be brief.", messages=ASK, stop_sequences=["END"]
    )
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == TEXT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.role == "assistant"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)
    assert raw.headers["cf-aig-provider"] == model.split("/")[0]
    sent = fake_upstream.app.last.json
    if model.startswith("openai/"):
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
        ]
        assert sent["max_completion_tokens"] == 100 and sent["stop"] == ["END"]
        assert fake_upstream.app.last.headers["authorization"] == "Bearer sk-client"
    elif model.startswith("google-ai-studio/"):
        assert sent["generationConfig"] == {"maxOutputTokens": 100, "stopSequences": ["END"]}
    else:
        assert sent["model"] == "claude-fake-1" and sent["system"] == "Be brief."  # passed through


@pytest.mark.parametrize("model", TARGETS)
def test_messages_stream(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=100, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5 and final.usage.input_tokens == 10


@pytest.mark.parametrize("model", TARGETS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(client: anthropic.Anthropic, fake_upstream: RunningFake, model: str, stream: bool) -> None:
    fake_upstream.app.tool_calls = 2
    messages: list[Any] = list(ASK)
    tools: Any = [WEATHER]
    if stream:
        with client.messages.stream(model=model, max_tokens=100, messages=messages, tools=tools) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=100, messages=messages, tools=tools)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"location": "Paris"})] * 2
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "sunny"} for u in uses]}
    )
    answer = client.messages.create(model=model, max_tokens=100, messages=messages, tools=tools)
    assert answer.content[0].text == TEXT  # type: ignore[union-attr]
    sent = fake_upstream.app.last.json
    if model.startswith("openai/"):
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]
        assert [m["tool_call_id"] for m in sent["messages"][2:]] == [u.id for u in uses]
        assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    elif model.startswith("google-ai-studio/"):
        assert [p["functionResponse"]["name"] for p in sent["contents"][-1]["parts"]] == ["get_weather"] * 2


def test_tool_choice_and_thinking_translate_to_openai(client: anthropic.Anthropic, fake_upstream: RunningFake) -> None:
    client.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=100,
        messages=ASK,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
        metadata={"user_id": "u-1"},
    )
    sent = fake_upstream.app.last.json
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False and sent["reasoning_effort"] == "low" and sent["user"] == "u-1"


@pytest.mark.parametrize("model", ["anthropic/claude-fake-1", "google-ai-studio/gemini-2.5-flash"])
def test_count_tokens(client: anthropic.Anthropic, fake_upstream: RunningFake, model: str) -> None:
    count = client.messages.count_tokens(model=model, system="Be brief.", messages=ASK)  # type: ignore[arg-type]
    assert count.input_tokens == 10
    seen = fake_upstream.app.last
    if model.startswith("google-ai-studio/"):
        assert seen.path.endswith(":countTokens")
        assert seen.json["generateContentRequest"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    else:
        assert seen.path == "/v1/messages/count_tokens"


def test_count_tokens_on_an_openai_target_is_refused_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.count_tokens(model="openai/gpt-4o-mini", messages=ASK)  # type: ignore[arg-type]
    assert info.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Unsupported parameter for openai: count_tokens (OpenAI-compatible APIs have no token "
            "counting endpoint)",
        },
    }


def test_errors_come_back_in_anthropic_shape(client: anthropic.Anthropic, fake_upstream: RunningFake) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-without-provider", max_tokens=5, messages=ASK)
    assert info.value.body["type"] == "error" and "provider" in info.value.body["error"]["message"]  # type: ignore[index]

    fake_upstream.app.fail(429, error_message="slow down")  # the OpenAI target's own 429, in OpenAI's shape
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="openai/gpt-4o-mini", max_tokens=5, messages=ASK)
    assert limited.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


def test_a_stream_that_breaks_midway_raises_in_the_sdk(client: anthropic.Anthropic, fake_upstream: RunningFake) -> None:
    fake_upstream.app.break_after = 3
    received = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="openai/gpt-4o-mini", max_tokens=5, messages=ASK) as stream:
            received.extend(stream.text_stream)
    assert received  # text arrived before the break: nothing was buffered
    assert "mid-stream" in str(info.value) or "ended" in str(info.value)


def test_models_list_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    ids = [m.id for m in client.models.list()]
    assert "anthropic/claude-sonnet-4-5" in ids and "openai/gpt-4o-mini" in ids
