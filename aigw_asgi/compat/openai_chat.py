"""OpenAI Chat Completions as a surface: what clients send, and the answers they read.

`parse_request` reads a client body into the IR, `render_response` writes the answer back,
`error_json` is the error shape the OpenAI SDK parses. A chat client talking to an
OpenAI-compatible provider never comes here: its body passes through with ``model`` rewritten.
The target side (`build_request`, `parse_response`) is `openai_chat_target`; streams are
`openai_chat_stream`.

Conventions beyond OpenAI's own schema, as other gateways (DeepSeek, OpenRouter, LiteLLM) use them:
reasoning comes back as ``message.reasoning_content`` and, when it carries a signature that must be
replayed (Anthropic thinking), as ``message.thinking_blocks``; both are read back on assistant
messages.
"""

from __future__ import annotations

import time
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
    parse_data_url,
    refuse,
    req_str,
    str_list,
)

# Read into the IR (or consumed by the gateway: model, stream_options).
_HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop",
        "seed", "presence_penalty", "frequency_penalty", "n", "logprobs", "top_logprobs", "tools",
        "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "stream",
        "stream_options", "user",
    }
)  # fmt: skip
# Dropped on purpose when translating (docs/compat.md): bookkeeping for OpenAI's own platform
# that changes nothing in the answer.
DROPPED = frozenset({"store", "metadata", "service_tier", "prompt_cache_key", "safety_identifier"})

FINISH_TO_CHAT: dict[str, str] = {
    "stop": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "pause": "stop",
}
# -- surface: request ---------------------------------------------------------------------------------


def parse_request(body: dict[str, Any], target: str) -> ir.Request:
    """A Chat Completions body -> IR. ``target`` names the provider in refusals."""
    raw_messages = opt_list(body, "messages")
    if not raw_messages:
        raise bad("messages", "required, a non-empty array")
    req = ir.Request(messages=[_message(m, f"messages[{i}]", target) for i, m in enumerate(raw_messages)])
    req.max_tokens = opt_int(body, "max_completion_tokens", minimum=1) or opt_int(body, "max_tokens", minimum=1)
    req.temperature = opt_num(body, "temperature")
    req.top_p = opt_num(body, "top_p")
    req.top_k = opt_int(body, "top_k")
    req.stop = str_list(body, "stop")
    req.seed = opt_int(body, "seed", minimum=-(2**63))
    req.presence_penalty = opt_num(body, "presence_penalty")
    req.frequency_penalty = opt_num(body, "frequency_penalty")
    req.n = opt_int(body, "n", minimum=1)
    req.logprobs = opt_bool(body, "logprobs")
    req.top_logprobs = opt_int(body, "top_logprobs")
    req.tools = [_tool(t, f"tools[{i}]", target) for i, t in enumerate(opt_list(body, "tools") or [])]
    req.tool_choice = _tool_choice(body.get("tool_choice"), target)
    req.parallel_tool_calls = opt_bool(body, "parallel_tool_calls")
    req.response_format = _response_format(opt_dict(body, "response_format"))
    req.reasoning_effort = opt_str(body, "reasoning_effort")
    req.stream = bool(opt_bool(body, "stream"))
    stream_options = opt_dict(body, "stream_options") or {}
    req.include_usage = bool(opt_bool(stream_options, "include_usage", "stream_options"))
    req.user = opt_str(body, "user")
    for key, value in body.items():
        if value is not None and key not in _HANDLED and key not in DROPPED:
            req.extras[key] = value
    return req


def _text_parts(content: Any, where: str, *, allow_refusal: bool = False) -> list[ir.Text]:
    if isinstance(content, str):
        return [ir.Text(content)] if content else []
    if not isinstance(content, list):
        raise bad(where, "expected a string or an array of text parts")
    out = []
    for i, raw in enumerate(content):
        part = as_dict(raw, f"{where}[{i}]")
        kind = part.get("type")
        if kind == "text" or (allow_refusal and kind == "refusal"):
            out.append(ir.Text(req_str(part, "refusal" if kind == "refusal" else "text", f"{where}[{i}]")))
        else:
            raise bad(f"{where}[{i}].type", f"expected 'text', got {str(kind)[:40]!r}")
    return out


