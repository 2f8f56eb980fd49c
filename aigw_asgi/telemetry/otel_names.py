"""The GenAI names a request's spans and metrics carry: pure data and functions.

``gen_ai.operation.name`` comes from the upstream path (the JSON body only where the path says
nothing), ``gen_ai.provider.name`` from the provider registry. Both end up on metric attributes,
so both map anything unknown to ``_OTHER``: the path comes from the client, and metric
attributes must stay low-cardinality. Kept apart from `otel` so they read (and are tested) as
the tables they are.
"""

from __future__ import annotations

from typing import Any

from ..providers.registry import BUILTINS
from . import semconv as sc

# Upstream path endings -> gen_ai.operation.name (checked in order: "chat/completions" before
# "completions"). Unknown paths are "_OTHER" rather than the raw segment: the path comes from
# the client, and metric attributes must stay low-cardinality.
_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("chat/completions", sc.OP_CHAT),
    ("messages", sc.OP_CHAT),  # Anthropic
    ("responses", sc.OP_CHAT),  # OpenAI Responses
    ("chat", sc.OP_CHAT),  # Ollama /api/chat, Cohere /v2/chat
    ("completions", sc.OP_TEXT_COMPLETION),
    ("generate", sc.OP_TEXT_COMPLETION),  # Ollama /api/generate
    ("embeddings", sc.OP_EMBEDDINGS),
    ("embed", sc.OP_EMBEDDINGS),  # Ollama /api/embed, Cohere /v2/embed
)
# Gemini addresses the method after a colon: models/gemini-2.0-flash:generateContent
_GEMINI_METHODS = {
    "generateContent": sc.OP_GENERATE_CONTENT,
    "streamGenerateContent": sc.OP_GENERATE_CONTENT,
    "embedContent": sc.OP_EMBEDDINGS,
    "batchEmbedContents": sc.OP_EMBEDDINGS,
}


def operation_name(endpoint: str | None, body: Any = None) -> str:
    """``gen_ai.operation.name`` for an upstream path; the JSON body decides for model-addressed
    paths (Workers AI ``@cf/...``): ``messages`` is a chat, ``prompt`` a text completion."""
    if endpoint:
        path = endpoint.partition("?")[0].rstrip("/")
        _, colon, method = path.rpartition(":")
        if colon and "/" not in method:
            return _GEMINI_METHODS.get(method, sc.OTHER)
        for suffix, op in _SUFFIXES:
            if path == suffix or path.endswith("/" + suffix):
                return op
    if isinstance(body, dict):
        if "messages" in body:
            return sc.OP_CHAT
        if "prompt" in body:
            return sc.OP_TEXT_COMPLETION
    return sc.OTHER


def provider_name(slug: str | None) -> str:
    """``gen_ai.provider.name`` from the registry; custom providers are ``_OTHER``."""
    provider = BUILTINS.get(slug) if slug else None
    return provider.otel_name if provider is not None else sc.OTHER
