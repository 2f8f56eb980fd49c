"""Model strings -> targets: provider/model, dynamic routes, per-provider paths."""

from __future__ import annotations

import pytest

from aigw_asgi.compat.targets import resolve
from aigw_asgi.config import config_from_dict
from aigw_asgi.errors import BadCompatRequest
from aigw_asgi.providers.registry import ProviderRegistry
from aigw_asgi.routing.balance import compile_routes

CONFIG = config_from_dict(
    {
        "providers": {"custom-local": {"base_url": "http://127.0.0.1:9/v1"}},
        "routes": {
            "rr": {
                "strategy": "round-robin",
                "targets": [
                    {"provider": "anthropic", "model": "claude-a", "alias": "team"},
                    {"provider": "google-ai-studio", "model": "gemini-b"},
                ],
            }
        },
    }
)
PROVIDERS = ProviderRegistry.from_config(CONFIG)


def test_provider_slash_model_splits_at_the_first_slash() -> None:
    [workers] = resolve("workers-ai/@cf/meta/llama-3.1-8b-instruct", PROVIDERS, {})
    assert (workers.name, workers.model, workers.wire) == ("workers-ai", "@cf/meta/llama-3.1-8b-instruct", "openai")
    assert workers.path("chat") == "v1/chat/completions"  # Workers AI's OpenAI-compatible route
    [router] = resolve("openrouter/anthropic/claude-sonnet-4", PROVIDERS, {})
    assert router.model == "anthropic/claude-sonnet-4" and router.path("chat") == "chat/completions"
    [perplexity] = resolve("perplexity/sonar", PROVIDERS, {})  # Cloudflare's prefix
    assert perplexity.name == "perplexity-ai"
    [cohere] = resolve("cohere/command-a-03-2025", PROVIDERS, {})
    assert cohere.wire == "openai" and cohere.path("chat") == "compatibility/v1/chat/completions"
    [hf] = resolve("huggingface/meta-llama/Llama-3.1-8B-Instruct", PROVIDERS, {})
    assert hf.model == "meta-llama/Llama-3.1-8B-Instruct" and hf.path("chat") == "v1/chat/completions"
    [custom] = resolve("custom-local/qwen", PROVIDERS, {})
    assert custom.wire == "openai"
    [claude] = resolve("anthropic/claude-x", PROVIDERS, {})
    assert claude.wire == "anthropic" and claude.path("messages") == "messages"
    [gemini] = resolve("google-ai-studio/gemini-2.5-flash", PROVIDERS, {})
    assert gemini.gemini_path("streamGenerateContent") == "models/gemini-2.5-flash:streamGenerateContent"


def test_azure_names_its_resource_and_deployment() -> None:
    [azure] = resolve("azure-openai/my-resource/gpt4o-deploy", PROVIDERS, {})
    assert azure.model == "gpt4o-deploy" and azure.path("chat") == "my-resource/gpt4o-deploy/chat/completions"
    assert azure.query.startswith(b"api-version=")
    with pytest.raises(BadCompatRequest, match="azure-openai/{resource}/{deployment}"):
        resolve("azure-openai/only-deployment", PROVIDERS, {})


def test_a_dynamic_route_gives_its_targets_in_the_selectors_order() -> None:
    routes = compile_routes(CONFIG.routes)
    first = resolve("dynamic/rr", PROVIDERS, routes)
    second = resolve("dynamic/rr", PROVIDERS, routes)
    assert [t.name for t in first] == ["anthropic", "google-ai-studio"]
    assert [t.name for t in second] == ["google-ai-studio", "anthropic"]  # round-robin
    assert first[0].alias == "team" and first[0].index == 0 and first[0].route is routes["rr"]


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("", "'model' is required"),
        (42, "'model' is required"),
        ("anthropic/", "expected '{provider}/{model}'"),
        ("unknown/x", "unknown provider"),
        ("replicate/x", "not available through /compat"),
        ("anthropic/../../admin", "not a model name"),
        ("anthropic/x?key=1", "not a model name"),
    ],
)
def test_bad_models_are_2019(model: object, says: str) -> None:
    with pytest.raises(BadCompatRequest, match=None) as info:
        resolve(model, PROVIDERS, {})
    assert says in info.value.message and info.value.code == 2019
