"""A fake LLM provider server (pure ASGI) that speaks the providers' real wire formats.

Why: gateway tests must exercise real HTTP against something that behaves like OpenAI,
Anthropic, Gemini, Workers AI and Ollama -- including the unpleasant parts (errors in each
provider's own format, slow first bytes, slow or broken streams, hangs, unexpected gzip) --
without network access and deterministically. Run it under a real server with
``tests.servers.ServerThread`` (or use the ``fake_upstream`` fixture) and point the gateway at it.

Routes (path matching is by suffix where providers share the OpenAI shape, so Azure-, Groq-,
Gemini-OpenAI- or Workers-AI-OpenAI-style prefixes work too)::

    POST .../chat/completions                       OpenAI chat (JSON, or SSE with "stream": true)
    POST .../embeddings                             OpenAI embeddings (float or base64 encoding_format)
    GET  .../models                                 OpenAI model list (``app.models``)
    POST .../responses                              OpenAI Responses API (minimal; JSON or SSE)
    POST /v1/messages                               Anthropic Messages (JSON, or SSE with "stream": true)
    POST /v1/messages/count_tokens                  Anthropic token count
    POST .../models/{model}:generateContent         Gemini (any prefix: /v1beta, /v1, Vertex paths)
    POST .../models/{model}:streamGenerateContent   Gemini stream: SSE with ?alt=sse, else a streamed
                                                    JSON array
    POST .../models/{model}:countTokens             Gemini token count
    POST .../models/{model}:embedContent            Gemini embedding
    POST /client/v4/accounts/{acct}/ai/run/{model}  Workers AI (model may contain slashes, "@cf/...")
    POST /api/chat, /api/generate                   Ollama native; NDJSON stream unless "stream": false
                                                    (Ollama's own default is to stream!)
    GET  /api/tags                                  Ollama model list
    (Cohere, Mistral, HF Inference, Replicate, transcriptions: see ``tests.fakes.extra``)
    anything else                                   404 {"error":{"message":"not found",...}}
    WebSocket upgrades (any path)                   realtime: OpenAI Realtime / Gemini Live, see
                                                    tests/fakes/realtime.py (``app.realtime``)

Content is deterministic: ``chunks`` content pieces ``"chunk0 "``, ``"chunk1 "``, ... (the non-stream
text is their concatenation). Usage: prompt tokens = ``prompt_tokens`` (default 10), completion tokens =
``chunks`` (default 5), cached tokens = ``cached_tokens`` (default 0, reported as OpenAI
``prompt_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``, Gemini
``cachedContentTokenCount``).

Tool calls: a chat/messages/generateContent request that offers tools (and whose last turn is not a
tool result, and whose tool choice is not "none") is answered with ``tool_calls`` (default 1) calls of
its first tool with ``tool_arguments`` (default ``{"location": "Paris"}``) in each format's own shape,
arguments streamed in pieces where the provider does (OpenAI, Anthropic; Gemini sends calls whole).
``thinking=True`` adds reasoning: an Anthropic ``thinking`` block with a signature, Gemini ``thought``
parts and a ``thoughtSignature`` on function calls, OpenAI-compatible ``reasoning_content``.

Recording: every HTTP request is appended to ``app.requests`` as a :class:`RecordedRequest`
(method, path, query_string, headers as a lowercase dict, raw body, parsed json, model, the effective
:class:`Steering`, and whether the client disconnected before the response completed -- handy to prove
a gateway cancels upstream work). Helpers: ``app.last``, ``app.wait_for_requests(n, timeout_s)``
(blocking) and ``await app.await_requests(n, timeout_s)`` (async; use it when the gateway runs in the
test's own event loop).

Steering -- three layers, later ones win:

1. Attributes on the app (apply to every request until ``reset()``)::

       app.status = 503              # every request fails with a provider-format error body
       app.delay_s = 0.5             # wait before sending response headers (slow first byte)
       app.chunk_delay_s = 0.2       # wait between stream frames (prove incremental delivery)
       app.linger_s = 2.0            # after a stream's last frame, keep the connection open this long
                                     # (real providers close a few ms after [DONE] / message_stop)
       app.break_after = 2           # cut the connection after 2 stream frames (no terminal event)
       app.hang = True               # never answer until app.release()/reset() or client disconnect
       app.gzip = True               # Content-Encoding: gzip even though the client did not ask
       app.chunks = 3                # number of content pieces
       app.prompt_tokens = 10; app.cached_tokens = 0
       app.retry_after = "1"         # Retry-After sent with 429/503/529 errors (None = omit)
       app.error_message = None      # override error message text
       app.response = RawResponse(502, b"<html>bad gateway</html>", content_type="text/html")

2. Rules for the next N matching requests (FIFO; the first matching rule with uses left applies)::

       app.fail(429, times=2)                       # next 2 requests -> 429 with Retry-After
       app.fail(500, path="/v1/chat/completions")   # only the next OpenAI chat request
       app.fail(401, times=None)                    # every request from now on
       app.steer(times=1, model="gpt-4o", delay_s=2.0, break_after=3)  # any Steering fields

   ``path`` is a substring match on the request path, ``model`` an exact match on the request's model
   (body ``model`` or the model in a Gemini/Workers AI path).

3. Request headers (steer one request; a gateway only sees these if it forwards them)::

       x-fake-status: 429         x-fake-delay: 0.5          x-fake-chunk-delay: 0.1
       x-fake-break-after: 2      x-fake-gzip: 1             x-fake-chunks: 3
       x-fake-hang: 1             x-fake-retry-after: 7      x-fake-prompt-tokens: 42
       x-fake-cached-tokens: 4    x-fake-tool-calls: 2       x-fake-thinking: 1
       x-fake-linger: 2

Semantics: ``break_after=K`` on a stream sends the response headers and the first K frames (SSE events /
NDJSON lines; K is clamped so the terminal frame is never sent) and then closes the connection without
the terminating chunk, so clients see an incomplete body. On a non-stream response it sends the full
``Content-Length`` but only half the body. ``hang`` records the request and then waits; ``app.release()``
lets every currently hanging request continue normally (so a hang doubles as a gate for concurrency
tests). Status errors are only produced for status >= 400. ``app.reset()`` clears requests, rules and
attributes, and releases hangs.
"""

