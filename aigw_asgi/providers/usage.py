"""Token usage out of provider answers, buffered or streamed, sans-IO.

Usage is counted from what the provider reported, never estimated (``None`` means unknown). The
counts follow the GenAI semantic conventions: input tokens include cached ones (Anthropic reports
them apart, so they are added back) and output tokens include reasoning ones (Gemini reports
thoughts apart, so they are added too).

Wire formats, by the name the provider registry uses:

    openai      OpenAI Chat Completions, Responses and Embeddings, and everyone speaking them (Groq,
                Mistral, DeepSeek, xAI, OpenRouter, Perplexity, Cerebras, Azure, TGI…). Unknown
                names fall back to it.
    anthropic   Messages API
    gemini      generateContent / streamGenerateContent (``alt=sse``, or a JSON array when buffered)
    workers-ai  Cloudflare Workers AI, native (``result.usage``) and OpenAI-compatible routes
    cohere      v2 chat (SSE) and v1 (``meta``; NDJSON streams)
    ollama      native API, NDJSON streams (its OpenAI-compatible ``/v1`` is read as ``openai``)
    replicate   predictions: ``metrics.input_token_count`` / ``output_token_count`` once succeeded

Streams are read as they pass by `stream.StreamTracker`, which uses the per-format readers here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import _json
from ..context import Usage

FORMATS = frozenset({"openai", "anthropic", "gemini", "workers-ai", "cohere", "ollama", "replicate"})
_STRIPPABLE = frozenset({"openai", "workers-ai"})  # formats where the gateway may inject include_usage
_MODEL_TRIES = 3  # events parsed just for the model name (Azure's first chunk names none)

# -- small readers that never raise on unexpected shapes ---------------------------------------------


def _int(value: Any) -> int | None:
    if type(value) is int:  # not bool
        return value if value >= 0 else None
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _loads(data: bytes) -> Any:
    try:
        return _json.loads(data)
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def _has_object(data: bytes, key: bytes) -> bool:
    """Whether ``key`` (quoted) is followed by an object, i.e. ``"usage":{`` but not ``"usage":null``."""
    i = data.find(key)
    while i >= 0:
        j = i + len(key)
        after = data[j : j + 2]
        if after == b":{":
            return True
        if after != b":n":  # not compact JSON's null: allow whitespace around the colon
            rest = data[j : j + 16].lstrip()
            if rest[:1] == b":" and rest[1:].lstrip()[:1] == b"{":
                return True
        i = data.find(key, j)
    return False


def _error_message(error: Any) -> str | None:
    """A provider error object's human message (providers nest it differently)."""
    if isinstance(error, str):
        return error or None
    if isinstance(error, dict):
        for key in ("message", "error", "type", "code", "status"):
            value = error.get(key)
            if isinstance(value, dict):
                return _error_message(value)
            if isinstance(value, str) and value:
                return value
        return json.dumps(error)[:500] if error else None
    return None


# -- usage objects, per wire format ----------------------------------------------------------------


def _openai_usage(u: dict[str, Any]) -> Usage:
    if "prompt_tokens" in u or "completion_tokens" in u:  # Chat Completions, Embeddings
        cached = _int(_dict(u.get("prompt_tokens_details")).get("cached_tokens"))
        if cached is None:
            cached = _int(u.get("prompt_cache_hit_tokens"))  # DeepSeek
        return Usage(
            tokens_in=_int(u.get("prompt_tokens")),
            tokens_out=_int(u.get("completion_tokens")),  # Embeddings: None, not a guessed 0
            cached_tokens_in=cached,
            reasoning_tokens_out=_int(_dict(u.get("completion_tokens_details")).get("reasoning_tokens")),
        )
    return Usage(  # Responses API, audio transcriptions, images
        tokens_in=_int(u.get("input_tokens")),
        tokens_out=_int(u.get("output_tokens")),
        cached_tokens_in=_int(_dict(u.get("input_tokens_details")).get("cached_tokens")),
        reasoning_tokens_out=_int(_dict(u.get("output_tokens_details")).get("reasoning_tokens")),
    )


def _anthropic_usage(u: dict[str, Any]) -> Usage:
    # input_tokens excludes cache reads and writes; the semantic conventions count them as input.
    inp = _int(u.get("input_tokens"))
    read = _int(u.get("cache_read_input_tokens"))
    written = _int(u.get("cache_creation_input_tokens"))
    return Usage(
        tokens_in=None if inp is None else inp + (read or 0) + (written or 0),
        tokens_out=_int(u.get("output_tokens")),
        cached_tokens_in=read,
    )


def _gemini_usage(m: dict[str, Any]) -> Usage:
    # promptTokenCount already includes cachedContentTokenCount; thoughts are billed as output but
    # counted apart from candidates. Zero counts are omitted on the wire (proto3 JSON), so once the
    # total is there a missing output count means 0.
    prompt = _int(m.get("promptTokenCount"))
    tool_prompt = _int(m.get("toolUsePromptTokenCount"))
    candidates = _int(m.get("candidatesTokenCount"))
    thoughts = _int(m.get("thoughtsTokenCount"))
    if candidates is None and thoughts is None:
        tokens_out = 0 if _int(m.get("totalTokenCount")) is not None else None
    else:
        tokens_out = (candidates or 0) + (thoughts or 0)
    return Usage(
        tokens_in=None if prompt is None else prompt + (tool_prompt or 0),
        tokens_out=tokens_out,
        cached_tokens_in=_int(m.get("cachedContentTokenCount")),
        reasoning_tokens_out=thoughts,
    )


def _cohere_usage(u: dict[str, Any]) -> Usage:
    # ``tokens`` counts what the model saw; ``billed_units`` (all that embed/rerank report) what is billed.
    tokens, billed = _dict(u.get("tokens")), _dict(u.get("billed_units"))
    tokens_in = _int(tokens.get("input_tokens"))
    tokens_out = _int(tokens.get("output_tokens"))
    return Usage(
        tokens_in=_int(billed.get("input_tokens")) if tokens_in is None else tokens_in,
        tokens_out=_int(billed.get("output_tokens")) if tokens_out is None else tokens_out,
        cached_tokens_in=_int(u.get("cached_tokens")),
    )


# -- whole answers ---------------------------------------------------------------------------------

Extracted = tuple[str | None, Usage]


def _openai(obj: dict[str, Any]) -> Extracted:
    response = _dict(obj.get("response"))  # Responses API stream events nest the response
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        usage = response.get("usage")
    if not isinstance(usage, dict):
        usage = _dict(obj.get("x_groq")).get("usage")  # Groq's older streams
    model = _str(obj.get("model")) or _str(response.get("model"))
    return model, _openai_usage(usage) if isinstance(usage, dict) else Usage()


def _anthropic(obj: dict[str, Any]) -> Extracted:
    if "usage" not in obj and isinstance(obj.get("message"), dict):  # a message_start event
        obj = obj["message"]
    usage = obj.get("usage")
    return _str(obj.get("model")), _anthropic_usage(usage) if isinstance(usage, dict) else Usage()


def _gemini(obj: dict[str, Any]) -> Extracted:
    meta = obj.get("usageMetadata")
    return _str(obj.get("modelVersion")), _gemini_usage(meta) if isinstance(meta, dict) else Usage()


def _workers_ai(obj: dict[str, Any]) -> Extracted:
    result = obj.get("result")
    if isinstance(result, dict) and ("usage" in result or "model" in result):
        return _openai(result)
    return _openai(obj)  # OpenAI-compatible routes, and stream chunks


def _cohere(obj: dict[str, Any]) -> Extracted:
    usage = obj.get("usage")  # v2
    if not isinstance(usage, dict):
        usage = _dict(obj.get("delta")).get("usage")  # v2 message-end event
    if not isinstance(usage, dict):
        usage = obj.get("meta")  # v1
    if not isinstance(usage, dict):
        usage = _dict(_dict(obj.get("response")).get("meta"))  # v1 stream-end event
    return _str(obj.get("model")), _cohere_usage(usage)


def _ollama(obj: dict[str, Any]) -> Extracted:
    return _str(obj.get("model")), Usage(
        tokens_in=_int(obj.get("prompt_eval_count")), tokens_out=_int(obj.get("eval_count"))
    )


def _replicate(obj: dict[str, Any]) -> Extracted:
    # A prediction reports its token counts in ``metrics`` once it has run (status "succeeded");
    # ``model`` is "owner/name". Predictions of non-language models have no token counts: None.
    metrics = _dict(obj.get("metrics"))
    usage = Usage(tokens_in=_int(metrics.get("input_token_count")), tokens_out=_int(metrics.get("output_token_count")))
    return _str(obj.get("model")), usage


_EXTRACT: dict[str, Callable[[dict[str, Any]], Extracted]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "workers-ai": _workers_ai,
    "cohere": _cohere,
    "ollama": _ollama,
    "replicate": _replicate,
}


def usage_from_json(fmt: str, body: bytes | dict[str, Any] | list[Any]) -> tuple[str | None, Usage]:
    """(the model the answer names, its usage) from a buffered answer.

    Never raises: a body that is not JSON, or not the expected shape, gives ``(None, Usage())``,
    because usage is bookkeeping and must never turn a good answer into an error.
    """
    obj: Any = body if isinstance(body, dict | list) else _loads(body)
    extract = _EXTRACT.get(fmt, _openai)
    if isinstance(obj, list):  # Gemini streamGenerateContent without alt=sse: an array of chunks
        model: str | None = None
        usage = Usage()
        for item in obj:
            if isinstance(item, dict):
                item_model, item_usage = extract(item)
                model = model or item_model
                usage.merge(item_usage)
        return model, usage
    if not isinstance(obj, dict):
        return None, Usage()
    return extract(obj)
