"""Which provider, model and wire format a ``model`` string names, and where its API lives.

``"{provider}/{model}"`` splits at the first slash (``workers-ai/@cf/meta/llama-3.1-8b-instruct``,
``openrouter/anthropic/claude-sonnet-4``); ``"dynamic/{route}"`` names a ``[routes.NAME]`` whose
targets are tried in the route's order. Every target speaks one of three wire formats:

    openai      every OpenAI-compatible provider: the chat body passes through, ``model`` rewritten
    anthropic   Anthropic Messages
    gemini      Google ``generateContent`` / ``streamGenerateContent?alt=sse``

Hugging Face (the Inference Providers router's ``/v1``) and Cohere (its Compatibility API) are
reached through their OpenAI-compatible endpoints; Replicate, whose prediction API has no chat
format, is refused with a message saying so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from ..errors import BadCompatRequest
from ..providers.registry import BUILTINS, Provider, ProviderRegistry
from ..routing.balance import Route

Wire = Literal["openai", "anthropic", "gemini"]

AZURE_API_VERSION = "2024-10-21"  # the latest GA Azure OpenAI data-plane version when written
_NOT_A_NAME = re.compile(r"[\x00-\x1f\x7f?#\\]")  # would change the URL a model name is put in
_ALIASES = {"perplexity": "perplexity-ai", "xai": "grok"}  # Cloudflare's compat prefixes
_UNSUPPORTED = {
    "replicate": "its prediction API has no chat format to translate to",
}
# OpenAI-compatible chat APIs that are not at {base}/chat/completions.
_OPENAI_PREFIX = {
    "workers-ai": "v1/",
    "ollama": "v1/",
    "huggingface": "v1/",  # the Inference Providers router's OpenAI-compatible root
    "cohere": "compatibility/v1/",  # Cohere's Compatibility API
}


@dataclass(frozen=True, slots=True)
class Target:
    """One concrete place to send the request."""

    provider: Provider
    model: str  # the provider's own model name (Azure: the deployment)
    wire: Wire
    alias: str | None = None  # BYOK key alias (route targets)
    route: Route | None = None
    index: int | None = None  # the target's index in ``route.targets``
    azure_resource: str | None = None

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.model}"

    def path(self, endpoint: Literal["chat", "responses", "messages", "count_tokens", "embeddings"]) -> str:
        """The endpoint's path below the provider (percent-encoded) for a generate call."""
        if self.azure_resource is not None:
            return f"{self.azure_resource}/{self.model}/" + ("chat/completions" if endpoint == "chat" else endpoint)
        prefix = _OPENAI_PREFIX.get(self.provider.name, "")
        return (
            prefix
            + {
                "chat": "chat/completions",
                "responses": "responses",
                "messages": "messages",
                "count_tokens": "messages/count_tokens",
                "embeddings": "embeddings",
            }[endpoint]
        )

    def gemini_path(self, method: str) -> str:
        return f"models/{quote(self.model, safe='-._~@')}:{method}"

    @property
    def query(self) -> bytes:
        return f"api-version={AZURE_API_VERSION}".encode() if self.azure_resource is not None else b""

    @property
    def native_responses(self) -> bool:
        """Has OpenAI's ``/responses`` (the Responses surface passes through)."""
        return self.provider.name == "openai"


def wire_of(provider: Provider) -> Wire | None:
    if provider.name in _UNSUPPORTED:
        return None
    if provider.format == "anthropic":
        return "anthropic"
    if provider.format == "gemini":
        return "gemini"
    if provider.format in ("openai", "workers-ai", "ollama", "cohere"):
        return "openai"
    return None


def _bad_model(message: str) -> BadCompatRequest:
    return BadCompatRequest(f"Invalid model: {message}")


def resolve(model: object, providers: ProviderRegistry, routes: Mapping[str, Route]) -> list[Target]:
    """The targets ``model`` names, in the order to try them (a route's selector decides it)."""
    if not isinstance(model, str) or not model:
        raise _bad_model("'model' is required, as '{provider}/{model}' or 'dynamic/{route}'")
    slug, sep, name = model.partition("/")
    if not sep or not name:
        raise _bad_model(f"{model[:100]!r}: expected '{{provider}}/{{model}}' or 'dynamic/{{route}}'")
    if slug == "dynamic":
        route = routes.get(name)
        if route is None:
            raise _bad_model(f"no route named {name[:64]!r}")
        out = []
        for index, target in route.plan():
            provider = providers.get(target.provider)
            if provider is None:  # config validation prevents it; never a 500
                raise _bad_model(f"route {name!r} names an unknown provider {target.provider!r}")
            out.append(_target(provider, target.model, target.alias, route, index))
        return out
    provider = providers.get(_ALIASES.get(slug, slug))
    if provider is None:
        if _ALIASES.get(slug, slug) in BUILTINS:  # a built-in the allow-list leaves out
            raise _bad_model(f"provider {slug!r} is not enabled on this gateway")
        raise _bad_model(f"unknown provider {slug[:64]!r} in {model[:100]!r}")
    return [_target(provider, name, None, None, None)]


def _target(provider: Provider, model: str, alias: str | None, route: Route | None, index: int | None) -> Target:
    if _NOT_A_NAME.search(model) or ".." in model.split("/"):
        raise _bad_model(f"{model[:100]!r}: not a model name")
    wire = wire_of(provider)
    if wire is None:
        why = _UNSUPPORTED.get(provider.name, "its API is not translated")
        raise BadCompatRequest(f"Provider {provider.name!r} is not available through /compat: {why}")
    resource = None
    if provider.name == "azure-openai":
        resource, sep, deployment = model.partition("/")
        if not sep or not resource or not deployment or "/" in deployment:
            raise _bad_model("Azure OpenAI targets are named 'azure-openai/{resource}/{deployment}'")
        model = deployment
    return Target(provider, model, wire, alias, route, index, resource)