from __future__ import annotations

import asyncio
import base64
import gzip as gzip_module
import json
import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

from tests.fakes.realtime import FakeRealtime

if TYPE_CHECKING:
    from tests.servers import ServerThread

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Provider = Literal["openai", "anthropic", "gemini", "workers_ai", "ollama"]

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")


@dataclass(frozen=True)
class RawResponse:
    """A canned response sent verbatim (for odd upstreams: HTML error pages, empty bodies, ...)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


TIMER_SLACK_S = 0.0015
"""How early a delay here may end: uvloop (libuv) keeps its clock in whole milliseconds, cached per
loop turn, so a 40 ms sleep can end up to 1 ms early by the monotonic clock requests are stamped
with (seen: 39.85 ms). Tests that time a delay allow this much."""


@dataclass(frozen=True)
class Steering:
    """The knobs that decide how one request is answered; see the module docstring."""

    status: int | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    linger_s: float = 0.0
    break_after: int | None = None
    hang: bool = False
    gzip: bool = False
    chunks: int = 5
    prompt_tokens: int = 10
    cached_tokens: int = 0
    retry_after: str | None = "1"
    error_message: str | None = None
    response: RawResponse | None = None
    tool_calls: int = 1
    tool_arguments: str = '{"location": "Paris"}'
    thinking: bool = False


STEERING_FIELDS: frozenset[str] = frozenset(f.name for f in fields(Steering))


@dataclass
class RecordedRequest:
    """One request as the fake saw it. ``headers`` keys are lowercase; repeated headers are joined."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    received_at: float
    model: str | None = None
    steering: Steering | None = None
    completed: bool = False
    disconnected: bool = False
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string parsed with ``urllib.parse.parse_qs``."""
        return parse_qs(self.query_string, keep_blank_values=True)


@dataclass
class _Rule:
    overrides: dict[str, Any]
    times: int | None
    path: str | None
    model: str | None

    def matches(self, path: str, model: str | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.path is not None and self.path not in path:
            return False
        return self.model is None or self.model == model


class SteeringHeaderError(ValueError):
    """An ``x-fake-*`` header could not be parsed; answered with a provider-format 400."""


@dataclass
class _JsonReply:
    obj: Any
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _StreamReply:
    frames: list[bytes]
    content_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)


_Reply = _JsonReply | _StreamReply


@dataclass
class _Ctx:
    """Everything a route handler needs to build its reply."""

    rec: RecordedRequest
    steering: Steering
    provider: Provider
    body: dict[str, Any]
    match: re.Match[str] | None

    @property
    def words(self) -> list[str]:
        return [f"chunk{i} " for i in range(max(self.steering.chunks, 0))]

    @property
    def text(self) -> str:
        return "".join(self.words)

    @property
    def prompt_tokens(self) -> int:
        return self.steering.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return len(self.words)

    @property
    def cached_tokens(self) -> int:
        return self.steering.cached_tokens

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def tool_to_call(self) -> str | None:
        """The tool this request gets calls of (see "Tool calls" in the module docstring), if any."""
        body = self.body
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools or self.steering.tool_calls <= 0:
            return None
        if self.provider == "gemini":
            declarations = (tools[0] or {}).get("functionDeclarations") or [{}]
            mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
            contents = body.get("contents") or [{}]
            last = contents[-1].get("parts") or []
            if mode == "NONE" or any("functionResponse" in p for p in last):
                return None
            return str(declarations[0].get("name"))
        messages = body.get("messages") or [{}]
        last_message = messages[-1] if isinstance(messages[-1], dict) else {}
        choice = body.get("tool_choice")
        if self.provider == "anthropic":
            content = last_message.get("content")
            if isinstance(choice, dict) and choice.get("type") == "none":
                return None
            if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
                return None
            return str(tools[0].get("name"))
        if choice == "none" or last_message.get("role") == "tool":
            return None
        return str((tools[0].get("function") or {}).get("name"))

    def argument_pieces(self) -> list[str]:
        """The tool arguments cut in three, as providers stream them."""
        text = self.steering.tool_arguments
        third = max(1, len(text) // 3)
        return [text[:third], text[third : 2 * third], text[2 * third :]]


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _sse(data: Any, event: str | None = None, sep: str = "\n") -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}{sep}" if event else ""
    return f"{prefix}data: {payload}{sep}{sep}".encode()


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _fake_vector(seed: str, dims: int) -> list[float]:
    """A deterministic, input-dependent vector so tests can tell embeddings apart."""
    base = zlib.crc32(seed.encode())
    return [round(((base >> (i % 24)) % 1000) / 1000.0 - 0.5 + i * 1e-3, 6) for i in range(dims)]


_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    408: ("timeout", None),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "timeout"),
}
_ANTHROPIC_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GEMINI_ERRORS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_WORKERS_AI_ERRORS: dict[int, int] = {400: 5006, 401: 10000, 403: 10000, 404: 7003, 429: 3040, 500: 3043}
_RETRY_AFTER_STATUSES: frozenset[int] = frozenset({429, 503, 529})


def error_body(provider: Provider, status: int, message: str) -> dict[str, Any]:
    """The error JSON each provider really sends for ``status`` (exposed for tests' expectations)."""
    if provider == "anthropic":
        err_type = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {
            "type": "error",
            "error": {"type": err_type, "message": message},
            "request_id": _new_id("req_"),
        }
    if provider == "gemini":
        gstatus = _GEMINI_ERRORS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": gstatus}}
    if provider == "workers_ai":
        code = _WORKERS_AI_ERRORS.get(status, 3043 if status >= 500 else 5006)
        errors = [{"code": code, "message": message}]
        return {"result": None, "success": False, "errors": errors, "messages": []}
    if provider == "ollama":
        return {"error": message}
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    err_type, code = _OPENAI_ERRORS.get(status, fallback)
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def _default_error_message(status: int) -> str:
    return {
        400: "fake upstream: bad request",
        401: "fake upstream: invalid api key",
        403: "fake upstream: forbidden",
        404: "fake upstream: not found",
        429: "fake upstream: rate limit exceeded",
        500: "fake upstream: internal error",
        502: "fake upstream: bad gateway",
        503: "fake upstream: service unavailable",
        504: "fake upstream: timeout",
        529: "fake upstream: overloaded",
    }.get(status, f"fake upstream: forced status {status}")


# --------------------------------------------------------------------------------------------------
# Route handlers: each returns a _JsonReply or _StreamReply built from the context.
# --------------------------------------------------------------------------------------------------


def _openai_usage(ctx: _Ctx) -> dict[str, Any]:
    return {
        "prompt_tokens": ctx.prompt_tokens,
        "completion_tokens": ctx.completion_tokens,
        "total_tokens": ctx.prompt_tokens + ctx.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": ctx.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _openai_chat(ctx: _Ctx) -> _Reply:
    model = str(ctx.body.get("model", "gpt-4o-mini"))
    cid = _new_id("chatcmpl-fake")
    created = int(time.time())
    tool = ctx.tool_to_call()
    if tool is not None:
        return _openai_tool_calls(ctx, tool, model, cid, created)
    if not ctx.stream:
        message = {"role": "assistant", "content": ctx.text, "refusal": None, "annotations": []}
        if ctx.steering.thinking:
            message["reasoning_content"] = "let me think"
        return _JsonReply(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _openai_usage(ctx),
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
        )
    stream_options = ctx.body.get("stream_options") or {}
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:  # the real API sends an explicit null usage on every chunk but the last
            obj["usage"] = None
        return obj

    frames = [_sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))]
    if ctx.steering.thinking:
        frames.append(_sse(chunk({"reasoning_content": "let me think"}, None)))
    frames += [_sse(chunk({"content": word}, None)) for word in ctx.words]
    frames.append(_sse(chunk({}, "stop")))
    if include_usage:
        usage_chunk = chunk({}, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = _openai_usage(ctx)
        frames.append(_sse(usage_chunk))
    frames.append(_sse("[DONE]"))
    return _StreamReply(frames, "text/event-stream; charset=utf-8")


def _openai_tool_calls(ctx: _Ctx, tool: str, model: str, cid: str, created: int) -> _Reply:
    calls = [(f"call_fake{i}", tool) for i in range(ctx.steering.tool_calls)]
    usage = _openai_usage(ctx)
    if not ctx.stream:
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ctx.steering.tool_arguments},
                }
                for call_id, name in calls
            ],
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
        return _JsonReply(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
        )

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}
        return _sse(obj)

    frames = [chunk({"role": "assistant", "content": None}, None)]
    for index, (call_id, name) in enumerate(calls):
        start = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        frames.append(chunk({"tool_calls": [start]}, None))
        frames += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
            for piece in ctx.argument_pieces()
        ]
    frames.append(chunk({}, "tool_calls"))
    stream_options = ctx.body.get("stream_options") or {}
    if isinstance(stream_options, dict) and stream_options.get("include_usage"):
        usage_chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        frames.append(_sse({**usage_chunk, "choices": [], "usage": usage}))
    frames.append(_sse("[DONE]"))
    return _StreamReply(frames, "text/event-stream; charset=utf-8")


