"""OpenTelemetry attribute and metric names, as plain strings.

Why our own constants: the GenAI conventions moved out of the main semantic-conventions repo in
May 2026, and the Python constants in ``opentelemetry.semconv._incubating`` are private and all
marked "Deprecated: Moved". Names here follow

    https://github.com/open-telemetry/semantic-conventions-genai/tree/004902b8cb70aa5ae6ca4ae07132b7daabcd3e10/docs/gen-ai
    (gen-ai-spans.md, gen-ai-metrics.md; status: Development)

plus the stable HTTP/server/error conventions (semantic-conventions v1.42.0). ``gen_ai.system``
is deliberately absent: it is deprecated in favour of ``gen_ai.provider.name``. Names under
``aigw.`` are this gateway's own.
"""

from __future__ import annotations

# -- GenAI (Development) -------------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"  # includes cached input tokens
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"  # opt-in content
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"  # opt-in content
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"  # opt-in content

# gen_ai.operation.name well-known values
OP_CHAT = "chat"
OP_TEXT_COMPLETION = "text_completion"
OP_EMBEDDINGS = "embeddings"
OP_GENERATE_CONTENT = "generate_content"
OTHER = "_OTHER"  # the conventions' value for "none of the known ones"

TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"

# -- Stable general conventions ------------------------------------------------------------------
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
CLIENT_ADDRESS = "client.address"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_PATH = "url.path"
URL_SCHEME = "url.scheme"
USER_AGENT_ORIGINAL = "user_agent.original"

# -- This gateway's own ----------------------------------------------------------------------------
AIGW_GATEWAY_ID = "aigw.gateway.id"
AIGW_PROVIDER = "aigw.provider"  # the gateway's provider slug ("openai", "workers-ai", a custom name)
AIGW_CACHE_STATUS = "aigw.cache_status"  # HIT | MISS | BYPASS
AIGW_STEP = "aigw.step"
AIGW_ATTEMPT = "aigw.attempt"
AIGW_COST = "aigw.cost"  # USD, as logged
AIGW_LOG_ID = "aigw.log_id"
AIGW_EVENT_ID = "aigw.event_id"
AIGW_REQUEST_ID = "aigw.request_id"
AIGW_TOKEN_NAME = "aigw.token.name"  # the *name* of the gateway token, never the token
AIGW_RATE_LIMITED_BY = "aigw.rate_limited_by"
AIGW_ERROR_CODE = "aigw.error.code"  # the gateway's own error code (2003, 2005…)
AIGW_METADATA_PREFIX = "aigw.metadata."  # + each cf-aig-metadata key

# -- Metrics ---------------------------------------------------------------------------------------
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
METRIC_REQUESTS = "aigw.requests"

# Bucket boundaries the conventions ask for.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
