"""Chat Completions streams: chunks -> IR events (`ChatStreamDecoder`), IR events -> chunks (`ChatStreamEncoder`).

Both are incremental state machines fed one parsed SSE event (or one IR event) at a time; they
hold only what the next event needs (the tool-call index map, whether the role chunk went out, the
latest usage), never the stream.
"""

from __future__ import annotations

import time
from typing import Any

from .. import _json
from ..providers.sse import SSEEvent
from . import ir
from .openai_chat import FINISH_TO_CHAT, usage_json
from .openai_chat_target import finish_from_chat, usage_from_json

DONE = b"data: [DONE]\n\n"


class ChatStreamDecoder:
    """An OpenAI-compatible provider's stream -> IR events."""

    __slots__ = ("_started", "_calls", "_finished")

    def __init__(self) -> None:
        self._started = False
        self._calls: dict[int, int] = {}  # the provider's tool_calls[].index -> IR index
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, event: SSEEvent) -> list[ir.Event]:
        data = event.data
        if not data or data == b"[DONE]":
            return []
        obj = _json.loads(data)
        if not isinstance(obj, dict):
            return []
        out: list[ir.Event] = []
        error = obj.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else str(error)
            return [ir.StreamError(str(message or "upstream error"))]
        if not self._started:
            self._started = True
            out.append(ir.Start(str(obj.get("id") or ""), str(obj.get("model") or "")))
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ir.ReasoningDelta(reasoning))
            for block in delta.get("thinking_blocks") or ():
                if isinstance(block, dict) and block.get("signature"):
                    out.append(ir.ReasoningDelta(signature=str(block["signature"])))
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.append(ir.TextDelta(content))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(ir.TextDelta(refusal))
            for call in delta.get("tool_calls") or ():
                out.extend(self._tool_call(call))
            reason = choice.get("finish_reason")
            if reason:
                self._finished = True
                out.append(ir.Finish(finish_from_chat(reason)))
        usage = usage_from_json(obj.get("usage"))
        if usage is not None:
            out.append(ir.UsageUpdate(usage))
        return out

    def _tool_call(self, call: Any) -> list[ir.Event]:
        if not isinstance(call, dict):
            return []
        index = call.get("index", 0)
        function = call.get("function") or {}
        out: list[ir.Event] = []
        if index not in self._calls:
            self._calls[index] = len(self._calls)
            out.append(ir.ToolCallStart(self._calls[index], str(call.get("id") or ""), str(function.get("name") or "")))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(ir.ToolCallDelta(self._calls[index], arguments))
        return out


class ChatStreamEncoder:
    """IR events -> ``data: {chat.completion.chunk}`` events, ending with ``data: [DONE]``.

    The finish chunk goes out when the finish arrives; the usage chunk (only when the client
    asked with ``stream_options.include_usage``) and ``[DONE]`` when the upstream ends, since usage
    may come after the finish (OpenAI, Anthropic) or with it (Gemini).
    """

    __slots__ = ("_id", "_model", "_created", "_include_usage", "_usage", "_started", "_finished", "_failed")

    def __init__(self, *, include_usage: bool) -> None:
        self._id = ""
        self._model = ""
        self._created = int(time.time())
        self._include_usage = include_usage
        self._usage: ir.Usage | None = None
        self._started = False
        self._finished = False
        self._failed = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + _json.dumps(obj) + b"\n\n"

    def feed(self, event: ir.Event) -> bytes:
        if isinstance(event, ir.TextDelta):
            return self._start() + self._chunk({"content": event.text})
        if isinstance(event, ir.ToolCallDelta):
            return self._chunk({"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]})
        if isinstance(event, ir.Start):
            self._id, self._model = event.id, event.model
            if event.usage is not None:
                self._usage = event.usage
            return self._start()
        if isinstance(event, ir.ToolCallStart):
            function = {"name": event.name, "arguments": ""}
            call = {"index": event.index, "id": event.id, "type": "function", "function": function}
            return self._start() + self._chunk({"tool_calls": [call]})
        if isinstance(event, ir.ReasoningDelta):
            delta: dict[str, Any] = {}
            if event.text:
                delta["reasoning_content"] = event.text
            if event.signature is not None:
                delta["thinking_blocks"] = [{"type": "thinking", "thinking": "", "signature": event.signature}]
            if event.redacted is not None:
                delta["thinking_blocks"] = [{"type": "redacted_thinking", "data": event.redacted}]
            return self._start() + self._chunk(delta) if delta else b""
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
            return b""
        if isinstance(event, ir.Finish):
            self._finished = True
            return self._start() + self._chunk({}, FINISH_TO_CHAT[event.reason])
        if isinstance(event, ir.StreamError):
            return self.error(event.message, event.kind)
        return b""

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def finish(self) -> bytes:
        """The upstream ended: the usage chunk and ``[DONE]``, or an error if it ended early."""
        if self._failed:
            return b""
        if not self._finished:
            return self.error("upstream stream ended before its last event")
        out = b""
        if self._include_usage:
            obj = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": usage_json(self._usage or ir.Usage()),
            }
            out = b"data: " + _json.dumps(obj) + b"\n\n"
        return out + DONE

    def error(self, message: str, kind: str = "api_error", code: Any = None) -> bytes:
        """The error event the OpenAI SDK raises on (any data event with an ``error`` object)."""
        if self._failed:
            return b""
        self._failed = True
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return b"data: " + _json.dumps(body) + b"\n\n"
