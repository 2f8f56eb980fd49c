"""The GenAI names spans and metrics carry (`otel_names`): tables read through their functions."""

from __future__ import annotations

from typing import Any

import pytest

from aigw_asgi.telemetry.otel_names import operation_name, provider_name


@pytest.mark.parametrize(
    ("endpoint", "body", "expected"),
    [
        ("chat/completions", None, "chat"),
        ("v1/chat/completions", None, "chat"),
        ("v1/messages", None, "chat"),
        ("v1/messages/count_tokens", None, "_OTHER"),
        ("v1/responses", None, "chat"),
        ("v1/completions", None, "text_completion"),
        ("v1/embeddings", None, "embeddings"),
        ("v1beta/models/gemini-2.0-flash:generateContent", None, "generate_content"),
        ("v1beta/models/gemini-2.0-flash:streamGenerateContent", None, "generate_content"),
        ("v1beta/models/text-embedding-004:embedContent", None, "embeddings"),
        ("v1beta/models/gemini-2.0-flash:countTokens", None, "_OTHER"),
        ("api/chat", None, "chat"),
        ("api/generate", None, "text_completion"),
        ("api/embed", None, "embeddings"),
        ("v2/embed", None, "embeddings"),
        ("@cf/meta/llama-3.1-8b-instruct", {"messages": []}, "chat"),
        ("@cf/meta/llama-3.1-8b-instruct", {"prompt": "x"}, "text_completion"),
        ("v1/models", None, "_OTHER"),
        (None, None, "_OTHER"),
    ],
)
def test_operation_name(endpoint: str | None, body: Any, expected: str) -> None:
    assert operation_name(endpoint, body) == expected


def test_provider_name() -> None:
    assert provider_name("openai") == "openai"
    assert provider_name("google-ai-studio") == "gcp.gemini"
    assert provider_name("azure-openai") == "azure.ai.openai"
    assert provider_name("my-custom-llm") == "_OTHER"
    assert provider_name(None) == "_OTHER"
