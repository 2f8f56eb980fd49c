"""The client matrix as data: one `Case` per official SDK call checked through ``aigw serve``.

Each case says what the SDK is pointed at, what it calls, and what the gateway must make of it:
the path it reaches on the (fake) provider, the one credential header that arrives there, the
log row's provider, model and tokens, whether the row has a cost, and whether the identical
repeat is a cache HIT. The tests in this directory run each case (`harness.Harness.check`
asserts every column); `matrix.py` renders ``docs/clients.md`` from these cases and a results
file, so the page says exactly what the tests assert.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4 "  # what the fake provider answers
TOKENS = (10, 5)  # the fake's prompt and completion token counts


@dataclass(frozen=True)
class Case:
    id: str  # "{sdk}.{call}[.stream]": the test that checks it says check(CASES[id], …)
    sdk: str  # the pip package
    client: str  # how the client is built (GW = the gateway's URL)
    call: str
    stream: bool
    provider: str
    gateway_path: str  # the path the SDK calls on the gateway
    upstream_path: str  # the path the provider receives (below the fake's root)
    credential: str  # the one credential header the provider receives
    model: str  # the log row's model
    tokens: tuple[int | None, int | None] = TOKENS  # the row's (tokens_in, tokens_out); None = not reported
    cost: bool = True  # the row has a cost (tokens x the price table)
    cache: bool = True  # the identical repeat is answered from the cache
    note: str = ""


def _cases(*cases: Case) -> dict[str, Case]:
    out: dict[str, Case] = {}
    for case in cases:
        assert case.id not in out, case.id
        out[case.id] = case
    return out


OPENAI = 'openai.OpenAI(base_url=GW + "/openai")'
AZURE_ENDPOINT = 'openai.AzureOpenAI(azure_endpoint=GW + "/azure-openai/res1", azure_deployment="dep1", api_version=V)'
AZURE_NO_DEPLOYMENT = 'openai.AzureOpenAI(azure_endpoint=GW + "/azure-openai/res1", api_version=V)'
AZURE_BASE_URL = 'openai.AzureOpenAI(base_url=GW + "/azure-openai/res1/dep1", api_version=V)'
AZURE_V1 = 'openai.OpenAI(base_url=GW + "/azure-openai/res1/openai/v1")'
ANTHROPIC = 'anthropic.Anthropic(base_url=GW + "/anthropic")'
GROQ = 'groq.Groq(base_url=GW + "/groq")'
MISTRAL = 'mistralai.client.Mistral(server_url=GW + "/mistral")'
GENAI = 'google.genai.Client(http_options={"base_url": GW + "/google-ai-studio"})'
COHERE = 'cohere.ClientV2(base_url=GW + "/cohere")'
HF = 'huggingface_hub.InferenceClient(base_url=GW + "/huggingface")'
HF_MODEL = 'huggingface_hub.InferenceClient(model=GW + "/huggingface/" + MODEL)'
REPLICATE = 'replicate.Client(base_url=GW + "/replicate")'
OLLAMA = 'ollama.Client(host=GW + "/ollama")'
OLLAMA_OPENAI = 'openai.OpenAI(base_url=GW + "/ollama/v1")'

CHAT = "/chat/completions"
AZ_CHAT = "/openai/deployments/dep1/chat/completions"
BEARER = "authorization"
NONE = "(none)"  # the client sends no credential (a local Ollama needs none)

# fmt: off
CASES = _cases(
    # -- openai ---------------------------------------------------------------------------------
    Case("openai.chat", "openai", OPENAI, "chat.completions.create", False, "openai", "/openai" + CHAT,
         "/v1" + CHAT, BEARER, "gpt-4o-mini"),
    Case("openai.chat.stream", "openai", OPENAI, "chat.completions.create", True, "openai", "/openai" + CHAT,
         "/v1" + CHAT, BEARER, "gpt-4o-mini"),
    Case("openai.responses", "openai", OPENAI, "responses.create", False, "openai", "/openai/responses",
         "/v1/responses", BEARER, "gpt-4o-mini"),
    Case("openai.responses.stream", "openai", OPENAI, "responses.create", True, "openai", "/openai/responses",
         "/v1/responses", BEARER, "gpt-4o-mini"),
    Case("openai.embeddings", "openai", OPENAI, "embeddings.create", False, "openai", "/openai/embeddings",
         "/v1/embeddings", BEARER, "text-embedding-3-small", tokens=(10, None)),
    Case("openai.transcriptions", "openai", OPENAI, "audio.transcriptions.create", False, "openai",
         "/openai/audio/transcriptions", "/v1/audio/transcriptions", BEARER, "gpt-4o-transcribe",
         note="multipart upload: the model is read from the form, the cache keys the parts"),
    # -- azure-openai ---------------------------------------------------------------------------
    Case("azure.chat", "openai", AZURE_ENDPOINT, "chat.completions.create", False, "azure-openai",
         "/azure-openai/res1" + AZ_CHAT, AZ_CHAT, "api-key", "gpt-4o-mini"),
    Case("azure.chat.stream", "openai", AZURE_ENDPOINT, "chat.completions.create", True, "azure-openai",
         "/azure-openai/res1" + AZ_CHAT, AZ_CHAT, "api-key", "gpt-4o-mini"),
    Case("azure.chat.model-as-deployment", "openai", AZURE_NO_DEPLOYMENT, "chat.completions.create", False,
         "azure-openai", "/azure-openai/res1" + AZ_CHAT, AZ_CHAT, "api-key", "dep1", cost=False,
         note='model="dep1" names the deployment; priced by the model Azure answers with, or [prices."dep1"]'),
    Case("azure.chat.base-url", "openai", AZURE_BASE_URL, "chat.completions.create", False, "azure-openai",
         "/azure-openai/res1/dep1/deployments/gpt-4o-mini/chat/completions", AZ_CHAT, "api-key", "gpt-4o-mini",
         note="the SDK appends deployments/{model}; the deployment in base_url wins"),
    Case("azure.v1.chat", "openai", AZURE_V1, "chat.completions.create", False, "azure-openai",
         "/azure-openai/res1/openai/v1" + CHAT, "/openai/v1" + CHAT, BEARER, "gpt-4o-mini",
         note="Azure's v1 API: the model in the body names the deployment"),
    Case("azure.v1.responses.stream", "openai", AZURE_V1, "responses.create", True, "azure-openai",
         "/azure-openai/res1/openai/v1/responses", "/openai/v1/responses", BEARER, "gpt-4o-mini"),
    Case("azure.transcriptions", "openai", AZURE_NO_DEPLOYMENT, "audio.transcriptions.create", False,
         "azure-openai", "/azure-openai/res1/openai/deployments/gpt-4o-transcribe/audio/transcriptions",
         "/openai/deployments/gpt-4o-transcribe/audio/transcriptions", "api-key", "gpt-4o-transcribe",
         note="a deployment named after its model is priced as that model"),
    # -- anthropic ------------------------------------------------------------------------------
    Case("anthropic.messages", "anthropic", ANTHROPIC, "messages.create", False, "anthropic",
         "/anthropic/v1/messages", "/v1/messages", BEARER, "claude-haiku-4-5"),
    Case("anthropic.messages.stream", "anthropic", ANTHROPIC, "messages.stream", True, "anthropic",
         "/anthropic/v1/messages", "/v1/messages", BEARER, "claude-haiku-4-5"),
    # -- groq -----------------------------------------------------------------------------------
    Case("groq.chat", "groq", GROQ, "chat.completions.create", False, "groq", "/groq/openai/v1" + CHAT,
         "/openai/v1" + CHAT, BEARER, "llama-3.1-8b-instant"),
    Case("groq.chat.stream", "groq", GROQ, "chat.completions.create", True, "groq", "/groq/openai/v1" + CHAT,
         "/openai/v1" + CHAT, BEARER, "llama-3.1-8b-instant"),
    # -- mistral --------------------------------------------------------------------------------
    Case("mistral.chat", "mistralai", MISTRAL, "chat.complete", False, "mistral", "/mistral/v1" + CHAT,
         "/mistral/v1" + CHAT, BEARER, "mistral-small-latest"),
    Case("mistral.chat.stream", "mistralai", MISTRAL, "chat.stream", True, "mistral", "/mistral/v1" + CHAT,
         "/mistral/v1" + CHAT, BEARER, "mistral-small-latest"),
    Case("mistral.embeddings", "mistralai", MISTRAL, "embeddings.create", False, "mistral",
         "/mistral/v1/embeddings", "/mistral/v1/embeddings", BEARER, "mistral-embed", tokens=(10, 0)),
    # -- google-ai-studio -----------------------------------------------------------------------
    Case("genai.generate", "google-genai", GENAI, "models.generate_content", False, "google-ai-studio",
         "/google-ai-studio/v1/models/gemini-2.0-flash:generateContent",
         "/v1/models/gemini-2.0-flash:generateContent", "x-goog-api-key", "gemini-2.0-flash"),
    Case("genai.generate.stream", "google-genai", GENAI, "models.generate_content_stream", True,
         "google-ai-studio", "/google-ai-studio/v1/models/gemini-2.0-flash:streamGenerateContent",
         "/v1/models/gemini-2.0-flash:streamGenerateContent", "x-goog-api-key", "gemini-2.0-flash"),
    # -- cohere ---------------------------------------------------------------------------------
    Case("cohere.chat", "cohere", COHERE, "chat", False, "cohere", "/cohere/v2/chat", "/cohere/v2/chat", BEARER,
         "command-r"),
    Case("cohere.chat.stream", "cohere", COHERE, "chat_stream", True, "cohere", "/cohere/v2/chat",
         "/cohere/v2/chat", BEARER, "command-r"),
    Case("cohere.embed", "cohere", COHERE, "embed", False, "cohere", "/cohere/v2/embed", "/cohere/v2/embed",
         BEARER, "embed-v4.0", tokens=(10, None), cost=False, note="not in the built-in price table"),
    # -- huggingface ----------------------------------------------------------------------------
    Case("huggingface.chat", "huggingface_hub", HF, "chat_completion", False, "huggingface",
         "/huggingface/v1" + CHAT, "/v1" + CHAT, BEARER, "meta-llama/Llama-3.1-8B-Instruct",
         note="the Inference Providers router's OpenAI-compatible API"),
    Case("huggingface.chat.stream", "huggingface_hub", HF, "chat_completion", True, "huggingface",
         "/huggingface/v1" + CHAT, "/v1" + CHAT, BEARER, "meta-llama/Llama-3.1-8B-Instruct"),
    Case("huggingface.text_generation", "huggingface_hub", HF_MODEL, "text_generation", False, "huggingface",
         "/huggingface/meta-llama/Llama-3.1-8B-Instruct", "/hf-inference/models/meta-llama/Llama-3.1-8B-Instruct",
         BEARER, "meta-llama/Llama-3.1-8B-Instruct", tokens=(None, None), cost=False,
         note="HF Inference text generation reports no token counts"),
    # -- replicate ------------------------------------------------------------------------------
    Case("replicate.run", "replicate", REPLICATE, "run", False, "replicate",
         "/replicate/v1/models/meta/meta-llama-3-8b-instruct/predictions",
         "/replicate/v1/models/meta/meta-llama-3-8b-instruct/predictions", BEARER, "meta/meta-llama-3-8b-instruct",
         note="tokens from metrics.input_token_count / output_token_count"),
    Case("replicate.predictions.create", "replicate", REPLICATE, "predictions.create(version=…).wait", False,
         "replicate", "/replicate/v1/predictions", "/replicate/v1/predictions", BEARER,
         "meta/meta-llama-3-8b-instruct", note="the model is read from the prediction the provider answers"),
    # -- ollama ---------------------------------------------------------------------------------
    Case("ollama.chat", "ollama", OLLAMA, "chat", False, "ollama", "/ollama/api/chat", "/api/chat", NONE,
         "llama3.2"),
    Case("ollama.chat.stream", "ollama", OLLAMA, "chat", True, "ollama", "/ollama/api/chat", "/api/chat",
         NONE, "llama3.2"),
    Case("ollama.openai.chat", "openai", OLLAMA_OPENAI, "chat.completions.create", False, "ollama",
         "/ollama/v1" + CHAT, "/v1" + CHAT, BEARER, "llama3.2", note="Ollama's OpenAI-compatible API"),
    Case("ollama.openai.chat.stream", "openai", OLLAMA_OPENAI, "chat.completions.create", True, "ollama",
         "/ollama/v1" + CHAT, "/v1" + CHAT, BEARER, "llama3.2"),
)
# fmt: on
