"""OpenAI Responses API as a surface, translated for targets that have no ``/responses``.

OpenAI itself gets the client's body as is (model rewritten); every other target gets the IR of
it. The Responses API is stateful on OpenAI's side (``previous_response_id``, ``conversation``,
``background``): a translated target keeps no state, so those are refused, and the client sends
the whole conversation as ``input`` items, as it would with ``store: false``.

Reasoning round trip: a reasoning item the gateway emits carries the provider's thinking
signature (Anthropic) in ``encrypted_content``, where OpenAI keeps its own opaque reasoning state;
a client that sends the item back (as the Agents SDK does) hands the signature back with it.
"""

from __future__ import annotations

import time
from typing import Any

from . import ir
from ._fields import (
    as_dict,
    bad,
    new_id,
    opt_bool,
    opt_dict,
    opt_int,
    opt_list,
    opt_num,
    opt_str,
    parse_data_url,
    refuse,
    req_str,
)
from .openai_chat import error_json as error_json

_HANDLED = frozenset(
    {
        "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice",
        "parallel_tool_calls", "text", "reasoning", "stream", "user", "top_logprobs",
    }
)  # fmt: skip
# docs/compat.md: platform bookkeeping that changes nothing in a translated answer.
DROPPED = frozenset(
    {"store", "metadata", "include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier",
     "stream_options"}
)  # fmt: skip

# -- request -----------------------------------------------------------------------------------------------


def parse_request(body: dict[str, Any], target: str) -> ir.Request:
    messages: list[ir.Message] = []
    instructions = opt_str(body, "instructions")
    if instructions:
        messages.append(ir.Message("system", [ir.Text(instructions)]))
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append(ir.Message("user", [ir.Text(raw)]))
    elif isinstance(raw, list) and raw:
        for i, item in enumerate(raw):
            _item(item, f"input[{i}]", messages, target)
    else:
        raise bad("input", "required, a string or a non-empty array of items")
    req = ir.Request(messages=messages)
    req.max_tokens = opt_int(body, "max_output_tokens", minimum=1)
    req.temperature = opt_num(body, "temperature")
    req.top_p = opt_num(body, "top_p")
    req.top_logprobs = opt_int(body, "top_logprobs")
    req.tools = [_tool(t, f"tools[{i}]", target) for i, t in enumerate(opt_list(body, "tools") or [])]
    req.tool_choice = _tool_choice(body.get("tool_choice"), target)
    req.parallel_tool_calls = opt_bool(body, "parallel_tool_calls")
    text = opt_dict(body, "text") or {}
    fmt = opt_dict(text, "format", "text")
    if fmt is not None:
        kind = fmt.get("type")
        if kind in ("text", "json_object"):
            req.response_format = ir.ResponseFormat(kind)
        elif kind == "json_schema":
            req.response_format = ir.ResponseFormat(
                "json_schema",
                name=opt_str(fmt, "name", "text.format"),
                schema=opt_dict(fmt, "schema", "text.format") or {},
                strict=opt_bool(fmt, "strict", "text.format"),
                description=opt_str(fmt, "description", "text.format"),
            )
        else:
            raise bad("text.format.type", "expected text, json_object or json_schema")
    if text.get("verbosity") is not None:
        req.extras["text.verbosity"] = text["verbosity"]
    reasoning = opt_dict(body, "reasoning") or {}
    req.reasoning_effort = opt_str(reasoning, "effort", "reasoning")
    req.stream = bool(opt_bool(body, "stream"))
    req.include_usage = True  # response.completed always carries usage
    req.user = opt_str(body, "user")
    for key, value in body.items():
        if value is not None and key not in _HANDLED and key not in DROPPED:
            req.extras[key] = value
    return req


def _assistant(messages: list[ir.Message]) -> ir.Message:
    """The assistant turn items are appended to: consecutive output items form one turn."""
    if messages and messages[-1].role == "assistant":
        return messages[-1]
    messages.append(ir.Message("assistant", []))
    return messages[-1]