def _message(raw: Any, where: str, target: str) -> ir.Message:
    msg = as_dict(raw, where)
    role = msg.get("role")
    content = msg.get("content")
    if role in ("system", "developer"):
        return ir.Message("system", list(_text_parts(content, f"{where}.content")))
    if role == "user":
        return ir.Message("user", _user_parts(content, f"{where}.content", target))
    if role == "assistant":
        return _assistant(msg, where, target)
    if role == "tool":
        call_id = req_str(msg, "tool_call_id", where)
        return ir.Message("tool", [ir.ToolResult(call_id, list(_text_parts(content or "", f"{where}.content")))])
    if role == "function":
        raise refuse(f"{where}.role 'function'", target, "deprecated; use tool messages")
    raise bad(f"{where}.role", "expected system, developer, user, assistant or tool")


def _user_parts(content: Any, where: str, target: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.Text(content)]
    if not isinstance(content, list):
        raise bad(where, "expected a string or an array of content parts")
    parts: list[ir.Part] = []
    for i, raw in enumerate(content):
        at = f"{where}[{i}]"
        part = as_dict(raw, at)
        kind = part.get("type")
        if kind == "text":
            parts.append(ir.Text(req_str(part, "text", at)))
        elif kind == "image_url":
            image = as_dict(part.get("image_url"), f"{at}.image_url")
            url = req_str(image, "url", f"{at}.image_url")
            detail = opt_str(image, "detail", f"{at}.image_url")
            inline = parse_data_url(url)
            if inline is not None:
                parts.append(ir.Image(data=inline[1], media_type=inline[0], detail=detail))
            else:
                parts.append(ir.Image(url=url, detail=detail))
        elif kind == "input_audio":
            audio = as_dict(part.get("input_audio"), f"{at}.input_audio")
            parts.append(
                ir.Audio(req_str(audio, "data", f"{at}.input_audio"), req_str(audio, "format", f"{at}.input_audio"))
            )
        elif kind == "file":
            file = as_dict(part.get("file"), f"{at}.file")
            data_url = opt_str(file, "file_data", f"{at}.file")
            inline = parse_data_url(data_url) if data_url else None
            if data_url and inline is None:
                raise bad(f"{at}.file.file_data", "expected a base64 data URL")
            parts.append(
                ir.File(
                    data=inline[1] if inline else None,
                    media_type=inline[0] if inline else None,
                    filename=opt_str(file, "filename", f"{at}.file"),
                    file_id=opt_str(file, "file_id", f"{at}.file"),
                )
            )
        else:
            raise refuse(f"{at}.type {str(kind)[:40]!r}", target)
    return parts


def _assistant(msg: dict[str, Any], where: str, target: str) -> ir.Message:
    parts: list[ir.Part] = []
    blocks = opt_list(msg, "thinking_blocks", where)
    if blocks:
        for i, raw in enumerate(blocks):
            block = as_dict(raw, f"{where}.thinking_blocks[{i}]")
            if block.get("type") == "redacted_thinking":
                parts.append(ir.Reasoning(redacted=req_str(block, "data", f"{where}.thinking_blocks[{i}]")))
            else:
                at = f"{where}.thinking_blocks[{i}]"
                parts.append(ir.Reasoning(opt_str(block, "thinking", at) or "", opt_str(block, "signature", at)))
    else:
        reasoning = opt_str(msg, "reasoning_content", where) or opt_str(msg, "reasoning", where)
        if reasoning:
            parts.append(ir.Reasoning(reasoning))
    if msg.get("content") is not None:
        parts.extend(_text_parts(msg["content"], f"{where}.content", allow_refusal=True))
    for i, raw in enumerate(opt_list(msg, "tool_calls", where) or []):
        at = f"{where}.tool_calls[{i}]"
        call = as_dict(raw, at)
        if call.get("type", "function") != "function":
            raise refuse(f"{at}.type {str(call.get('type'))[:40]!r}", target)
        function = as_dict(call.get("function"), f"{at}.function")
        arguments = opt_str(function, "arguments", f"{at}.function") or "{}"
        parts.append(ir.ToolCall(req_str(call, "id", at), req_str(function, "name", f"{at}.function"), arguments))
    if msg.get("audio") is not None:
        raise refuse(f"{where}.audio", target)
    if msg.get("function_call") is not None:
        raise refuse(f"{where}.function_call", target, "deprecated; use tool_calls")
    return ir.Message("assistant", parts)


