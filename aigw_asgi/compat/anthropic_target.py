"""Anthropic Messages as a target wire format: the Messages body built from the IR, and the
reading of Anthropic's answers (the mapping rules are in `anthropic`'s docstring)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from . import ir
from ._fields import bad, refuse

DEFAULT_MAX_TOKENS = 4096  # what Claude 3 Haiku, the smallest current model, can emit at most
# OpenAI's effort levels as Anthropic thinking budgets (minimum 1024).
EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}

_STOP_FROM_ANTHROPIC: dict[str, ir.FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop_sequence",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause",
}


# -- target: request ------------------------------------------------------------------------------------


def build_request(req: ir.Request, model: str, target: str) -> dict[str, Any]:
    """IR -> a Messages body."""
    if req.extras:
        raise refuse(next(iter(req.extras)), target)
    for name in ("seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs"):
        if getattr(req, name) is not None:
            raise refuse(name, target)
    if req.n is not None and req.n > 1:
        raise refuse("n > 1", target)
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for m, msg in enumerate(req.messages):
        if msg.role == "system":
            system.extend({"type": "text", "text": p.text} for p in msg.parts if isinstance(p, ir.Text) and p.text)
            continue
        role = "assistant" if msg.role == "assistant" else "user"
        blocks = [_block(p, target, f"messages[{m}]") for p in msg.parts]
        blocks = [b for b in blocks if b is not None]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # consecutive tool/user turns become one user turn
        else:
            turns.append({"role": role, "content": blocks})
    budget = req.reasoning_budget
    if budget is None and req.reasoning_effort is not None and req.reasoning_effort != "none":
        if req.reasoning_effort not in EFFORT_BUDGETS:
            raise refuse(f"reasoning_effort {req.reasoning_effort[:20]!r}", target)
        budget = EFFORT_BUDGETS[req.reasoning_effort]
    body: dict[str, Any] = {"model": model, "messages": turns}
    if budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    body["max_tokens"] = req.max_tokens or DEFAULT_MAX_TOKENS + (budget or 0)
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system
    for key in ("temperature", "top_p", "top_k"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.tools:
        body["tools"] = [_tool_json(t) for t in req.tools]
    choice = _tool_choice(req)
    if choice is not None:
        body["tool_choice"] = choice
    fmt = req.response_format
    if fmt is not None and fmt.kind == "json_object":
        raise refuse("response_format json_object", target, "use json_schema")
    if fmt is not None and fmt.kind == "json_schema":
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema or {}}}
    if req.user is not None:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


def _tool_json(tool: ir.Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    if tool.strict:
        out["strict"] = True
    return out


def _tool_choice(req: ir.Request) -> dict[str, Any] | None:
    choice = req.tool_choice
    out: dict[str, Any] | None = None
    if choice is not None:
        kinds = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}
        out = {"type": kinds[choice.mode]}
        if choice.mode == "tool":
            out["name"] = choice.name
    if req.parallel_tool_calls is False and (out is None or out["type"] != "none"):
        out = out or {"type": "auto"}
        out["disable_parallel_tool_use"] = True
    return out


def _source(part: ir.Image) -> dict[str, Any]:
    if part.url is not None:
        return {"type": "url", "url": part.url}
    return {"type": "base64", "media_type": part.media_type, "data": part.data}


def _block(part: ir.Part, target: str, where: str) -> dict[str, Any] | None:
    if isinstance(part, ir.Text):
        return {"type": "text", "text": part.text} if part.text else None  # Anthropic refuses empty text blocks
    if isinstance(part, ir.Image):
        return {"type": "image", "source": _source(part)}
    if isinstance(part, ir.ToolCall):
        try:
            arguments = json.loads(part.arguments) if part.arguments.strip() else {}
        except ValueError:
            raise bad(f"{where} tool call {part.id[:40]!r}", "arguments are not valid JSON") from None
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
    if isinstance(part, ir.ToolResult):
        content = [
            {"type": "text", "text": c.text} if isinstance(c, ir.Text) else {"type": "image", "source": _source(c)}
            for c in part.content
            if not isinstance(c, ir.Text) or c.text
        ]
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id, "content": content}
        if part.is_error:
            block["is_error"] = True
        return block
    if isinstance(part, ir.Reasoning):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        return None  # unsigned thinking (another provider's) cannot be replayed to Anthropic
    if isinstance(part, ir.File):
        return _document(part, target, where)
    raise refuse(f"{where}: audio input", target)


def _document(part: ir.File, target: str, where: str) -> dict[str, Any]:
    if part.data is None:
        raise refuse(f"{where}: a file by file_id", target, "send the file's data")
    if part.media_type == "text/plain":
        try:
            text = base64.b64decode(part.data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise bad(where, "a text/plain file that is not base64 UTF-8") from None
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    if part.media_type != "application/pdf":
        raise refuse(f"{where}: a file of type {str(part.media_type)[:60]!r}", target, "PDF or text only")
    return {"type": "document", "source": {"type": "base64", "media_type": part.media_type, "data": part.data}}


# -- target: answers ------------------------------------------------------------------------------------


def usage_from_json(raw: Any) -> ir.Usage | None:
    if not isinstance(raw, dict):
        return None

    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) else 0

    cached, written = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    details = raw.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return ir.Usage(
        input_tokens=count("input_tokens") + cached + written,
        output_tokens=count("output_tokens"),
        cached_tokens=cached if "cache_read_input_tokens" in raw else None,
        cache_write_tokens=written if "cache_creation_input_tokens" in raw else None,
        reasoning_tokens=thinking if isinstance(thinking, int) else None,
    )


def stop_from_anthropic(reason: Any) -> ir.FinishReason:
    return _STOP_FROM_ANTHROPIC.get(reason, "stop") if isinstance(reason, str) else "stop"


def parse_response(body: dict[str, Any]) -> ir.Response:
    parts: list[ir.Part] = []
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(ir.Text(str(block.get("text") or "")))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") if block.get("input") is not None else {})
            parts.append(ir.ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), arguments))
        elif kind == "thinking":
            parts.append(ir.Reasoning(str(block.get("thinking") or ""), block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(ir.Reasoning(redacted=str(block.get("data") or "")))
    stop_sequence = body.get("stop_sequence")
    return ir.Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish=stop_from_anthropic(body.get("stop_reason")),
        usage=usage_from_json(body.get("usage")),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
    )
