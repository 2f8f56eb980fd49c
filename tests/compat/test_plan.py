"""Planning: which body, path and credential each target gets (pure)."""

from __future__ import annotations

import json

import pytest

from aigw_asgi.compat.plan import Planner, client_credential
from aigw_asgi.compat.surfaces import CHAT, MESSAGES, RESPONSES
from aigw_asgi.config import config_from_dict
from aigw_asgi.errors import BadCompatRequest
from aigw_asgi.providers.registry import ProviderRegistry
from aigw_asgi.routing.balance import compile_routes

CONFIG = config_from_dict(
    {
        "routes": {
            "mixed": {
                "strategy": "fallback",
                "targets": [
                    {"provider": "anthropic", "model": "claude-a", "alias": "team"},
                    {"provider": "openai", "model": "gpt-b"},
                ],
            }
        }
    }
)
PLANNER = Planner(ProviderRegistry.from_config(CONFIG), compile_routes(CONFIG.routes))
CHAT_BODY = {"model": "dynamic/mixed", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def plan(surface, body, kind="generate", key=None):  # type: ignore[no-untyped-def]
    return PLANNER.plan(surface, kind, body, key)


def test_each_target_gets_its_own_body_path_and_credential() -> None:
    claude, gpt = plan(CHAT, CHAT_BODY, key="sk-client")
    assert (claude.provider, claude.path, claude.model) == ("anthropic", "messages", "claude-a")
    sent = json.loads(claude.body)
    assert sent["model"] == "claude-a" and sent["stream"] is True and sent["max_tokens"] > 0
    assert claude.credential == (b"x-api-key", b"sk-client")
    assert (b"cf-aig-byok-alias", b"team") in claude.headers
    assert claude.answer is not None and not claude.answer.passthrough and claude.answer.stream() is not None
    assert (gpt.provider, gpt.path) == ("openai", "chat/completions")
    assert json.loads(gpt.body) == {**CHAT_BODY, "model": "gpt-b"}  # the client's own body, model rewritten
    assert gpt.credential == (b"authorization", b"Bearer sk-client")
    assert gpt.answer is not None and gpt.answer.passthrough
    assert (claude.route, claude.target, gpt.target) == (PLANNER.routes["mixed"], 0, 1)
    assert claude.surface == "chat/completions" and claude.vary is gpt.vary is not None  # the client's body


def test_surfaces_pass_through_to_their_own_format() -> None:
    [messages] = plan(
        MESSAGES, {"model": "anthropic/c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    )
    assert messages.answer is not None and messages.answer.passthrough and messages.path == "messages"
    [responses] = plan(RESPONSES, {"model": "openai/gpt-5", "input": "x"})
    assert responses.answer is not None and responses.answer.passthrough and responses.path == "responses"
    [translated] = plan(RESPONSES, {"model": "groq/llama", "input": "x"})  # no /responses there
    assert translated.path == "chat/completions" and json.loads(translated.body)["messages"] == [
        {"role": "user", "content": "x"}
    ]


def test_gemini_streams_ask_for_sse() -> None:
    body = {**CHAT_BODY, "model": "google-ai-studio/gemini-2.5-flash"}
    [step] = plan(CHAT, body)
    assert step.path == "models/gemini-2.5-flash:streamGenerateContent" and step.query_string == b"alt=sse"
    assert (b"accept-encoding", b"identity") in step.headers  # the relay reads the answer


def test_a_target_that_refuses_is_skipped_unless_it_is_the_only_one() -> None:
    [gpt] = plan(CHAT, {**CHAT_BODY, "seed": 3})  # Anthropic has no seed
    assert gpt.provider == "openai"
    with pytest.raises(BadCompatRequest, match="seed"):
        plan(CHAT, {**CHAT_BODY, "model": "anthropic/claude", "seed": 3})


def test_count_tokens_and_embeddings_targets() -> None:
    body = {"model": "google-ai-studio/gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}
    [count] = plan(MESSAGES, body, "count_tokens")
    assert count.path.endswith(":countTokens") and count.answer is not None
    assert count.answer.convert is not None and count.answer.convert({"totalTokens": 7}) == {"input_tokens": 7}
    with pytest.raises(BadCompatRequest, match="count_tokens"):
        plan(MESSAGES, {**body, "model": "openai/gpt"}, "count_tokens")
    with pytest.raises(BadCompatRequest, match="embeddings"):
        plan(CHAT, {"model": "anthropic/claude", "input": "x"}, "embeddings")
    with pytest.raises(BadCompatRequest, match="token arrays"):
        plan(CHAT, {"model": "google-ai-studio/e", "input": [[1, 2]]}, "embeddings")
    [embed] = plan(CHAT, {"model": "google-ai-studio/e", "input": "x", "encoding_format": "base64"}, "embeddings")
    assert embed.answer is not None and embed.answer.convert is not None
    converted = embed.answer.convert({"embeddings": [{"values": [0.5, -1.0]}]})
    assert converted["data"][0]["embedding"] == "AAAAPwAAgL8="  # float32 little-endian, as OpenAI encodes


def test_the_client_credential() -> None:
    assert client_credential([(b"authorization", b"Bearer sk-1")], None) == "sk-1"
    assert client_credential([(b"x-api-key", b"sk-ant")], None) == "sk-ant"
    assert client_credential([(b"authorization", b"Bearer gw")], "gw") is None  # the gateway token
    assert client_credential([(b"authorization", b"Basic abc")], None) is None
