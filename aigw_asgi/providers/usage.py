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
    ollama      native API, NDJSON streams

`StreamTracker` sits on the streaming hot path: it forwards each chunk as the very object it was
given and parses JSON only for the few events that can carry what it still needs, picked by cheap
byte tests (a JSON key in quotes cannot occur unescaped inside a string value, so such a test has no
false positives from generated text). Usage that providers repeat cumulatively (OpenAI-style
``continuous_usage`` chunks, Perplexity, Gemini) is kept as the last chunk's bytes and parsed once,
when ``usage`` is read or the stream finishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import _json
from ..context import Usage
from .sse import NDJSONParser, SSEEvent, SSEParser

FORMATS = frozenset({"openai", "anthropic", "gemini", "workers-ai", "cohere", "ollama"})
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


_EXTRACT: dict[str, Callable[[dict[str, Any]], Extracted]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "workers-ai": _workers_ai,
    "cohere": _cohere,
    "ollama": _ollama,
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


# -- streams -----------------------------------------------------------------------------------------


class StreamTracker:
    """Reads usage, model, completion and errors out of a stream while it is forwarded.

    Feed it every upstream chunk and forward what `feed` returns; call `finish` when the upstream
    ends. A stream is whole (worth caching) when ``completed`` is true and ``error`` is None:
    ``completed`` only says the format's terminal event arrived, which a failure can also send
    (OpenAI ``response.failed``, Cohere ``message-end`` with an error).

    ``strip_usage_chunk``: the gateway asked for ``stream_options.include_usage`` on the client's
    behalf, so the usage-only chunk (``choices`` empty) it adds must not reach a client that did
    not ask for it. Only then are bytes held back until their event is complete.
    """

    __slots__ = (
        "fmt",
        "completed",
        "error",
        "events",
        "_usage",
        "_model",
        "_strip",
        "_ndjson",
        "_sse",
        "_lines",
        "_deferred",
        "_anthropic_raw",
        "_on_event",
        "_on_line",
        "_finished",
        "_open_at_finish",
    )

    def __init__(self, fmt: str, *, strip_usage_chunk: bool = False, ndjson: bool | None = None) -> None:
        self.fmt = fmt if fmt in FORMATS else "openai"
        # ``ndjson=None``: the format's own framing (Ollama streams NDJSON, everyone else SSE).
        self._ndjson = self.fmt == "ollama" if ndjson is None else ndjson
        self._strip = strip_usage_chunk and self.fmt in _STRIPPABLE and not self._ndjson
        self._sse = SSEParser()
        self._lines = NDJSONParser()
        self.completed = False
        self.error: str | None = None
        self.events = 0
        self._usage = Usage()
        self._model: str | None = None
        self._deferred: bytes | None = None  # the last cumulative usage report, not parsed yet
        self._anthropic_raw: dict[str, Any] = {}  # Anthropic's usage fields, merged across events
        self._finished = False
        self._open_at_finish = False  # finish() found an unterminated event or line
        self._on_event: Callable[[SSEEvent], bool] = {
            "anthropic": self._anthropic_event,
            "gemini": self._gemini_event,
            "cohere": self._cohere_event,
            "ollama": self._ndjson_event,
        }.get(self.fmt, self._openai_event)
        self._on_line: Callable[[bytes], None] = (
            self._cohere_line if self.fmt == "cohere" else self._ollama_line
        )

    @property
    def usage(self) -> Usage:
        if self._deferred is not None:
            self._resolve()
        return self._usage

    @property
    def model(self) -> str | None:
        if self._model is None and self._deferred is not None:
            self._resolve()
        return self._model

    # -- forwarding --------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Track ``chunk``; return the bytes to forward now (``chunk`` itself unless stripping)."""
        if self._ndjson:
            for line in self._lines.feed(chunk):
                self._on_line(line)
            return chunk
        if not self._strip:
            for event in self._sse.feed(chunk):
                self._on_event(event)
            return chunk
        held = bool(self._sse._buf)
        out: list[bytes] = []
        dropped = False
        for event in self._sse.feed(chunk):
            if self._on_event(event):
                dropped = True
            else:
                out.append(event.raw)
        if not dropped and not held and not self._sse._buf:
            return chunk
        return b"".join(out)

    def finish(self) -> bytes:
        """Track the end of the stream; return the bytes still to forward (held back or partial)."""
        if self._finished:
            return b""
        self._finished = True
        out = b""
        if self._ndjson:
            self._open_at_finish = bool(self._lines._buf)
            for line in self._lines.flush():
                self._on_line(line)
        else:
            self._open_at_finish = bool(self._sse._buf)
            kept = [event.raw for event in self._sse.flush() if not self._on_event(event)]
            if self._strip:
                out = b"".join(kept)
        if self._deferred is not None:
            self._resolve()
        return out

    def error_event(self, message: str, *, code: int = 2005) -> bytes:
        """`error_event` for this stream, after whatever ends the partial event the client holds.

        Without that, an upstream cut mid-event would glue the error onto the cut line. Works
        before or after `finish` (which forwards a held partial event when stripping).
        """
        if self._finished:
            open_ = self._open_at_finish
        else:  # when stripping, partial events are held back: the client is between events
            open_ = bool(self._lines._buf) if self._ndjson else bool(self._sse._buf) and not self._strip
        if self._ndjson:
            return (b"\n" if open_ else b"") + error_event("ollama", message, code=code)
        fmt = "openai" if self.fmt == "ollama" else self.fmt
        return (b"\n\n" if open_ else b"") + error_event(fmt, message, code=code)

    # -- applying parsed events --------------------------------------------------------------------

    def _resolve(self) -> None:
        data, self._deferred = self._deferred, None
        obj = _loads(data) if data is not None else None
        if isinstance(obj, dict):
            self._apply(obj)

    def _apply(self, obj: dict[str, Any]) -> None:
        """Take model, usage and error from one parsed event (OpenAI-style and Gemini formats)."""
        if self._deferred is not None:
            self._resolve()  # an older report must not overwrite this newer one
        model, usage = _EXTRACT[self.fmt](obj)
        if self._model is None:
            self._model = model
        self._usage.merge(usage)
        message = _error_message(obj.get("error"))
        kind = obj.get("type")
        if message is None and kind == "error":  # Responses API error event
            message = _error_message(obj)
        elif message is None and kind == "response.failed":
            message = _error_message(_dict(obj.get("response")).get("error")) or "response.failed"
        if message is not None:
            self.error = message

    def _parse(self, data: bytes) -> dict[str, Any]:
        obj = _loads(data)
        return obj if isinstance(obj, dict) else {}

    # Each ``_*_event`` returns True when the event must not be forwarded (the injected usage chunk).

    def _openai_event(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return False
        self.events += 1
        if data == b"[DONE]":
            self.completed = True
            return False
        if b'"response.' in data and (
            b'"response.completed"' in data
            or b'"response.incomplete"' in data
            or b'"response.failed"' in data
        ):
            self.completed = True  # the Responses API's terminal events (they carry the usage)
        # Compact JSON first: most chunks say "usage":null, or nothing about usage.
        has_usage = b'"usage":{' in data or (b'"usage":n' not in data and _has_object(data, b'"usage"'))
        if has_usage and self._strip and b'"choices"' in data:
            obj = self._parse(data)
            self._apply(obj)
            return obj.get("choices") == [] and isinstance(obj.get("usage"), dict)
        if event.event == "error":
            obj = self._parse(data)
            self._apply(obj)
            self.error = self.error or _error_message(obj) or data.decode("utf-8", "replace")[:500]
        elif b'"error"' in data or (self._model is None and self.events <= _MODEL_TRIES):
            self._apply(self._parse(data))
        elif has_usage:
            self._deferred = data
        return False

    def _gemini_event(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return False
        self.events += 1
        if b'"finishReason"' in data:
            self.completed = True
        if (
            b'"error"' in data
            or event.event == "error"
            or (self._model is None and self.events <= _MODEL_TRIES)
        ):
            self._apply(self._parse(data))
        elif b'"usageMetadata"' in data:
            self._deferred = data
        return False

    def _anthropic_event(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return False
        self.events += 1
        name = event.event
        obj: dict[str, Any] | None = None
        if name is None:  # the event line is the norm; the data's "type" says the same
            obj = self._parse(data)
            name = obj.get("type") if isinstance(obj.get("type"), str) else None
        if name == "message_stop":
            self.completed = True
        elif name in ("message_start", "message_delta"):
            obj = obj if obj is not None else self._parse(data)
            message = _dict(obj.get("message"))
            if self._model is None:
                self._model = _str(message.get("model"))
            usage = obj.get("usage") if name == "message_delta" else message.get("usage")
            if isinstance(usage, dict):
                # message_delta counts are cumulative and may repeat only some fields.
                self._anthropic_raw.update((k, v) for k, v in usage.items() if v is not None)
                self._usage.merge(_anthropic_usage(self._anthropic_raw))
        elif name == "error":
            obj = obj if obj is not None else self._parse(data)
            self.error = _error_message(obj.get("error")) or _error_message(obj) or "error"
        return False

    def _cohere_event(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return False
        self.events += 1
        name = event.event
        if name is None and (b'"message-end"' in data or b'"error"' in data):
            name = _str(self._parse(data).get("type"))
        if name == "message-end":
            obj = self._parse(data)
            self.completed = True
            self._usage.merge(_cohere(obj)[1])
            delta = _dict(obj.get("delta"))
            message = _error_message(delta.get("error"))
            if message is None and delta.get("finish_reason") == "ERROR":
                message = "finish_reason ERROR"
            if message is not None:
                self.error = message
        elif name == "error":
            obj = self._parse(data)
            self.error = _error_message(obj.get("error")) or _error_message(obj) or "error"
        return False

    def _ndjson_event(self, event: SSEEvent) -> bool:
        if event.data:
            self._on_line(event.data)
        return False

    def _ollama_line(self, line: bytes) -> None:
        self.events += 1
        # Every token line says "done":false; only the last one (counts) and errors are needed.
        wanted = (
            b'"error"' in line
            or (b'"done"' in line and b'"done":false' not in line)
            or (self._model is None and self.events <= _MODEL_TRIES)
        )
        if not wanted:
            return
        obj = self._parse(line)
        model, usage = _ollama(obj)
        if self._model is None:
            self._model = model
        if obj.get("done") is True:
            self.completed = True
            self._usage.merge(usage)
        message = _error_message(obj.get("error"))
        if message is not None:
            self.error = message

    def _cohere_line(self, line: bytes) -> None:
        self.events += 1
        if b'"stream-end"' not in line and b'"error"' not in line:
            return
        obj = self._parse(line)
        if obj.get("event_type") == "stream-end":
            self.completed = True
            self._usage.merge(_cohere(obj)[1])
            reason = obj.get("finish_reason")
            if isinstance(reason, str) and reason.startswith("ERROR"):
                self.error = f"finish_reason {reason}"
        message = _error_message(obj.get("error"))
        if message is not None:
            self.error = message


# -- errors the gateway appends when the upstream breaks mid-stream --------------------------------


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_event(fmt: str, message: str, *, code: int = 2005) -> bytes:
    """An error event in the stream's own format, for an upstream that broke after the first byte.

    SPEC §4: never a silent 200. Each shape is what that provider's SDK turns into an exception:
    OpenAI's reads ``{"error":…}`` in any data event, Anthropic's an ``error`` event, Ollama's an
    ``{"error":…}`` line. ``code`` is the gateway's error code (2005 unreachable, 2006 timeout).
    """
    if fmt == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + _dumps(body) + b"\n\n"
    if fmt == "gemini":
        body = {"error": {"code": code, "message": message, "status": "UNAVAILABLE"}}
        return b"data: " + _dumps(body) + b"\r\n\r\n"  # Gemini frames its events with CRLF
    if fmt == "cohere":
        body = {"type": "error", "error": {"code": code, "message": message}}
        return b"event: error\ndata: " + _dumps(body) + b"\n\n"
    if fmt == "ollama":
        return _dumps({"error": message}) + b"\n"
    body = {"error": {"message": message, "type": "gateway_error", "param": None, "code": code}}
    return b"data: " + _dumps(body) + b"\n\n"