def _tool(raw: Any, where: str, target: str) -> ir.Tool:
    tool = as_dict(raw, where)
    if tool.get("type") != "function":
        raise refuse(f"{where}.type {str(tool.get('type'))[:40]!r}", target, "only function tools translate")
    function = as_dict(tool.get("function"), f"{where}.function")
    return ir.Tool(
        name=req_str(function, "name", f"{where}.function"),
        description=opt_str(function, "description", f"{where}.function"),
        parameters=opt_dict(function, "parameters", f"{where}.function"),
        strict=opt_bool(function, "strict", f"{where}.function"),
    )


def _tool_choice(value: Any, target: str) -> ir.ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ir.ToolChoice(value)
    choice = as_dict(value, "tool_choice")
    if choice.get("type") == "function":
        function = as_dict(choice.get("function"), "tool_choice.function")
        return ir.ToolChoice("tool", req_str(function, "name", "tool_choice.function"))
    raise refuse(f"tool_choice.type {str(choice.get('type'))[:40]!r}", target)


def _response_format(fmt: dict[str, Any] | None) -> ir.ResponseFormat | None:
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(kind)
    if kind == "json_schema":
        spec = as_dict(fmt.get("json_schema"), "response_format.json_schema")
        return ir.ResponseFormat(
            "json_schema",
            name=opt_str(spec, "name", "response_format.json_schema"),
            schema=opt_dict(spec, "schema", "response_format.json_schema") or {},
            strict=opt_bool(spec, "strict", "response_format.json_schema"),
            description=opt_str(spec, "description", "response_format.json_schema"),
        )
    raise bad("response_format.type", "expected text, json_object or json_schema")


# -- surface: answers -----------------------------------------------------------------------------------


def usage_json(usage: ir.Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def reasoning_fields(parts: list[ir.Part]) -> dict[str, Any]:
    """``reasoning_content`` (all thinking text) and ``thinking_blocks`` (when replay needs them)."""
    reasoning = [p for p in parts if isinstance(p, ir.Reasoning)]
    if not reasoning:
        return {}
    out: dict[str, Any] = {"reasoning_content": "".join(p.text for p in reasoning)}
    if any(p.signature or p.redacted for p in reasoning):
        out["thinking_blocks"] = [
            {"type": "redacted_thinking", "data": p.redacted}
            if p.redacted is not None
            else {"type": "thinking", "thinking": p.text, "signature": p.signature}
            for p in reasoning
        ]
    return out


def tool_call_json(call: ir.ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def render_response(resp: ir.Response) -> dict[str, Any]:
    text = "".join(p.text for p in resp.parts if isinstance(p, ir.Text))
    calls = [tool_call_json(p) for p in resp.parts if isinstance(p, ir.ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    message.update(reasoning_fields(resp.parts))
    out: dict[str, Any] = {
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": resp.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH_TO_CHAT[resp.finish]}],
    }
    if resp.usage is not None:
        out["usage"] = usage_json(resp.usage)
    return out


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
_ERROR_TYPES |= {404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}


def error_json(status: int, message: str, *, kind: str | None = None, code: Any = None) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = kind or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