def _openai_embeddings(ctx: _Ctx) -> _Reply:
    raw_input = ctx.body.get("input", "")
    inputs: list[Any] = raw_input if isinstance(raw_input, list) else [raw_input]
    if inputs and all(isinstance(x, int) for x in inputs):  # a single pre-tokenized input
        inputs = [inputs]
    dims = int(ctx.body.get("dimensions") or 8)
    as_base64 = ctx.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _fake_vector(json.dumps(item), dims)
        embedding: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return _JsonReply(
        {
            "object": "list",
            "data": data,
            "model": str(ctx.body.get("model", "text-embedding-3-small")),
            "usage": {"prompt_tokens": ctx.prompt_tokens, "total_tokens": ctx.prompt_tokens},
        }
    )


def _openai_responses(ctx: _Ctx) -> _Reply:
    model = str(ctx.body.get("model", "gpt-4o-mini"))
    rid, mid = _new_id("resp_fake"), _new_id("msg_fake")
    created = int(time.time())
    usage = {
        "input_tokens": ctx.prompt_tokens,
        "input_tokens_details": {"cached_tokens": ctx.cached_tokens},
        "output_tokens": ctx.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": ctx.prompt_tokens + ctx.completion_tokens,
    }
    part = {"type": "output_text", "text": ctx.text, "annotations": [], "logprobs": []}
    item = {"type": "message", "id": mid, "status": "completed", "role": "assistant", "content": [part]}

    def response(status: str, output: list[Any], with_usage: bool) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": ctx.body.get("instructions"),
            "max_output_tokens": ctx.body.get("max_output_tokens"),
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage if with_usage else None,
            "user": None,
            "metadata": {},
        }

    if not ctx.stream:
        return _JsonReply(response("completed", [item], True))
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("in_progress", [], False)},
        {"type": "response.in_progress", "response": response("in_progress", [], False)},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": mid,
            "output_index": 0,
            "content_index": 0,
            "part": {**part, "text": ""},
        },
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": mid,
            "output_index": 0,
            "content_index": 0,
            "delta": word,
            "logprobs": [],
        }
        for word in ctx.words
    ]
    events += [
        {
            "type": "response.output_text.done",
            "item_id": mid,
            "output_index": 0,
            "content_index": 0,
            "text": ctx.text,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": mid,
            "output_index": 0,
            "content_index": 0,
            "part": part,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response("completed", [item], True)},
    ]
    frames = [_sse({**ev, "sequence_number": seq}, event=ev["type"]) for seq, ev in enumerate(events)]
    return _StreamReply(frames, "text/event-stream; charset=utf-8")


