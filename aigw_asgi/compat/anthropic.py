"""Anthropic Messages as a surface (the Anthropic SDK's shape); the target side is `anthropic_target`.

Shapes that differ from OpenAI's and how they map:

* one top-level ``system`` (system/developer messages anywhere in an OpenAI conversation are
  joined into it, in order);
* tool results are ``tool_result`` blocks at the start of a user turn, so consecutive tool and
  user messages merge into one user turn (parallel calls answered together, as Anthropic requires);
* ``max_tokens`` is required: ``anthropic_target.DEFAULT_MAX_TOKENS`` when the client named none (plus the thinking
  budget, which counts against it);
* thinking blocks carry a ``signature`` that must be replayed; thinking without one (from another
  provider) cannot be sent back and is left out of the replayed turn (docs/compat.md).
"""

from __future__ import annotations

import base64
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
