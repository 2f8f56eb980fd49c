from __future__ import annotations

import pytest

from aigw_asgi.config import ConfigError, config_from_dict
from aigw_asgi.providers.registry import BUILTINS, ProviderRegistry, dialect, join_url, model_from, relative_path

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
        ("huggingface", "bigcode/starcoder", "https://router.huggingface.co/hf-inference/models/bigcode/starcoder"),
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


# -- each provider's own SDK pointed at /{provider} (issue 11, defects 2 and 3) -----------------------
# The client paths below are the ones the official SDKs were seen to produce (tests/clients/ checks
# them end to end); the URLs are where those SDKs would have gone without the gateway.

AZ = "https://res1.openai.azure.com/openai"


@pytest.mark.parametrize(
    ("name", "path", "url"),
    [
        # groq.Groq(base_url=".../groq") calls {base_url}/openai/v1/…
        ("groq", "openai/v1/chat/completions", "https://api.groq.com/openai/v1/chat/completions"),
        ("groq", "v1/chat/completions", "https://api.groq.com/openai/v1/chat/completions"),
        # mistralai.Mistral(server_url=".../mistral")
        ("mistral", "v1/chat/completions", "https://api.mistral.ai/v1/chat/completions"),
        # cohere.ClientV2 / cohere.Client(base_url=".../cohere"), and the compatibility API
        ("cohere", "v2/chat", "https://api.cohere.ai/v2/chat"),
        ("cohere", "v1/chat", "https://api.cohere.ai/v1/chat"),
        (
            "cohere",
            "compatibility/v1/chat/completions",
            "https://api.cohere.ai/compatibility/v1/chat/completions",
        ),
        # google-genai Client(http_options={"base_url": ".../google-ai-studio"}) uses v1 (3.x) or v1beta
        (
            "google-ai-studio",
            "v1/models/gemini-2.0-flash:streamGenerateContent",
            "https://generativelanguage.googleapis.com/v1/models/gemini-2.0-flash:streamGenerateContent",
        ),
        (
            "google-ai-studio",
            "v1beta/openai/chat/completions",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        # huggingface_hub.InferenceClient(base_url=".../huggingface") and (model=".../huggingface/{id}")
        ("huggingface", "v1/chat/completions", "https://router.huggingface.co/v1/chat/completions"),
        (
            "huggingface",
            "meta-llama/Llama-3.1-8B-Instruct/v1/chat/completions",
            "https://router.huggingface.co/hf-inference/models/meta-llama/Llama-3.1-8B-Instruct/v1/chat/completions",
        ),
        # replicate.Client(base_url=".../replicate")
        ("replicate", "v1/predictions", "https://api.replicate.com/v1/predictions"),
        (
            "replicate",
            "v1/models/meta/meta-llama-3-8b-instruct/predictions",
            "https://api.replicate.com/v1/models/meta/meta-llama-3-8b-instruct/predictions",
        ),
        # ollama.Client(host=".../ollama") and OpenAI(base_url=".../ollama/v1")
        ("ollama", "api/chat", "http://127.0.0.1:11434/api/chat"),
        ("ollama", "v1/chat/completions", "http://127.0.0.1:11434/v1/chat/completions"),
        # anthropic.Anthropic(base_url=".../anthropic"), openai.OpenAI(base_url=".../openai")
        ("anthropic", "v1/messages", "https://api.anthropic.com/v1/messages"),
        ("openai", "chat/completions", "https://api.openai.com/v1/chat/completions"),
        # AzureOpenAI(azure_endpoint=".../azure-openai/res1", azure_deployment="dep1") — or model="dep1"
        ("azure-openai", "res1/openai/deployments/dep1/chat/completions", f"{AZ}/deployments/dep1/chat/completions"),
        (
            "azure-openai",
            "res1/openai/deployments/whisper/audio/transcriptions",
            f"{AZ}/deployments/whisper/audio/transcriptions",
        ),
        # AzureOpenAI(base_url=".../azure-openai/res1/dep1"): the SDK appends deployments/{model}
        ("azure-openai", "res1/dep1/deployments/gpt-4o/chat/completions", f"{AZ}/deployments/dep1/chat/completions"),
        # OpenAI(base_url=".../azure-openai/res1/openai/v1"): Azure's v1 API, no deployment in the path
        ("azure-openai", "res1/openai/v1/chat/completions", f"{AZ}/v1/chat/completions"),
        ("azure-openai", "res1/openai/v1/responses", f"{AZ}/v1/responses"),
        # deployment-less routes of the AzureOpenAI client (files, batches)
        ("azure-openai", "res1/openai/files", f"{AZ}/files"),
        # Cloudflare's layout, and the canonical form itself
        ("azure-openai", "res1/dep1/chat/completions", f"{AZ}/deployments/dep1/chat/completions"),
        ("azure-openai", "res1/deployments/dep1/embeddings", f"{AZ}/deployments/dep1/embeddings"),
    ],
)
def test_each_official_sdk_layout_reaches_the_provider_url(name: str, path: str, url: str) -> None:
    assert join_url(BUILTINS[name], path)[0] == url


def test_azure_layouts_name_the_deployment_and_key_the_cache_alike() -> None:
    azure = BUILTINS["azure-openai"]
    layouts = (
        "res1/openai/deployments/dep1/chat/completions",
        "res1/dep1/deployments/dep1/chat/completions",
        "res1/dep1/chat/completions",
    )
    for path in layouts:
        _, params = join_url(azure, path)
        assert params == {"resource": "res1", "deployment": "dep1"}
        assert model_from(azure, path, params, None) == "dep1"
    assert {relative_path(azure, p) for p in layouts} == {"res1/deployments/dep1/chat/completions"}
    assert join_url(azure, "res1/openai/v1/chat/completions")[1] == {"resource": "res1"}


def test_groq_sdk_and_openai_sdk_paths_key_the_cache_alike() -> None:
    groq = BUILTINS["groq"]
    assert relative_path(groq, "openai/v1/chat/completions") == relative_path(groq, "chat/completions")


def test_old_azure_base_url_overrides_keep_working() -> None:
    reg = registry(**{"azure-openai": {"base_url": "http://127.0.0.1:9/openai/deployments/{deployment}"}})
    azure = reg.get("azure-openai")
    assert azure is not None
    url = "http://127.0.0.1:9/openai/deployments/dep1/chat/completions"
    assert join_url(azure, "res1/dep1/chat/completions")[0] == url
    assert join_url(azure, "res1/openai/deployments/dep1/chat/completions")[0] == url


@pytest.mark.parametrize(
    ("name", "path"),
    [("openai", ""), ("openai", "v1"), ("openai", "v1/"), ("azure-openai", "res1/dep1"), ("ollama", "")],
)
def test_no_endpoint_path_is_refused_not_sent_to_the_bare_base(name: str, path: str) -> None:
    with pytest.raises(ValueError):
        join_url(BUILTINS[name], path)


def test_openai_compatible_paths_read_usage_in_openai_format() -> None:
    ollama = BUILTINS["ollama"]
    assert dialect(ollama, "api/chat") is ollama
    compat = dialect(ollama, "v1/chat/completions")
    assert compat.format == "openai" and compat.stream_usage
    gemini = BUILTINS["google-ai-studio"]
    assert dialect(gemini, "v1beta/openai/chat/completions").format == "openai"
    assert dialect(gemini, "v1beta/models/g:generateContent").format == "gemini"
    cohere = dialect(BUILTINS["cohere"], "compatibility/v1/chat/completions")
    assert cohere.format == "openai" and not cohere.stream_usage
    assert dialect(BUILTINS["cohere"], "v2/chat").format == "cohere"


def test_path_addressed_models() -> None:
    hf = BUILTINS["huggingface"]
    # huggingface_hub sends a placeholder model in the body when the model is a URL
    path = "meta-llama/Llama-3.1-8B-Instruct/v1/chat/completions"
    assert model_from(hf, path, {}, {"model": "dummy"}) == "meta-llama/Llama-3.1-8B-Instruct"
    assert model_from(hf, "BAAI/bge-small/pipeline/feature-extraction", {}, None) == "BAAI/bge-small"
    assert model_from(hf, "v1/chat/completions", {}, {"model": "Qwen/Qwen3"}) == "Qwen/Qwen3"
    replicate = BUILTINS["replicate"]
    assert model_from(replicate, "v1/models/meta/llama-3/predictions", {}, {"input": {}}) == "meta/llama-3"
    assert model_from(replicate, "v1/predictions", {}, {"version": "abc"}) is None
