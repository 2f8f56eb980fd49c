"""Usage, model, completion and errors read from a stream while it is forwarded, sans-IO.

`StreamTracker` sits on the streaming hot path: it forwards each chunk as the very object it was
given and parses JSON only for the few events that can carry what it still needs, picked by cheap
byte tests (a JSON key in quotes cannot occur unescaped inside a string value, so such a test has no
false positives from generated text). Usage that providers repeat cumulatively (OpenAI-style
``continuous_usage`` chunks, Perplexity, Gemini) is kept as the last chunk's bytes and parsed once,
when ``usage`` is read or the stream finishes. The per-format readers live in `usage`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import Usage
from . import usage as _u
from .chat_runs import (
    CHAT_CHUNK_START as _CHAT_CHUNK_START,
    NULL_USAGE_END as _NULL_USAGE_END,
    RUN_MIN_BYTES,
    plain_run,
)
from .sse import NDJSONParser, SSEEvent, SSEParser
from .stream_errors import error_event

_LF = 0x0A
_SPACE = 0x20
# A Chat Completions chunk that says no usage (what include_usage makes every chunk but the last)
# is recognised by its two ends, `_CHAT_CHUNK_START` and `_NULL_USAGE_END` (chat_runs.py).

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
        "_whole_events",
    )

    def __init__(self, fmt: str, *, strip_usage_chunk: bool = False, ndjson: bool | None = None) -> None:
        self.fmt = fmt if fmt in _u.FORMATS else "openai"
        # ``ndjson=None``: the format's own framing (Ollama streams NDJSON, everyone else SSE).
        self._ndjson = self.fmt == "ollama" if ndjson is None else ndjson
        self._strip = strip_usage_chunk and self.fmt in _u._STRIPPABLE and not self._ndjson
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
        self._on_line: Callable[[bytes], None] = self._cohere_line if self.fmt == "cohere" else self._ollama_line
        # OpenAI-style SSE (most providers): whole events are cut and checked in `_feed_events`.
        self._whole_events = not self._ndjson and self._on_event == self._openai_event

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
        sse = self._sse
        if self._whole_events and not sse._buf and not sse._cr and b"\r" not in chunk:
            return self._feed_events(chunk)
        if not self._strip:
            for event in sse.feed(chunk):
                self._on_event(event)
            return chunk
        held = bool(sse._buf)
        out: list[bytes] = []
        dropped = False
        for event in sse.feed(chunk):
            if self._on_event(event):
                dropped = True
            else:
                out.append(event.raw)
        if not dropped and not held and not self._sse._buf:
            return chunk
        return b"".join(out)

    def _feed_events(self, chunk: bytes) -> bytes:
        """`feed` for OpenAI-style SSE between events (nothing held, ``\\n`` line ends only).

        Cuts the chunk's whole events itself, without an `SSEEvent` each: a Chat Completions
        chunk closed by ``"usage":null}`` with no ``"error"`` is skipped once the model is known
        (what `_openai_event` would do with it, minus the object and two calls: about half of a
        20-event stream's tracking); a read of many such chunks skips them as one run
        (`chat_runs.plain_run`). Any other event goes through `_openai_event`; a trailing partial
        event goes to the parser, as in the general path.
        """
        find = chunk.find
        n = len(chunk)
        pos = 0
        kept: list[bytes] | None = None  # set once an event is dropped (the injected usage chunk)
        keep_from = 0
        runs = n >= RUN_MIN_BYTES  # a read of many events: try skipping them as a run, once
        while True:
            if runs and (self._model is not None or self.events >= _u._MODEL_TRIES) and self._sse._started:
                runs = False
                pos, skipped = plain_run(chunk, pos)
                self.events += skipped
            # A one-line event ends at its first "\n" (memchr-fast); others at the blank line.
            end = find(b"\n", pos)
            if end < 0 or end + 1 == n:
                break
            if chunk[end + 1] == _LF:
                stop = end + 2
                simple = self._sse._started and chunk.startswith(b"data:", pos)
            else:
                end = find(b"\n\n", end)
                if end < 0:
                    break
                stop = end + 2
                simple = False
            if simple:
                start = pos + 6 if chunk[pos + 5] == _SPACE else pos + 5
                if (
                    chunk.endswith(_NULL_USAGE_END, start, end)
                    and chunk.startswith(_CHAT_CHUNK_START, start)
                    and (self._model is not None or self.events >= _u._MODEL_TRIES)
                    and find(b'"error"', start, end) < 0
                ):
                    self.events += 1
                    pos = stop
                    continue
                event = SSEEvent(None, chunk[start:end], chunk[pos:stop])
            else:  # the first event (a BOM), comments, several lines, an event: line
                event = self._sse._event(chunk[pos:stop])
            if self._on_event(event) and self._strip:
                if kept is None:
                    kept = []
                kept.append(chunk[keep_from:pos])
                keep_from = stop
            pos = stop
        if pos < n:  # a partial event: the parser keeps it (and holds it back when stripping)
            for event in self._sse.feed(chunk[pos:]):
                self._on_event(event)  # none: no blank line was left in the rest
            if self._strip:
                if kept is None:
                    kept = []
                kept.append(chunk[keep_from:pos])
                return b"".join(kept)
            return chunk
        if kept is None:
            return chunk
        kept.append(chunk[keep_from:])
        return b"".join(kept)

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
        obj = _u._loads(data) if data is not None else None
        if isinstance(obj, dict):
            self._apply(obj)

    def _apply(self, obj: dict[str, Any]) -> None:
        """Take model, usage and error from one parsed event (OpenAI-style and Gemini formats)."""
        if self._deferred is not None:
            self._resolve()  # an older report must not overwrite this newer one
        model, usage = _u._EXTRACT[self.fmt](obj)
        if self._model is None:
            self._model = model
        self._usage.merge(usage)
        message = _u._error_message(obj.get("error"))
        kind = obj.get("type")
        if message is None and kind == "error":  # Responses API error event
            message = _u._error_message(obj)
        elif message is None and kind == "response.failed":
            message = _u._error_message(_u._dict(obj.get("response")).get("error")) or "response.failed"
        if message is not None:
            self.error = message

    def _parse(self, data: bytes) -> dict[str, Any]:
        obj = _u._loads(data)
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
        if event.event is None and data.endswith(_NULL_USAGE_END) and data.startswith(_CHAT_CHUNK_START):
            # A Chat Completions chunk closed by "usage":null -- what include_usage makes every chunk
            # but the last say: no usage and not a Responses API event, so two scans fewer (a third
            # of this method's time on the bench stream). Errors and the model are looked for as below.
            if b'"error"' in data or (self._model is None and self.events <= _u._MODEL_TRIES):
                self._apply(self._parse(data))
            return False
        if b'"response.' in data and (
            b'"response.completed"' in data or b'"response.incomplete"' in data or b'"response.failed"' in data
        ):
            self.completed = True  # the Responses API's terminal events (they carry the usage)
        # Compact JSON first: most chunks say "usage":null, or nothing about usage.
        has_usage = b'"usage":{' in data or (b'"usage":n' not in data and _u._has_object(data, b'"usage"'))
        if has_usage and self._strip and b'"choices"' in data:
            obj = self._parse(data)
            self._apply(obj)
            return obj.get("choices") == [] and isinstance(obj.get("usage"), dict)
        if event.event == "error":
            obj = self._parse(data)
            self._apply(obj)
            self.error = self.error or _u._error_message(obj) or data.decode("utf-8", "replace")[:500]
        elif b'"error"' in data or (self._model is None and self.events <= _u._MODEL_TRIES):
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
        if b'"error"' in data or event.event == "error" or (self._model is None and self.events <= _u._MODEL_TRIES):
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
            message = _u._dict(obj.get("message"))
            if self._model is None:
                self._model = _u._str(message.get("model"))
            usage = obj.get("usage") if name == "message_delta" else message.get("usage")
            if isinstance(usage, dict):
                # message_delta counts are cumulative and may repeat only some fields.
                self._anthropic_raw.update((k, v) for k, v in usage.items() if v is not None)
                self._usage.merge(_u._anthropic_usage(self._anthropic_raw))
        elif name == "error":
            obj = obj if obj is not None else self._parse(data)
            self.error = _u._error_message(obj.get("error")) or _u._error_message(obj) or "error"
        return False

    def _cohere_event(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return False
        self.events += 1
        name = event.event
        if name is None and (b'"message-end"' in data or b'"error"' in data):
            name = _u._str(self._parse(data).get("type"))
        if name == "message-end":
            obj = self._parse(data)
            self.completed = True
            self._usage.merge(_u._cohere(obj)[1])
            delta = _u._dict(obj.get("delta"))
            message = _u._error_message(delta.get("error"))
            if message is None and delta.get("finish_reason") == "ERROR":
                message = "finish_reason ERROR"
            if message is not None:
                self.error = message
        elif name == "error":
            obj = self._parse(data)
            self.error = _u._error_message(obj.get("error")) or _u._error_message(obj) or "error"
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
            or (self._model is None and self.events <= _u._MODEL_TRIES)
        )
        if not wanted:
            return
        obj = self._parse(line)
        model, usage = _u._ollama(obj)
        if self._model is None:
            self._model = model
        if obj.get("done") is True:
            self.completed = True
            self._usage.merge(usage)
        message = _u._error_message(obj.get("error"))
        if message is not None:
            self.error = message

    def _cohere_line(self, line: bytes) -> None:
        self.events += 1
        if b'"stream-end"' not in line and b'"error"' not in line:
            return
        obj = self._parse(line)
        if obj.get("event_type") == "stream-end":
            self.completed = True
            self._usage.merge(_u._cohere(obj)[1])
            reason = obj.get("finish_reason")
            if isinstance(reason, str) and reason.startswith("ERROR"):
                self.error = f"finish_reason {reason}"
        message = _u._error_message(obj.get("error"))
        if message is not None:
            self.error = message
