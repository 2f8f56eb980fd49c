"""IR events -> OpenAI Responses stream events (``response.created`` … ``response.completed``).

The Responses stream describes output *items* (a message, a function call, a reasoning item),
each opened (``output_item.added``), filled by deltas and closed (``…done`` events that repeat
the item's whole content), and ends with the whole response. So unlike the other encoders this
one keeps the text of the open item and the finished items: that is the shape of the protocol,
not buffering — every delta still goes out the moment it arrives.
"""

from __future__ import annotations

import time
from typing import Any

from .. import _json
from . import ir
from ._fields import new_id
from .openai_responses import (
    call_item,
    finish_status,
    message_item,
    reasoning_item,
    response_id,
    shell,
    usage_json,
)


class ResponsesStreamEncoder:
    __slots__ = (
        "_seq",
        "_response",
        "_items",
        "_open",
        "_text",
        "_signature",
        "_calls",
        "_usage",
        "_finish",
        "_failed",
    )

    def __init__(self) -> None:
        self._seq = 0
        self._response: dict[str, Any] | None = None
        self._items: list[dict[str, Any]] = []  # finished output items
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._text = ""  # its text (message, reasoning) or arguments (function call) so far
        self._signature: str | None = None
        self._calls: dict[int, int] = {}  # IR tool-call index -> output index
        self._usage = ir.Usage()
        self._finish: ir.Finish | None = None
        self._failed = False

    def _event(self, kind: str, **fields: Any) -> bytes:
        obj = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _json.dumps(obj) + b"\n\n"

    def _start(self, rid: str = "", model: str = "") -> bytes:
        if self._response is not None:
            return b""
        self._response = shell(response_id(rid), model, int(time.time()), "in_progress")
        return self._event("response.created", response=self._response) + self._event(
            "response.in_progress", response=self._response
        )

    @property
    def _index(self) -> int:
        return len(self._items)

    def _open_item(self, item: dict[str, Any]) -> bytes:
        out = self._start() + self._close()
        self._open, self._text, self._signature = item, "", None
        return out + self._event("response.output_item.added", output_index=self._index, item=item)

    def _close(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        index, kind = self._index, item["type"]
        out = b""
        if kind == "message":
            part = {"type": "output_text", "text": self._text, "annotations": []}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out += self._event("response.output_text.done", **ids, text=self._text, logprobs=[])
            out += self._event("response.content_part.done", **ids, part=part)
            item = message_item(item["id"], self._text, "completed")
        elif kind == "function_call":
            out += self._event(
                "response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=self._text
            )
            item = {**item, "arguments": self._text, "status": "completed"}
        else:  # reasoning
            if self._text:
                part = {"type": "summary_text", "text": self._text}
                ids = {"item_id": item["id"], "output_index": index, "summary_index": 0}
                out += self._event("response.reasoning_summary_text.done", **ids, text=self._text)
                out += self._event("response.reasoning_summary_part.done", **ids, part=part)
            item = reasoning_item(item["id"], self._text, self._signature)
        self._items.append(item)
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def feed(self, event: ir.Event) -> bytes:
        if isinstance(event, ir.TextDelta):
            out = b""
            if self._open is None or self._open["type"] != "message":
                item = message_item(new_id("msg_"), "", "in_progress")
                item["content"] = []
                out = self._open_item(item)
                part = {"type": "output_text", "text": "", "annotations": []}
                ids = {"item_id": item["id"], "output_index": self._index, "content_index": 0}
                out += self._event("response.content_part.added", **ids, part=part)
            assert self._open is not None
            self._text += event.text
            ids = {"item_id": self._open["id"], "output_index": self._index, "content_index": 0}
            return out + self._event("response.output_text.delta", **ids, delta=event.text, logprobs=[])
        if isinstance(event, ir.ToolCallDelta):
            if self._open is None or self._calls.get(event.index) != self._index:
                return b""  # interleaved calls do not occur: providers stream calls one after another
            self._text += event.arguments
            return self._event(
                "response.function_call_arguments.delta",
                item_id=self._open["id"],
                output_index=self._index,
                delta=event.arguments,
            )
        if isinstance(event, ir.ToolCallStart):
            out = self._start() + self._close()
            self._calls[event.index] = self._index
            return out + self._open_item(call_item(new_id("fc_"), ir.ToolCall(event.id, event.name, ""), "in_progress"))
        if isinstance(event, ir.ReasoningDelta):
            return self._reasoning(event)
        if isinstance(event, ir.Start):
            if event.usage is not None:
                self._usage = event.usage
            return self._start(event.id, event.model)
        if isinstance(event, ir.UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, ir.Finish):
            self._finish = event
        elif isinstance(event, ir.StreamError):
            return self.error(event.message, event.kind)
        return b""

    def _reasoning(self, event: ir.ReasoningDelta) -> bytes:
        out = b""
        if self._open is None or self._open["type"] != "reasoning":
            out = self._open_item(reasoning_item(new_id("rs_"), "", None))
        assert self._open is not None
        if event.signature is not None or event.redacted is not None:
            self._signature = event.signature or event.redacted
        if event.text:
            ids = {"item_id": self._open["id"], "output_index": self._index, "summary_index": 0}
            if not self._text:
                part = {"type": "summary_text", "text": ""}
                out += self._event("response.reasoning_summary_part.added", **ids, part=part)
            self._text += event.text
            out += self._event("response.reasoning_summary_text.delta", **ids, delta=event.text)
        return out

    def finish(self) -> bytes:
        if self._failed:
            return b""
        if self._finish is None:
            return self.error("upstream stream ended before its last event")
        out = self._start() + self._close()
        assert self._response is not None
        status, details = finish_status(self._finish.reason)
        response = {
            **self._response,
            "status": status,
            "incomplete_details": details,
            "output": self._items,
            "usage": usage_json(self._usage),
        }
        return out + self._event(
            "response.completed" if status == "completed" else "response.incomplete", response=response
        )

    def error(self, message: str, kind: str = "api_error", code: Any = None) -> bytes:
        """An ``error`` event, then ``response.failed``: what OpenAI sends when a response fails."""
        if self._failed:
            return b""
        self._failed = True
        out = self._start()
        out += self._event("error", code=str(code if code is not None else kind), message=message, param=None)
        assert self._response is not None
        failed = {**self._response, "status": "failed", "error": {"code": "server_error", "message": message}}
        failed["output"] = self._items
        return out + self._event("response.failed", response=failed)
