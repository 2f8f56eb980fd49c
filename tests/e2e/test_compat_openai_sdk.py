"""The official OpenAI SDK against ``/compat``, with OpenAI, Anthropic and Gemini targets behind it.

A real gateway under uvicorn; every provider points at the loopback fake, which answers in its
own wire format. Each test checks both ends: what the SDK parsed, and what the provider was sent.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest

from tests.fakes.upstream import RunningFake

TARGETS = {
    "openai/gpt-4o-mini": "/v1/chat/completions",
    "anthropic/claude-fake-1": "/v1/messages",
    "google-ai-studio/gemini-2.5-flash": "/v1beta/models/gemini-2.5-flash:",
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4 "


@pytest.fixture
def client(make_gateway) -> openai.OpenAI:
    _, server = make_gateway()
    return openai.OpenAI(base_url=f"{server.url}/compat", api_key="sk-client", max_retries=0)


@pytest.mark.parametrize("model", list(TARGETS))
def test_chat(client: openai.OpenAI, fake_upstream: RunningFake, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=ASK, max_tokens=64, temperature=0.3)
    completion = raw.parse()
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 5)
    provider, name = model.split("/", 1)
    assert raw.headers["cf-aig-provider"] == provider and raw.headers["cf-aig-model"] == name
    seen = fake_upstream.app.last
    assert seen.path.startswith(TARGETS[model])
    if provider == "anthropic":
        assert seen.json["system"] == "Be brief." and seen.json["max_tokens"] == 64
        assert seen.headers["x-api-key"] == "sk-client"  # the client's key, in Anthropic's header
    elif provider == "google-ai-studio":
        assert seen.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert seen.json["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.3}
        assert seen.headers["x-goog-api-key"] == "sk-client"
    else:
        assert seen.json["model"] == "gpt-4o-mini" and seen.json["messages"] == ASK  # passed through
        assert seen.headers["authorization"] == "Bearer sk-client"


@pytest.mark.parametrize("model", list(TARGETS))
@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_stream(client: openai.OpenAI, model: str, include_usage: bool) -> None:
    options = {"include_usage": True} if include_usage else openai.omit
    stream = client.chat.completions.create(model=model, messages=ASK, stream=True, stream_options=options)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage) == 1 and usage[0].prompt_tokens == 10 and usage[0].completion_tokens == 5
        assert chunks[-1].choices == []
    else:
        assert usage == []


@pytest.mark.parametrize("model", list(TARGETS))
@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_with_parallel_calls(
    client: openai.OpenAI, fake_upstream: RunningFake, model: str, stream: bool
) -> None:
    """Call -> results -> answer: two parallel calls, arguments streamed in pieces where the provider does."""
    fake_upstream.app.tool_calls = 2
    messages: list[Any] = list(ASK)
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in client.chat.completions.create(model=model, messages=messages, tools=[WEATHER], stream=True):
            if not chunk.choices:
                continue
            for call in chunk.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = chunk.choices[0].finish_reason or finish
        assert finish == "tool_calls"
        tool_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())
        ]
        messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
    else:
        completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER], tool_choice="auto")
        assert completion.choices[0].finish_reason == "tool_calls"
        message = completion.choices[0].message
        tool_calls = [c.model_dump() for c in message.tool_calls or []]
        messages.append(message.model_dump(exclude_none=True))
    assert len(tool_calls) == 2
    for call in tool_calls:
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"location": "Paris"}
    assert len({c["id"] for c in tool_calls}) == 2
    messages += [{"role": "tool", "tool_call_id": c["id"], "content": "14C, sunny"} for c in tool_calls]

    answer = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert answer.choices[0].message.content == TEXT and answer.choices[0].finish_reason == "stop"
    sent = fake_upstream.app.last.json
    if model.startswith("anthropic/"):
        results = sent["messages"][-1]["content"]
        assert [r["type"] for r in results] == ["tool_result", "tool_result"]  # both in one user turn
        assert [r["tool_use_id"] for r in results] == [c["id"] for c in tool_calls]
    elif model.startswith("google-ai-studio/"):
        assert (
            sent["contents"][-1]["parts"]
            == [{"functionResponse": {"name": "get_weather", "response": {"result": "14C, sunny"}}}] * 2
        )
        assert [p["functionCall"]["name"] for p in sent["contents"][-2]["parts"]] == ["get_weather"] * 2
    else:
        assert sent["messages"][-2:] == messages[-2:]


def test_gemini_thought_signatures_survive_the_round_trip(client: openai.OpenAI, fake_upstream: RunningFake) -> None:
    fake_upstream.app.thinking = True
    model = "google-ai-studio/gemini-2.5-flash"
    completion = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], reasoning_effort="low")
    message = completion.choices[0].message
    assert message.model_extra is not None and message.model_extra["reasoning_content"] == "let me think"
    assert fake_upstream.app.last.json["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }
    [call] = message.tool_calls or []
    followup = [*ASK, message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "ok"}]
    client.chat.completions.create(model=model, messages=followup, tools=[WEATHER])
    replayed = fake_upstream.app.last.json["contents"][-2]["parts"][0]
    assert replayed["thoughtSignature"] == "c2lnLWdlbWluaQ=="  # exactly what Gemini sent


def test_anthropic_thinking_blocks_survive_the_round_trip(client: openai.OpenAI, fake_upstream: RunningFake) -> None:
    fake_upstream.app.thinking = True
    model = "anthropic/claude-fake-1"
    completion = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], reasoning_effort="medium")
    assert fake_upstream.app.last.json["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    message = completion.choices[0].message
    call = (message.tool_calls or [])[0]
    followup = [*ASK, message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "ok"}]
    client.chat.completions.create(model=model, messages=followup, tools=[WEATHER], reasoning_effort="medium")
    assistant = fake_upstream.app.last.json["messages"][-2]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "let me think", "signature": "c2lnLWFudGhyb3BpYw=="}


@pytest.mark.parametrize("model", ["anthropic/claude-fake-1", "google-ai-studio/gemini-2.5-flash"])
def test_image_input_by_url_and_base64(client: openai.OpenAI, fake_upstream: RunningFake, model: str) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    sent = fake_upstream.app.last.json
    if model.startswith("anthropic/"):
        assert sent["messages"][0]["content"][1:] == [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        ]
    else:
        assert sent["contents"][0]["parts"][1:] == [
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}},
            {"inlineData": {"mimeType": "image/png", "data": png}},
        ]


@pytest.mark.parametrize("model", ["anthropic/claude-fake-1", "google-ai-studio/gemini-2.5-flash"])
def test_json_schema(client: openai.OpenAI, fake_upstream: RunningFake, model: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    client.chat.completions.create(
        model=model,
        messages=ASK,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
        stop=["END"],
    )
    sent = fake_upstream.app.last.json
    if model.startswith("anthropic/"):
        assert sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
        assert sent["stop_sequences"] == ["END"]
    else:
        config = sent["generationConfig"]
        assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == schema
        assert config["stopSequences"] == ["END"]


async def test_async_client_streams(make_gateway) -> None:
    _, server = make_gateway()
    async with openai.AsyncOpenAI(base_url=f"{server.url}/compat", api_key="sk-client", max_retries=0) as client:
        stream = await client.chat.completions.create(model="anthropic/claude-fake-1", messages=ASK, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == TEXT


@pytest.mark.parametrize("model", list(TARGETS))
def test_responses_api(client: openai.OpenAI, fake_upstream: RunningFake, model: str) -> None:
    response = client.responses.create(model=model, instructions="Be brief.", input="Weather in Paris?")
    assert response.output_text == TEXT and response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens == 10
    seen = fake_upstream.app.last
    if model.startswith("openai/"):
        assert seen.path == "/v1/responses" and seen.json["instructions"] == "Be brief."  # native
    elif model.startswith("anthropic/"):
        assert seen.path == "/v1/messages" and seen.json["system"] == "Be brief."
    else:
        assert seen.path.endswith(":generateContent")


@pytest.mark.parametrize("model", list(TARGETS))
def test_responses_api_stream(client: openai.OpenAI, fake_upstream: RunningFake, model: str) -> None:
    events = list(client.responses.create(model=model, input="Weather in Paris?", stream=True))
    if model.startswith("openai/"):  # native: the Responses API takes no stream_options.include_usage
        assert "stream_options" not in fake_upstream.app.last.json
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == TEXT and final.usage is not None and final.usage.output_tokens == 5


@pytest.mark.parametrize("model", ["anthropic/claude-fake-1", "google-ai-studio/gemini-2.5-flash"])
def test_responses_api_tool_round_trip(client: openai.OpenAI, fake_upstream: RunningFake, model: str) -> None:
    tool = {"type": "function", **WEATHER["function"]}  # type: ignore[dict-item]
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[tool])  # type: ignore[list-item]
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"location": "Paris"}
    items: list[Any] = [{"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True)]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = client.responses.create(model=model, input=items, tools=[tool])  # type: ignore[list-item]
    assert second.output_text == TEXT
    sent = json.dumps(fake_upstream.app.last.json)
    assert "sunny" in sent and "get_weather" in sent


def test_embeddings_and_models(client: openai.OpenAI, fake_upstream: RunningFake) -> None:
    native = client.embeddings.create(model="openai/text-embedding-3-small", input=["a", "b"])
    assert len(native.data) == 2 and fake_upstream.app.last.path == "/v1/embeddings"
    gemini = client.embeddings.create(model="google-ai-studio/text-embedding-004", input=["a", "b"], dimensions=4)
    assert [len(d.embedding) for d in gemini.data] == [4, 4]
    assert fake_upstream.app.last.path.endswith("/models/text-embedding-004:batchEmbedContents")
    encoded = client.embeddings.create(model="google-ai-studio/text-embedding-004", input="a", dimensions=4)
    assert len(encoded.data[0].embedding) == 4  # the SDK asks for base64 and decodes it
    ids = [m.id for m in client.models.list()]
    # The configured providers' models from the price table: not DeepSeek (not configured), not
    # Replicate (configured, but it has no chat API to translate to).
    assert {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "google-ai-studio/gemini-2.5-flash"} <= set(ids)
    assert "workers-ai/@cf/meta/llama-3.1-8b-instruct" in ids and "cohere/command-r" in ids
    assert not any(i.startswith(("deepseek/", "replicate/")) for i in ids)


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("cohere/command-r", "/cohere/compatibility/v1/chat/completions"),
        ("huggingface/meta-llama/Llama-3.1-8B-Instruct", "/v1/chat/completions"),  # the router's root
        ("mistral/mistral-small-latest", "/mistral/v1/chat/completions"),
    ],
)
def test_other_openai_compatible_targets(
    client: openai.OpenAI, fake_upstream: RunningFake, model: str, path: str
) -> None:
    client.chat.completions.create(model=model, messages=ASK)
    assert fake_upstream.app.last.path == path
    assert fake_upstream.app.last.json["model"] == model.split("/", 1)[1]


def test_azure_openai_target(client: openai.OpenAI, fake_upstream: RunningFake) -> None:
    completion = client.chat.completions.create(model="azure-openai/my-resource/gpt4o-deploy", messages=ASK)
    assert completion.choices[0].message.content == TEXT
    seen = fake_upstream.app.last
    assert seen.path == "/openai/deployments/gpt4o-deploy/chat/completions"
    assert seen.query["api-version"] and seen.headers["api-key"] == "sk-client"