def _openai_models(ctx: _Ctx, models: list[str]) -> _Reply:
    return _JsonReply(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in models],
        }
    )


def _anthropic_usage(ctx: _Ctx, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": ctx.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": ctx.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_messages(ctx: _Ctx) -> _Reply:
    model = str(ctx.body.get("model", "claude-fake-1"))
    mid = _new_id("msg_fake")
    headers = [("request-id", _new_id("req_fake"))]
    tool = ctx.tool_to_call()
    if tool is not None or ctx.steering.thinking:
        return _anthropic_blocks(ctx, tool, model, mid, headers)
    if not ctx.stream:
        return _JsonReply(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": ctx.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": _anthropic_usage(ctx, ctx.completion_tokens),
            },
            headers=headers,
        )
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _anthropic_usage(ctx, 1),
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}} for word in ctx.words
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": ctx.completion_tokens},
        },
        {"type": "message_stop"},
    ]
    frames = [_sse(ev, event=ev["type"]) for ev in events]
    return _StreamReply(frames, "text/event-stream; charset=utf-8", headers=headers)


def _anthropic_blocks(ctx: _Ctx, tool: str | None, model: str, mid: str, headers: list[tuple[str, str]]) -> _Reply:
    """An answer with thinking and/or tool_use blocks (the plain text answer is above)."""
    blocks: list[dict[str, Any]] = []
    if ctx.steering.thinking:
        blocks.append({"type": "thinking", "thinking": "let me think", "signature": "c2lnLWFudGhyb3BpYw=="})
    if tool is None:
        blocks.append({"type": "text", "text": ctx.text})
    else:
        arguments = json.loads(ctx.steering.tool_arguments)
        blocks += [
            {"type": "tool_use", "id": f"toolu_fake{i}", "name": tool, "input": arguments}
            for i in range(ctx.steering.tool_calls)
        ]
    stop = "end_turn" if tool is None else "tool_use"
    if not ctx.stream:
        return _JsonReply(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": _anthropic_usage(ctx, ctx.completion_tokens),
            },
            headers=headers,
        )
    message = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": []}
    message |= {"stop_reason": None, "stop_sequence": None, "usage": _anthropic_usage(ctx, 1)}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    for index, block in enumerate(blocks):
        kind = block["type"]
        if kind == "thinking":
            start: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        elif kind == "text":
            start, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": w} for w in ctx.words]
        else:
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in ctx.argument_pieces()]
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": ctx.completion_tokens},
        },
        {"type": "message_stop"},
    ]
    frames = [_sse(ev, event=ev["type"]) for ev in events]
    return _StreamReply(frames, "text/event-stream; charset=utf-8", headers=headers)