def _item(raw: Any, where: str, messages: list[ir.Message], target: str) -> None:
    item = as_dict(raw, where)
    kind = item.get("type") or ("message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        content = item.get("content")
        if role in ("system", "developer"):
            messages.append(ir.Message("system", _parts(content, f"{where}.content", target, "input_text")))
        elif role == "user":
            messages.append(ir.Message("user", _parts(content, f"{where}.content", target, "input_text")))
        elif role == "assistant":
            _assistant(messages).parts.extend(_parts(content, f"{where}.content", target, "output_text"))
        else:
            raise bad(f"{where}.role", "expected system, developer, user or assistant")
    elif kind == "function_call":
        call = ir.ToolCall(
            req_str(item, "call_id", where), req_str(item, "name", where), req_str(item, "arguments", where)
        )
        _assistant(messages).parts.append(call)
    elif kind == "function_call_output":
        output = item.get("output")
        result: list[ir.Text | ir.Image] = []
        for part in _parts(output if output is not None else "", f"{where}.output", target, "input_text"):
            if not isinstance(part, ir.Text | ir.Image):
                raise refuse(f"{where}.output: a file", target)
            result.append(part)
        messages.append(ir.Message("tool", [ir.ToolResult(req_str(item, "call_id", where), result)]))
    elif kind == "reasoning":
        texts = [s.get("text", "") for s in opt_list(item, "summary", where) or [] if isinstance(s, dict)]
        _assistant(messages).parts.append(ir.Reasoning("".join(texts), opt_str(item, "encrypted_content", where)))
    else:
        raise refuse(f"{where}.type {str(kind)[:40]!r}", target)


def _parts(content: Any, where: str, target: str, text_type: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.Text(content)] if content else []
    if not isinstance(content, list):
        raise bad(where, "expected a string or an array of content parts")
    parts: list[ir.Part] = []
    for i, raw in enumerate(content):
        at = f"{where}[{i}]"
        part = as_dict(raw, at)
        kind = part.get("type")
        if kind in ("input_text", "output_text", text_type):
            parts.append(ir.Text(req_str(part, "text", at)))
        elif kind == "refusal":
            parts.append(ir.Text(req_str(part, "refusal", at)))
        elif kind == "input_image":
            url = opt_str(part, "image_url", at)
            if url is None:
                raise refuse(f"{at}: an image by file_id", target, "send image_url")
            inline = parse_data_url(url)
            detail = opt_str(part, "detail", at)
            if inline is not None:
                parts.append(ir.Image(data=inline[1], media_type=inline[0], detail=detail))
            else:
                parts.append(ir.Image(url=url, detail=detail))
        elif kind == "input_file":
            data_url = opt_str(part, "file_data", at)
            inline = parse_data_url(data_url) if data_url else None
            if inline is None and opt_str(part, "file_id", at) is None:
                raise bad(f"{at}.file_data", "expected a base64 data URL")
            parts.append(
                ir.File(
                    data=inline[1] if inline else None,
                    media_type=inline[0] if inline else None,
                    filename=opt_str(part, "filename", at),
                    file_id=opt_str(part, "file_id", at),
                )
            )
        else:
            raise refuse(f"{at}.type {str(kind)[:40]!r}", target)
    return parts


def _tool(raw: Any, where: str, target: str) -> ir.Tool:
    tool = as_dict(raw, where)
    if tool.get("type") != "function":
        raise refuse(f"{where}.type {str(tool.get('type'))[:40]!r}", target, "only function tools translate")
    return ir.Tool(
        name=req_str(tool, "name", where),
        description=opt_str(tool, "description", where),
        parameters=opt_dict(tool, "parameters", where),
        strict=opt_bool(tool, "strict", where),
    )


def _tool_choice(value: Any, target: str) -> ir.ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ir.ToolChoice(value)
    choice = as_dict(value, "tool_choice")
    if choice.get("type") == "function":
        return ir.ToolChoice("tool", req_str(choice, "name", "tool_choice"))
    raise refuse(f"tool_choice.type {str(choice.get('type'))[:40]!r}", target)


# -- answers -----------------------------------------------------------------------------------------------


def usage_json(usage: ir.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens or 0,
            "cache_write_tokens": usage.cache_write_tokens or 0,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def response_id(provider_id: str) -> str:
    return provider_id if provider_id.startswith("resp_") else new_id("resp_")


def shell(rid: str, model: str, created: int, status: str) -> dict[str, Any]:
    """A Response object without output or usage (the stream's first events carry this)."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
    }


def finish_status(finish: ir.FinishReason) -> tuple[str, dict[str, Any] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def output_items(parts: list[ir.Part]) -> list[dict[str, Any]]:
    """Parts -> output items: consecutive text forms one message item, as OpenAI groups it."""
    items: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ir.Text):
            last = items[-1] if items else None
            if last is not None and last["type"] == "message":
                last["content"][0]["text"] += part.text
            else:
                items.append(message_item(new_id("msg_"), part.text, "completed"))
        elif isinstance(part, ir.ToolCall):
            items.append(call_item(new_id("fc_"), part, "completed"))
        elif isinstance(part, ir.Reasoning):
            items.append(reasoning_item(new_id("rs_"), part.text, part.signature or part.redacted))
    return items


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(item_id: str, call: ir.ToolCall, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def reasoning_item(item_id: str, text: str, opaque: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": item_id, "summary": []}
    if text:
        item["summary"] = [{"type": "summary_text", "text": text}]
    if opaque:
        item["encrypted_content"] = opaque
    return item


def render_response(resp: ir.Response) -> dict[str, Any]:
    out = shell(response_id(resp.id), resp.model, resp.created or int(time.time()), "completed")
    out["status"], out["incomplete_details"] = finish_status(resp.finish)
    out["output"] = output_items(resp.parts)
    out["usage"] = usage_json(resp.usage or ir.Usage())
    return out
