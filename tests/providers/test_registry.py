from __future__ import annotations

import pytest

from aigw_asgi.config import ConfigError, config_from_dict
from aigw_asgi.providers.registry import BUILTINS, ProviderRegistry, join_url, model_from

SPEC_PROVIDERS = [
    "openai",
    "azure-openai",
    "anthropic",
    "workers-ai",
    "huggingface",
    "replicate",
    "groq",
    "mistral",
    "cohere",
    "google-ai-studio",
    "deepseek",
    "perplexity-ai",
    "cerebras",
    "grok",
    "openrouter",
    "ollama",
]


def registry(**providers: dict) -> ProviderRegistry:
    return ProviderRegistry.from_config(config_from_dict({"providers": providers}))


def test_every_spec_provider_is_built_in() -> None:
    assert sorted(SPEC_PROVIDERS) == sorted(BUILTINS)


@pytest.mark.parametrize(
    ("name", "path", "url"),
    [
        ("openai", "chat/completions", "https://api.openai.com/v1/chat/completions"),
        ("openai", "v1/chat/completions", "https://api.openai.com/v1/chat/completions"),
        ("anthropic", "v1/messages", "https://api.anthropic.com/v1/messages"),
        ("anthropic", "messages", "https://api.anthropic.com/v1/messages"),
        ("groq", "chat/completions", "https://api.groq.com/openai/v1/chat/completions"),
        ("mistral", "v1/chat/completions", "https://api.mistral.ai/v1/chat/completions"),
        (
            "google-ai-studio",
            "v1/models/gemini:generateContent",
            "https://generativelanguage.googleapis.com/v1/models/gemini:generateContent",
        ),
        (
            "google-ai-studio",
            "v1beta/models/gemini:generateContent",
            "https://generativelanguage.googleapis.com/v1beta/models/gemini:generateContent",
        ),
        ("cohere", "v2/chat", "https://api.cohere.ai/v2/chat"),
        ("deepseek", "chat/completions", "https://api.deepseek.com/chat/completions"),
        ("openrouter", "v1/chat/completions", "https://openrouter.ai/api/v1/chat/completions"),
        ("huggingface", "bigcode/starcoder", "https://api-inference.huggingface.co/models/bigcode/starcoder"),
        (
            "azure-openai",
            "res1/dep1/chat/completions",
            "https://res1.openai.azure.com/openai/deployments/dep1/chat/completions",
        ),
    ],
)
def test_join_never_doubles_the_version(name: str, path: str, url: str) -> None:
    assert join_url(BUILTINS[name], path)[0] == url


def test_workers_ai_needs_account_and_has_two_roots() -> None:
    with pytest.raises(ValueError, match="not configured"):
        join_url(BUILTINS["workers-ai"], "@cf/meta/llama")
    p = registry(**{"workers-ai": {"account_id": "acc"}}).get("workers-ai")
    assert p is not None
    base = "https://api.cloudflare.com/client/v4/accounts/acc/ai"
    assert join_url(p, "@cf/meta/llama")[0] == f"{base}/run/@cf/meta/llama"
    assert join_url(p, "v1/chat/completions")[0] == f"{base}/v1/chat/completions"


def test_azure_rejects_host_injection() -> None:
    for bad in ("evil.com%2f/dep/x", "a.b/dep/x", "res/dep"):
        with pytest.raises(ValueError):
            join_url(BUILTINS["azure-openai"], bad)


def test_overrides_and_custom_providers() -> None:
    reg = registry(
        openai={"base_url": "http://127.0.0.1:9/v1"},
        **{"custom-local": {"base_url": "http://h:1/v1/"}},
        anthropic={"base_url": "http://127.0.0.1:9"},
    )
    openai, custom, anthropic = reg.get("openai"), reg.get("custom-local"), reg.get("anthropic")
    assert openai and custom and anthropic
    assert join_url(openai, "v1/models")[0] == "http://127.0.0.1:9/v1/models"
    assert join_url(custom, "v1/chat/completions")[0] == "http://h:1/v1/chat/completions"
    assert join_url(custom, "chat/completions")[0] == "http://h:1/v1/chat/completions"
    assert join_url(anthropic, "v1/messages")[0] == "http://127.0.0.1:9/v1/messages"


def test_unknown_provider_names_fail_at_start() -> None:
    with pytest.raises(ConfigError, match="providers.opena: unknown provider"):
        registry(opena={})
    with pytest.raises(ConfigError, match="base_url: required"):
        registry(**{"custom-x": {}})


def test_byok_keys_alias_and_round_robin() -> None:
    reg = registry(openai={"api_key": "k0", "api_keys": [{"alias": "a", "key": "k1"}, {"alias": "b", "key": "k2"}]})
    p = reg.get("openai")
    assert p is not None
    assert reg.pick_key(p, "a").key == "k1"  # type: ignore[union-attr]
    assert reg.pick_key(p, "zzz") is None
    picks = [reg.pick_key(p, None).key for _ in range(9)]  # type: ignore[union-attr]
    assert sorted(picks) == ["k0"] * 3 + ["k1"] * 3 + ["k2"] * 3
    assert "k1" not in repr(p)


def test_model_from_body_or_path() -> None:
    assert model_from(BUILTINS["openai"], "chat/completions", {}, {"model": "gpt-4o"}) == "gpt-4o"
    assert model_from(BUILTINS["google-ai-studio"], "v1beta/models/gemini-2.0-flash:generateContent", {}, None) == (
        "gemini-2.0-flash"
    )
    assert model_from(BUILTINS["azure-openai"], "x", {"deployment": "dep"}, {}) == "dep"
    assert model_from(BUILTINS["workers-ai"], "@cf/meta/llama-3", {}, {"prompt": "x"}) == "@cf/meta/llama-3"