def _anthropic_count_tokens(ctx: _Ctx) -> _Reply:
    return _JsonReply({"input_tokens": ctx.prompt_tokens})


def _gemini_usage(ctx: _Ctx) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": ctx.prompt_tokens,
        "candidatesTokenCount": ctx.completion_tokens,
        "totalTokenCount": ctx.prompt_tokens + ctx.completion_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ctx.prompt_tokens}],
    }
    if ctx.cached_tokens:
        usage["cachedContentTokenCount"] = ctx.cached_tokens
    return usage


def _gemini_generate(ctx: _Ctx) -> _Reply:
    assert ctx.match is not None
    model, method = ctx.match.group("model"), ctx.match.group("method")
    response_id = _new_id("fake")

    def candidate(text: str, final: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
            "modelVersion": model,
            "responseId": response_id,
        }
        if final:
            obj["candidates"][0]["finishReason"] = "STOP"
            obj["usageMetadata"] = _gemini_usage(ctx)
        return obj

    tool = ctx.tool_to_call()
    thought = [{"text": "let me think", "thought": True}] if ctx.steering.thinking else []
    calls: list[dict[str, Any]] = []
    if tool is not None:
        for i in range(ctx.steering.tool_calls):
            call: dict[str, Any] = {"functionCall": {"name": tool, "args": json.loads(ctx.steering.tool_arguments)}}
            if ctx.steering.thinking and i == 0:  # Gemini signs the first call of a turn
                call["thoughtSignature"] = "c2lnLWdlbWluaQ=="
            calls.append(call)

    def with_parts(obj: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        obj["candidates"][0]["content"]["parts"] = parts
        return obj

    if method == "generateContent":
        if tool is not None:
            return _JsonReply(with_parts(candidate("", True), thought + calls))
        return _JsonReply(with_parts(candidate(ctx.text, True), thought + [{"text": ctx.text}]))
    words = ctx.words or [""]
    objs = [candidate(word, i == len(words) - 1) for i, word in enumerate(words)]
    if tool is not None:
        objs = [with_parts(candidate("", False), thought)] if thought else []
        objs.append(with_parts(candidate("", True), calls))
    elif thought:
        objs.insert(0, with_parts(candidate("", False), thought))
    if "sse" in ctx.rec.query.get("alt", []):
        # Real Gemini separates SSE events with CRLF CRLF; gateways must cope with that.
        return _StreamReply([_sse(o, sep="\r\n") for o in objs], "text/event-stream")
    # Without alt=sse Gemini streams one JSON array, element by element.
    frames = [(b"[" if i == 0 else b",\r\n") + _dumps(o) for i, o in enumerate(objs)] + [b"]"]
    return _StreamReply(frames, "application/json; charset=UTF-8")


def _gemini_count_tokens(ctx: _Ctx) -> _Reply:
    return _JsonReply({"totalTokens": ctx.prompt_tokens})


def _gemini_embed(ctx: _Ctx) -> _Reply:
    dims = int(ctx.body.get("outputDimensionality") or 8)
    return _JsonReply({"embedding": {"values": _fake_vector(json.dumps(ctx.body.get("content")), dims)}})


def _workers_ai_run(ctx: _Ctx) -> _Reply:
    usage = {
        "prompt_tokens": ctx.prompt_tokens,
        "completion_tokens": ctx.completion_tokens,
        "total_tokens": ctx.prompt_tokens + ctx.completion_tokens,
    }
    if not ctx.stream:
        return _JsonReply(
            {"result": {"response": ctx.text, "usage": usage}, "success": True, "errors": [], "messages": []}
        )
    frames = [_sse({"response": word}) for word in ctx.words]
    frames.append(_sse({"response": "", "usage": usage}))
    frames.append(_sse("[DONE]"))
    return _StreamReply(frames, "text/event-stream")


def _ollama(ctx: _Ctx, kind: Literal["chat", "generate"]) -> _Reply:
    model = str(ctx.body.get("model", "llama3.2"))
    stream = ctx.body.get("stream", True) is not False  # Ollama streams unless told otherwise

    def piece(text: str, done: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": model, "created_at": datetime.now(UTC).isoformat()}
        if kind == "chat":
            obj["message"] = {"role": "assistant", "content": text}
        else:
            obj["response"] = text
        obj["done"] = done
        if done:
            obj.update(
                done_reason="stop",
                total_duration=123_456_789,
                load_duration=1_234_567,
                prompt_eval_count=ctx.prompt_tokens,
                prompt_eval_duration=2_345_678,
                eval_count=ctx.completion_tokens,
                eval_duration=98_765_432,
            )
        return obj

    if not stream:
        return _JsonReply(piece(ctx.text, True))
    frames = [_dumps(piece(word, False)) + b"\n" for word in ctx.words]
    frames.append(_dumps(piece("", True)) + b"\n")
    return _StreamReply(frames, "application/x-ndjson")


def _ollama_tags(ctx: _Ctx, models: list[str]) -> _Reply:
    return _JsonReply(
        {
            "models": [
                {
                    "name": m,
                    "model": m,
                    "modified_at": "2025-01-01T00:00:00Z",
                    "size": 1_000_000,
                    "digest": uuid.uuid5(uuid.NAMESPACE_DNS, m).hex,
                    "details": {"format": "gguf", "family": "llama", "parameter_size": "1B"},
                }
                for m in models
            ]
        }
    )


_GEMINI_RE = re.compile(
    r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|countTokens|embedContent)$"
)
_WORKERS_AI_RE = re.compile(r"^/client/v4/accounts/(?P<account>[^/]+)/ai/run/(?P<model>.+)$")


def provider_for_path(path: str) -> Provider:
    """Which provider's error format a path gets (also for unknown paths)."""
    if _WORKERS_AI_RE.match(path):
        return "workers_ai"
    if path.startswith("/api/"):
        return "ollama"
    if _GEMINI_RE.search(path) or path.startswith("/v1beta/models"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "openai"


class FakeUpstream:
    """The fake provider ASGI app. See the module docstring for routes and the steering API."""

    # Steering attributes (defaults mirror Steering; restored by reset()).
    status: int | None
    delay_s: float
    chunk_delay_s: float
    linger_s: float
    break_after: int | None
    hang: bool
    gzip: bool
    chunks: int
    prompt_tokens: int
    cached_tokens: int
    retry_after: str | None
    error_message: str | None
    response: RawResponse | None

    def __init__(self, models: list[str] | None = None) -> None:
        self.models: list[str] = list(models or DEFAULT_MODELS)
        self.requests: list[RecordedRequest] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._release_generation = 0
        self.realtime = FakeRealtime()  # the providers' realtime WebSockets
        self._apply_defaults()

    # ---------------------------------------------------------------- steering API

    def _apply_defaults(self) -> None:
        defaults = Steering()
        for name in STEERING_FIELDS:
            setattr(self, name, getattr(defaults, name))

    def reset(self) -> None:
        """Forget requests, rules and attribute steering; release anything hanging."""
        with self._lock:
            self._rules.clear()
            self.requests.clear()
            self._apply_defaults()
        self.realtime.reset()
        self.release()

    def release(self) -> None:
        """Let every request that is hanging right now continue (they then answer normally)."""
        self._release_generation += 1

    def steer(
        self, *, times: int | None = 1, path: str | None = None, model: str | None = None, **overrides: Any
    ) -> None:
        """Apply ``overrides`` (Steering field names) to the next ``times`` matching requests (None = all)."""
        unknown = set(overrides) - STEERING_FIELDS
        if unknown:
            raise TypeError(f"unknown steering fields: {sorted(unknown)}; known: {sorted(STEERING_FIELDS)}")
        with self._lock:
            self._rules.append(_Rule(overrides=overrides, times=times, path=path, model=model))

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        path: str | None = None,
        model: str | None = None,
        **overrides: Any,
    ) -> None:
        """Answer the next ``times`` matching requests (None = all) with ``status``, provider-format body."""
        self.steer(times=times, path=path, model=model, status=status, **overrides)

    def defaults(self) -> Steering:
        """The attribute-level steering currently in force."""
        return Steering(**{name: getattr(self, name) for name in STEERING_FIELDS})

    # ---------------------------------------------------------------- inspection helpers

    @property
    def last(self) -> RecordedRequest:
        """The most recent request (AssertionError if none arrived)."""
        assert self.requests, "the fake upstream received no requests"
        return self.requests[-1]

    def wait_for_requests(self, n: int = 1, timeout_s: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were recorded (requests arrive on the server's thread)."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")
            time.sleep(0.005)
        return list(self.requests)

    async def await_requests(self, n: int = 1, timeout_s: float = 5.0) -> list[RecordedRequest]:
        """Async twin of :meth:`wait_for_requests` that does not block the calling event loop."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")
            await asyncio.sleep(0.005)
        return list(self.requests)

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self.realtime(scope, receive, send)  # tests/fakes/realtime.py
        else:
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        headers: dict[str, str] = {}
        for key, value in raw_headers:
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any | None = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        path: str = scope["path"]
        rec = RecordedRequest(
            method=scope["method"],
            path=path,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            json=parsed,
            received_at=time.monotonic(),
            model=self._model_of(path, parsed),
            raw_headers=raw_headers,
        )
        provider = provider_for_path(path)
        # Read before the request becomes visible in self.requests: a release() issued by a test that
        # has seen this request must free it, even if the server thread is preempted right here.
        hang_generation = self._release_generation
        try:
            steering = self._steering_for(rec)
        except SteeringHeaderError as exc:
            self.requests.append(rec)
            await self._send_plain(send, 400, error_body(provider, 400, str(exc)), [], rec)
            return
        rec.steering = steering
        self.requests.append(rec)

        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    if not rec.completed:
                        rec.disconnected = True
                    disconnected.set()
                    return

        watcher = asyncio.create_task(watch_disconnect())
        try:
            await self._respond(rec, steering, provider, send, disconnected, hang_generation)
        finally:
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                pass

    @staticmethod
    def _model_of(path: str, parsed: Any) -> str | None:
        if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            return str(parsed["model"])
        for regex in (_GEMINI_RE, _WORKERS_AI_RE):
            match = regex.search(path)
            if match:
                return match.group("model")
        return None

    def _steering_for(self, rec: RecordedRequest) -> Steering:
        steering = self.defaults()
        with self._lock:
            for rule in self._rules:
                if rule.matches(rec.path, rec.model):
                    if rule.times is not None:
                        rule.times -= 1
                    steering = replace(steering, **rule.overrides)
                    break
        return replace(steering, **_header_overrides(rec.headers))

    async def _respond(
        self,
        rec: RecordedRequest,
        steering: Steering,
        provider: Provider,
        send: Send,
        disconnected: asyncio.Event,
        hang_generation: int,
    ) -> None:
        if steering.hang:
            while hang_generation == self._release_generation and not disconnected.is_set():
                await _wait(disconnected, 0.01)
        if steering.delay_s > 0 and await _wait(disconnected, steering.delay_s):
            return
        if disconnected.is_set():
            return
        if steering.response is not None:
            raw = steering.response
            extra = [(k, v) for k, v in raw.headers]
            await self._send_bytes(send, raw.status, raw.body, raw.content_type, extra, steering, rec)
            return
        if steering.status is not None and steering.status >= 400:
            message = steering.error_message or _default_error_message(steering.status)
            extra = []
            if steering.status in _RETRY_AFTER_STATUSES and steering.retry_after is not None:
                extra.append(("retry-after", steering.retry_after))
            body = error_body(provider, steering.status, message)
            await self._send_plain(send, steering.status, body, extra, rec, steering)
            return
        reply = self._route(rec, steering, provider)
        if isinstance(reply, _JsonReply):
            await self._send_plain(send, reply.status, reply.obj, reply.headers, rec, steering)
        else:
            await self._send_stream(send, reply, steering, rec, disconnected)

    def _route(self, rec: RecordedRequest, steering: Steering, provider: Provider) -> _Reply:
        path, method = rec.path, rec.method
        body = rec.json if isinstance(rec.json, dict) else {}

        def ctx(match: re.Match[str] | None = None) -> _Ctx:
            return _Ctx(rec=rec, steering=steering, provider=provider, body=body, match=match)

        def needs_json() -> _Reply | None:
            if isinstance(rec.json, dict):
                return None
            message = "fake upstream: request body must be a JSON object"
            return _JsonReply(error_body(provider, 400, message), 400)

        not_found = _JsonReply({"error": {"message": "not found", "type": "invalid_request_error"}}, 404)
        from tests.fakes import extra  # more providers' formats; imported late: it imports this module

        found = extra.route(method, path)
        if found is not None:
            extra_handler, json_only = found
            return (json_only and needs_json()) or extra_handler(ctx())
        if method == "GET":
            if path == "/api/tags":
                return _ollama_tags(ctx(), self.models)
            if path.endswith("/models") and provider == "openai":
                return _openai_models(ctx(), self.models)
            return not_found
        if method != "POST":
            return not_found
        handler: Callable[[_Ctx], _Reply] | None = None
        match: re.Match[str] | None = None
        if provider == "workers_ai":
            match = _WORKERS_AI_RE.match(path)
            handler = _workers_ai_run
        elif path == "/api/chat":
            handler = lambda c: _ollama(c, "chat")  # noqa: E731
        elif path == "/api/generate":
            handler = lambda c: _ollama(c, "generate")  # noqa: E731
        elif (match := _GEMINI_RE.search(path)) is not None:
            handler = {
                "generateContent": _gemini_generate,
                "streamGenerateContent": _gemini_generate,
                "countTokens": _gemini_count_tokens,
                "embedContent": _gemini_embed,
            }[match.group("method")]
        elif path == "/v1/messages":
            handler = _anthropic_messages
        elif path == "/v1/messages/count_tokens":
            handler = _anthropic_count_tokens
        elif path.endswith("/chat/completions"):
            handler = _openai_chat
        elif path.endswith("/embeddings"):
            handler = _openai_embeddings
        elif path.endswith("/responses"):
            handler = _openai_responses
        if handler is None:
            return not_found
        return needs_json() or handler(ctx(match))

    # ---------------------------------------------------------------- sending

    async def _send_plain(
        self,
        send: Send,
        status: int,
        obj: Any,
        extra: list[tuple[str, str]],
        rec: RecordedRequest,
        steering: Steering | None = None,
    ) -> None:
        steering = steering or Steering()
        await self._send_bytes(send, status, _dumps(obj), "application/json", extra, steering, rec)

    async def _send_bytes(
        self,
        send: Send,
        status: int,
        body: bytes,
        content_type: str,
        extra: list[tuple[str, str]],
        steering: Steering,
        rec: RecordedRequest,
    ) -> None:
        headers = [("content-type", content_type), ("x-request-id", _new_id("req_fake"))] + extra
        if steering.gzip:
            body = gzip_module.compress(body)
            headers.append(("content-encoding", "gzip"))
        headers.append(("content-length", str(len(body))))
        await send({"type": "http.response.start", "status": status, "headers": _encode_headers(headers)})
        if steering.break_after is not None:
            # Promise the full length, deliver half, then return: the server closes the connection.
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            return
        await send({"type": "http.response.body", "body": body, "more_body": False})
        rec.completed = True

    async def _send_stream(
        self,
        send: Send,
        reply: _StreamReply,
        steering: Steering,
        rec: RecordedRequest,
        disconnected: asyncio.Event,
    ) -> None:
        headers = [
            ("content-type", reply.content_type),
            ("cache-control", "no-cache"),
            ("x-request-id", _new_id("req_fake")),
        ] + reply.headers
        compressor = None
        if steering.gzip:
            compressor = zlib.compressobj(wbits=31)  # 31 = gzip container
            headers.append(("content-encoding", "gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": _encode_headers(headers)})
        frames = reply.frames
        if steering.break_after is not None:
            frames = frames[: max(0, min(steering.break_after, len(frames) - 1))]
        for index, frame in enumerate(frames):
            if index and steering.chunk_delay_s > 0 and await _wait(disconnected, steering.chunk_delay_s):
                return
            if disconnected.is_set():
                return
            if compressor is not None:
                # A sync flush per frame keeps the stream incremental even though it is compressed.
                frame = compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if steering.break_after is not None:
            return  # returning without more_body=False makes the server drop the connection
        if steering.linger_s > 0 and await _wait(disconnected, steering.linger_s):
            return  # the client hung up after the last frame, before the stream's end
        tail = compressor.flush(zlib.Z_FINISH) if compressor is not None else b""
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        rec.completed = True


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``event`` (client disconnect) fired meanwhile."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


_HEADER_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "x-fake-status": ("status", int),
    "x-fake-delay": ("delay_s", float),
    "x-fake-chunk-delay": ("chunk_delay_s", float),
    "x-fake-linger": ("linger_s", float),
    "x-fake-break-after": ("break_after", int),
    "x-fake-gzip": ("gzip", _truthy),
    "x-fake-chunks": ("chunks", int),
    "x-fake-hang": ("hang", _truthy),
    "x-fake-retry-after": ("retry_after", lambda v: None if v.lower() in {"", "none"} else v),
    "x-fake-prompt-tokens": ("prompt_tokens", int),
    "x-fake-cached-tokens": ("cached_tokens", int),
    "x-fake-tool-calls": ("tool_calls", int),
    "x-fake-thinking": ("thinking", _truthy),
}


def _header_overrides(headers: dict[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for header, (name, parse) in _HEADER_PARSERS.items():
        if header in headers:
            try:
                overrides[name] = parse(headers[header].strip())
            except ValueError as exc:
                raise SteeringHeaderError(f"fake upstream: bad {header} header: {headers[header]!r}") from exc
    return overrides


@dataclass
class RunningFake:
    """A fake upstream reachable over HTTP: ``url`` (no trailing slash), ``app`` to inspect and steer."""

    url: str
    app: FakeUpstream
    server: ServerThread

    @property
    def port(self) -> int:
        return self.server.port


def make_app(models: list[str] | None = None) -> FakeUpstream:
    """A fresh fake upstream app (convenience for ``serve(make_app())``)."""
    return FakeUpstream(models)
