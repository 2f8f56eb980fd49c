"""Anthropic Messages streams: events -> IR (`AnthropicStreamDecoder`), IR -> events (`AnthropicStreamEncoder`).

Anthropic frames everything in content blocks (``content_block_start`` / ``_delta`` / ``_stop``)
numbered across text, thinking and tool use; OpenAI-style streams number tool calls only. The
decoder maps block indices to tool-call indices, the encoder opens and closes blocks as the kind
of content changes. ``message_delta`` (stop reason and final usage) is written when the upstream
ends, because an OpenAI stream sends its usage chunk after the finish chunk.
"""

from __future__ import annotations

from typing import Any

from .. import _json
from ..providers.sse import SSEEvent
from . import ir
from .anthropic import STOP_TO_ANTHROPIC, usage_json
from .anthropic_target import stop_from_anthropic, usage_from_json


class AnthropicStreamDecoder:
    """An Anthropic stream -> IR events."""

    __slots__ = ("_calls", "_usage", "_finished")

    def __init__(self) -> None:
        self._calls: dict[int, int] = {}  # content block index -> IR tool-call index
        self._usage: dict[str, Any] = {}  # usage fields merged across message_start and message_delta
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, event: SSEEvent) -> list[ir.Event]:
        if not event.data:
            return []
        obj = _json.loads(event.data)
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [ir.TextDelta(str(delta.get("text") or ""))]
            if dtype == "input_json_delta":
                index = self._calls.get(obj.get("index", -1))
                partial = delta.get("partial_json")
                return [ir.ToolCallDelta(index, partial)] if index is not None and partial else []
            if dtype == "thinking_delta":
                return [ir.ReasoningDelta(str(delta.get("thinking") or ""))]
            if dtype == "signature_delta":
                return [ir.ReasoningDelta(signature=str(delta.get("signature") or ""))]
            return []
        if kind == "content_block_start":
            block = obj.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                index = self._calls[obj.get("index", -1)] = len(self._calls)
                return [ir.ToolCallStart(index, str(block.get("id") or ""), str(block.get("name") or ""))]
            if btype == "text" and block.get("text"):
                return [ir.TextDelta(str(block["text"]))]
            if btype == "redacted_thinking":
                return [ir.ReasoningDelta(redacted=str(block.get("data") or ""))]
            return []
        if kind == "message_start":
            message = obj.get("message") or {}
            usage = self._merge(message.get("usage"))
            return [ir.Start(str(message.get("id") or ""), str(message.get("model") or ""), usage)]
        if kind == "message_delta":
            out: list[ir.Event] = []
            usage = self._merge(obj.get("usage"))
            if usage is not None:
                out.append(ir.UsageUpdate(usage))
            delta = obj.get("delta") or {}
            if delta.get("stop_reason") is not None:
                self._finished = True
                sequence = delta.get("stop_sequence")
                reason = stop_from_anthropic(delta.get("stop_reason"))
                out.append(ir.Finish(reason, sequence if isinstance(sequence, str) else None))
            return out
        if kind == "error":
            error = obj.get("error") or {}
            return [
                ir.StreamError(str(error.get("message") or "upstream error"), str(error.get("type") or "api_error"))
            ]
        return []  # ping, content_block_stop, message_stop

    def _merge(self, usage: Any) -> ir.Usage | None:
        if not isinstance(usage, dict):
            return None
        self._usage.update((k, v) for k, v in usage.items() if v is not None)  # message_delta repeats some
        return usage_from_json(self._usage)


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _json.dumps(obj) + b"\n\n"


class AnthropicStreamEncoder:
    """IR events -> Anthropic stream events, as the Anthropic SDK's accumulator expects them."""

    __slots__ = ("_id", "_model", "_usage", "_started", "_block", "_kind", "_tools", "_finish", "_failed")

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._usage = ir.Usage()
        self._started = False
        self._block = -1  # the open content block's index, -1 when none is open
        self._kind: str | None = None  # "text" | "thinking" | "tool_use" while a block is open
        self._tools: dict[int, int] = {}  # IR tool-call index -> content block index
        self._finish: ir.Finish | None = None
        self._failed = False

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(self._usage),
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._start() + self._close()
        self._block += 1
        self._kind = kind
        return out + _event(
            "content_block_start", {"type": "content_block_start", "index": self._block, "content_block": block}
        )

    def _close(self) -> bytes:
        if self._kind is None:
            return b""
        self._kind = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def feed(self, event: ir.Event) -> bytes:
        if isinstance(event, ir.TextDelta):
            out = b"" if self._kind == "text" else self._open("text", {"type": "text", "text": ""})
            return out + self._delta(self._block, {"type": "text_delta", "text": event.text})
        if isinstance(event, ir.ToolCallDelta):
            index = self._tools.get(event.index)
            if index is None:
                return b""
            return self._delta(index, {"type": "input_json_delta", "partial_json": event.arguments})
        if isinstance(event, ir.ReasoningDelta):
            return self._reasoning(event)
        if isinstance(event, ir.ToolCallStart):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            out = self._open("tool_use", block)
            self._tools[event.index] = self._block
            return out
        if isinstance(event, ir.Start):
            self._id, self._model = event.id, event.model
            if event.usage is not None:
                self._usage = event.usage
            return self._start()
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, ir.Finish):
            self._finish = event
        elif isinstance(event, ir.StreamError):
            return self.error(event.message, event.kind)
        return b""

    def _reasoning(self, event: ir.ReasoningDelta) -> bytes:
        if event.redacted is not None:
            return self._open("redacted", {"type": "redacted_thinking", "data": event.redacted}) + self._close()
        out = b""
        if self._kind != "thinking":
            out = self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if event.text:
            out += self._delta(self._block, {"type": "thinking_delta", "thinking": event.text})
        if event.signature is not None:
            out += self._delta(self._block, {"type": "signature_delta", "signature": event.signature})
        return out

    def finish(self) -> bytes:
        """The upstream ended: close the open block, then ``message_delta`` and ``message_stop``."""
        if self._failed:
            return b""
        if self._finish is None:
            return self.error("upstream stream ended before its last event")
        out = self._start() + self._close()
        delta = {"stop_reason": STOP_TO_ANTHROPIC[self._finish.reason], "stop_sequence": self._finish.stop_sequence}
        usage = usage_json(self._usage)
        out += _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + _event("message_stop", {"type": "message_stop"})

    def error(self, message: str, kind: str = "api_error", code: Any = None) -> bytes:
        """Anthropic's ``error`` event (the SDK raises it as an API error)."""
        if self._failed:
            return b""
        self._failed = True
        return _event("error", {"type": "error", "error": {"type": kind, "message": message}})
