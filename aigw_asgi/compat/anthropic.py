"""Anthropic Messages, both as a surface (the Anthropic SDK's shape) and as a target wire format.

Shapes that differ from OpenAI's and how they map:

* one top-level ``system`` (system/developer messages anywhere in an OpenAI conversation are
  joined into it, in order);
* tool results are ``tool_result`` blocks at the start of a user turn, so consecutive tool and
  user messages merge into one user turn (parallel calls answered together, as Anthropic requires);
* ``max_tokens`` is required: `DEFAULT_MAX_TOKENS` when the client named none (plus the thinking
  budget, which counts against it);
* thinking blocks carry a ``signature`` that must be replayed; thinking without one (from another
  provider) cannot be sent back and is left out of the replayed turn (docs/compat.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from . import ir
from ._fields import (
    as_dict,
    bad,
    opt_bool,
    opt_dict,
    opt_int,
    opt_list,
    opt_num,
    opt_str,
    refuse,
    req_str,
)

DEFAULT_MAX_TOKENS = 4096  # what Claude 3 Haiku, the smallest current model, can emit at most
# OpenAI's effort levels as Anthropic thinking budgets (minimum 1024).
EFFORT_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}

_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k",
        "stream", "tools", "tool_choice", "thinking", "metadata", "output_config",
    }
)  # fmt: skip
DROPPED = frozenset({"service_tier", "cache_control"})  # docs/compat.md: they change nothing in the answer

STOP_TO_ANTHROPIC: dict[str, str] = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "pause": "pause_turn",
}
_STOP_FROM_ANTHROPIC: dict[str, ir.FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop_sequence",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause",
}

# -- surface: request ---------------------------------------------------------------------------------


def parse_request(body: dict[str, Any], target: str) -> ir.Request:
    """A Messages body -> IR (also a ``count_tokens`` body, which has no ``max_tokens``)."""
    raw_messages = opt_list(body, "messages")
    if not raw_messages:
        raise bad("messages", "required, a non-empty array")
    messages: list[ir.Message] = []
    system = body.get("system")
    if system is not None:
        messages.append(ir.Message("system", list(_blocks_text(system, "system"))))
    for i, raw in enumerate(raw_messages):
        messages.extend(_message(raw, f"messages[{i}]", target))
    req = ir.Request(messages=messages)
    req.max_tokens = opt_int(body, "max_tokens", minimum=1)
    req.temperature = opt_num(body, "temperature")
    req.top_p = opt_num(body, "top_p")
    req.top_k = opt_int(body, "top_k")
    stops = opt_list(body, "stop_sequences") or []
    if not all(isinstance(s, str) for s in stops):
        raise bad("stop_sequences", "expected an array of strings")
    req.stop = list(stops)
    req.stream = bool(opt_bool(body, "stream"))
    req.include_usage = True  # Anthropic streams always carry usage
    req.tools = [_tool(t, f"tools[{i}]", target) for i, t in enumerate(opt_list(body, "tools") or [])]
    choice = opt_dict(body, "tool_choice")
    if choice is not None:
        kind = choice.get("type")
        if kind == "tool":
            req.tool_choice = ir.ToolChoice("tool", req_str(choice, "name", "tool_choice"))
        elif kind in ("auto", "any", "none"):
            req.tool_choice = ir.ToolChoice("required" if kind == "any" else kind)
        else:
            raise bad("tool_choice.type", "expected auto, any, tool or none")
        if opt_bool(choice, "disable_parallel_tool_use", "tool_choice"):
            req.parallel_tool_calls = False
    thinking = opt_dict(body, "thinking")
    if thinking is not None and thinking.get("type") == "enabled":
        req.reasoning_budget = opt_int(thinking, "budget_tokens", "thinking")
    metadata = opt_dict(body, "metadata") or {}
    req.user = opt_str(metadata, "user_id", "metadata")
    output = opt_dict(body, "output_config") or {}
    req.reasoning_effort = opt_str(output, "effort", "output_config")
    fmt = opt_dict(output, "format", "output_config")
    if fmt is not None:
        if fmt.get("type") != "json_schema":
            raise bad("output_config.format.type", "expected json_schema")
        schema = opt_dict(fmt, "schema", "output_config.format") or {}
        req.response_format = ir.ResponseFormat("json_schema", name="response", schema=schema, strict=True)
    for key, value in body.items():
        if value is not None and key not in _HANDLED and key not in DROPPED:
            req.extras[key] = value
    return req


def _blocks_text(content: Any, where: str) -> list[ir.Text]:
    if isinstance(content, str):
        return [ir.Text(content)] if content else []
    if not isinstance(content, list):
        raise bad(where, "expected a string or an array of text blocks")
    out = []
    for i, raw in enumerate(content):
        block = as_dict(raw, f"{where}[{i}]")
        if block.get("type") != "text":
            raise bad(f"{where}[{i}].type", "expected 'text'")
        out.append(ir.Text(req_str(block, "text", f"{where}[{i}]")))
    return out


def _image(block: dict[str, Any], where: str) -> ir.Image:
    source = as_dict(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        return ir.Image(
            data=req_str(source, "data", f"{where}.source"), media_type=req_str(source, "media_type", f"{where}.source")
        )
    if kind == "url":
        return ir.Image(url=req_str(source, "url", f"{where}.source"))
    raise bad(f"{where}.source.type", "expected base64 or url")


def _message(raw: Any, where: str, target: str) -> list[ir.Message]:
    msg = as_dict(raw, where)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise bad(f"{where}.role", "expected user or assistant")
    content = msg.get("content")
    if isinstance(content, str):
        return [ir.Message(role, [ir.Text(content)])]
    if not isinstance(content, list):
        raise bad(f"{where}.content", "expected a string or an array of content blocks")
    results: list[ir.Part] = []
    parts: list[ir.Part] = []
    for i, raw_block in enumerate(content):
        at = f"{where}.content[{i}]"
        block = as_dict(raw_block, at)
        kind = block.get("type")
        if kind == "text":
            parts.append(ir.Text(req_str(block, "text", at)))
        elif kind == "image" and role == "user":
            parts.append(_image(block, at))
        elif kind == "document" and role == "user":
            source = as_dict(block.get("source"), f"{at}.source")
            if source.get("type") == "base64":
                media = req_str(source, "media_type", f"{at}.source")
                parts.append(ir.File(data=req_str(source, "data", f"{at}.source"), media_type=media))
            elif source.get("type") == "text":
                data = base64.b64encode(req_str(source, "data", f"{at}.source").encode()).decode()
                parts.append(ir.File(data=data, media_type="text/plain"))
            else:
                raise refuse(f"{at}.source.type {str(source.get('type'))[:40]!r}", target)
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, at))
        elif kind == "tool_use" and role == "assistant":
            arguments = json.dumps(block.get("input") if block.get("input") is not None else {})
            parts.append(ir.ToolCall(req_str(block, "id", at), req_str(block, "name", at), arguments))
        elif kind == "thinking" and role == "assistant":
            parts.append(ir.Reasoning(opt_str(block, "thinking", at) or "", opt_str(block, "signature", at)))
        elif kind == "redacted_thinking" and role == "assistant":
            parts.append(ir.Reasoning(redacted=req_str(block, "data", at)))
        else:
            raise refuse(f"{at}.type {str(kind)[:40]!r}", target)
    out = []
    if results:
        out.append(ir.Message("tool", results))
    if parts or not results:
        out.append(ir.Message(role, parts))
    return out


def _tool_result(block: dict[str, Any], where: str) -> ir.ToolResult:
    content = block.get("content")
    parts: list[ir.Text | ir.Image] = []
    if isinstance(content, str):
        parts.append(ir.Text(content))
    elif isinstance(content, list):
        for i, raw in enumerate(content):
            item = as_dict(raw, f"{where}.content[{i}]")
            if item.get("type") == "text":
                parts.append(ir.Text(req_str(item, "text", f"{where}.content[{i}]")))
            elif item.get("type") == "image":
                parts.append(_image(item, f"{where}.content[{i}]"))
            else:
                raise bad(f"{where}.content[{i}].type", "expected text or image")
    elif content is not None:
        raise bad(f"{where}.content", "expected a string or an array of blocks")
    return ir.ToolResult(req_str(block, "tool_use_id", where), parts, bool(opt_bool(block, "is_error", where)))


def _tool(raw: Any, where: str, target: str) -> ir.Tool:
    tool = as_dict(raw, where)
    if tool.get("type") not in (None, "custom"):
        raise refuse(f"{where}.type {str(tool.get('type'))[:40]!r}", target, "server tools run only on Anthropic")
    return ir.Tool(
        name=req_str(tool, "name", where),
        description=opt_str(tool, "description", where),
        parameters=opt_dict(tool, "input_schema", where),
        strict=opt_bool(tool, "strict", where),
    )


# -- surface: answers -----------------------------------------------------------------------------------


def usage_json(usage: ir.Usage) -> dict[str, Any]:
    cached = usage.cached_tokens or 0
    written = usage.cache_write_tokens or 0
    return {
        "input_tokens": max(0, usage.input_tokens - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.output_tokens,
    }


def _arguments(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}  # a provider that produced broken JSON: the text is lost either way


def content_block(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ir.ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": _arguments(part.arguments)}
    if isinstance(part, ir.Reasoning):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": part.redacted}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    return None


def render_response(resp: ir.Response) -> dict[str, Any]:
    blocks = [b for b in map(content_block, resp.parts) if b is not None]
    return {
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": blocks,
        "stop_reason": STOP_TO_ANTHROPIC[resp.finish],
        "stop_sequence": resp.stop_sequence,
        "usage": usage_json(resp.usage or ir.Usage()),
    }


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
_ERROR_TYPES |= {404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}
_ERROR_TYPES |= {504: "timeout_error", 529: "overloaded_error"}


def error_json(status: int, message: str, *, kind: str | None = None) -> dict[str, Any]:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    kind = kind or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


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
