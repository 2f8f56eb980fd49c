"""The built-in providers (SPEC §2): data, one `Provider` each, plus the Azure SDK's path layouts."""

from __future__ import annotations

import re

from .spec import Layout, Provider, RealtimeAPI

_LABEL = "[A-Za-z0-9][A-Za-z0-9-]{0,62}"
# The layouts the official AzureOpenAI client produces, most specific first. The canonical path is
# ``{resource}/deployments/{deployment}/{op}`` or, for routes without a deployment (the v1 API,
# files, batches), ``{resource}/{path below /openai}``.
_AZURE_LAYOUTS = tuple(
    Layout(re.compile(pattern), canonical)
    for pattern, canonical in (
        # AzureOpenAI(azure_endpoint=".../azure-openai/RES", azure_deployment=D) — or model=D
        (r"^(?P<r>[^/]+)/openai/deployments/(?P<d>[^/]+)/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
        # the v1 API (OpenAI(base_url=".../azure-openai/RES/openai/v1")) and deployment-less routes
        (r"^(?P<r>[^/]+)/openai/(?P<op>.+)$", "{r}/{op}"),
        # the canonical form itself, so a rewritten path rewrites to itself
        (r"^(?P<r>[^/]+)/deployments/(?P<d>[^/]+)/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
        # AzureOpenAI(base_url=".../azure-openai/RES/D"): the SDK appends deployments/{model};
        # the deployment the client was built with wins, as with a base_url naming one on Azure
        (r"^(?P<r>[^/]+)/(?P<d>[^/]+)/deployments/[^/]+/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
        # Cloudflare's layout: /azure-openai/{resource}/{deployment}/{op}
        (r"^(?P<r>[^/]+)/(?P<d>[^/]+)/(?P<op>.+)$", "{r}/deployments/{d}/{op}"),
    )
)

# host base with its version segment; header; scheme; usage format; OTel provider name
BUILTINS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "openai",
            "https://api.openai.com/v1",
            "v1",
            otel_name="openai",
            stream_usage=True,
            realtime=RealtimeAPI("{base}", "realtime", key_subprotocol="openai-insecure-api-key."),
        ),
        Provider(
            "azure-openai",
            "https://{resource}.openai.azure.com/openai",
            auth_header="api-key",
            auth_scheme="",
            otel_name="azure.ai.openai",
            stream_usage=True,
            path_params=("resource",),
            layouts=_AZURE_LAYOUTS,
            # wss://{resource}.openai.azure.com/openai/realtime?api-version=…&deployment=…
            realtime=RealtimeAPI(
                "{origin}/openai",
                "realtime",
                key_query=("api-key",),
                model_query=("deployment", "model"),
                path_query=("deployment",),
            ),
        ),
        Provider(
            "anthropic",
            "https://api.anthropic.com/v1",
            "v1",
            auth_header="x-api-key",
            auth_scheme="",
            format="anthropic",
            otel_name="anthropic",
            headers=(("anthropic-version", "2023-06-01"),),
        ),
        Provider(
            "workers-ai",
            "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run",
            "run",
            ("v1",),
            format="workers-ai",
            otel_name="cloudflare.workers_ai",
        ),
        # The Inference Providers router: ``/huggingface/{model}`` is HF Inference (the successor of
        # api-inference.huggingface.co/models), ``/huggingface/v1/…`` its OpenAI-compatible root.
        Provider(
            "huggingface",
            "https://router.huggingface.co/hf-inference/models",
            "hf-inference/models",
            ("v1",),
            otel_name="huggingface",
            stream_usage=True,  # the router's chat completions take stream_options like OpenAI's
        ),
        Provider("replicate", "https://api.replicate.com/v1", "v1", format="replicate", otel_name="replicate"),
        Provider(
            "groq", "https://api.groq.com/openai/v1", "v1", otel_name="groq", stream_usage=True, sdk_root="openai"
        ),
        Provider("mistral", "https://api.mistral.ai/v1", "v1", otel_name="mistral_ai"),
        Provider(
            "cohere",
            "https://api.cohere.ai/v1",
            "v1",
            ("v2", "compatibility"),
            format="cohere",
            otel_name="cohere",
            openai_paths=("compatibility/",),
            openai_stream_usage=False,  # not documented for Cohere's compatibility API
        ),
        Provider(
            "google-ai-studio",
            "https://generativelanguage.googleapis.com/v1beta",
            "v1beta",
            ("v1", "v1alpha"),
            auth_header="x-goog-api-key",
            auth_scheme="",
            format="gemini",
            otel_name="gcp.gemini",
            query_key="key",
            openai_paths=("openai/", "v1/openai/"),
            # The Live API sits beside the versioned REST base, at the host's root.
            realtime=RealtimeAPI(
                "{origin}",
                "ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
                key_query=("key", "access_token"),
                model_query=(),
            ),
        ),
        Provider("deepseek", "https://api.deepseek.com", otel_name="deepseek", stream_usage=True),
        Provider("perplexity-ai", "https://api.perplexity.ai", otel_name="perplexity"),
        Provider("cerebras", "https://api.cerebras.ai/v1", "v1", otel_name="cerebras", stream_usage=True),
        Provider("grok", "https://api.x.ai/v1", "v1", otel_name="x_ai", stream_usage=True),
        Provider("openrouter", "https://openrouter.ai/api/v1", "v1", otel_name="openrouter", stream_usage=True),
        # Ollama's OpenAI-compatible API (/v1/…) accepts stream_options.include_usage since 0.5
        Provider("ollama", "http://127.0.0.1:11434", format="ollama", otel_name="ollama", openai_paths=("v1/",)),
    )
}
