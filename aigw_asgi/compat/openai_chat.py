"""OpenAI Chat Completions, both as a surface (what clients send) and as a target wire format.

Surface: `parse_request` reads a client body into the IR, `render_response` writes the answer
back, `error_body` is the error shape the OpenAI SDK parses. Target: `build_request` writes the
body for an OpenAI-compatible provider (used when the client spoke another surface), and
`parse_response` reads its answer. A chat client talking to an OpenAI-compatible provider never
comes here: its body passes through with ``model`` rewritten. Streams: `openai_chat_stream`.

Conventions beyond OpenAI's own schema, as other gateways (DeepSeek, OpenRouter, LiteLLM) use them:
reasoning comes back as ``message.reasoning_content`` and, when it carries a signature that must be
replayed (Anthropic thinking), as ``message.thinking_blocks``; both are read back on assistant
messages.
"""

from __future__ import annotations

import json
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
_FINISH_FROM_CHAT: dict[str, ir.FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
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


# -- target: request ------------------------------------------------------------------------------------


def build_request(
    req: ir.Request, model: str, target: str, *, completion_tokens: bool, stream_usage: bool, top_k: bool
) -> dict[str, Any]:
    """IR -> a Chat Completions body for an OpenAI-compatible provider.

    ``completion_tokens``: the provider wants ``max_completion_tokens`` (OpenAI, Azure: reasoning
    models refuse ``max_tokens``); others get the ``max_tokens`` every compatible server knows.
    ``stream_usage``: it accepts ``stream_options.include_usage`` (asked always, for accounting).
    ``top_k``: it accepts the non-standard ``top_k`` (not OpenAI's own API).
    """
    if req.extras:
        raise refuse(next(iter(req.extras)), target)
    body: dict[str, Any] = {
        "model": model,
        "messages": [m for msg in req.messages for m in _chat_messages(msg, target)],
    }
    if req.max_tokens is not None:
        body["max_completion_tokens" if completion_tokens else "max_tokens"] = req.max_tokens
    if req.top_k is not None:
        if not top_k:
            raise refuse("top_k", target)
        body["top_k"] = req.top_k
    for key in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "n", "logprobs"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.top_logprobs is not None:
        body["top_logprobs"] = req.top_logprobs
    if req.stop:
        body["stop"] = req.stop
    if req.tools:
        body["tools"] = [_chat_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        mode = req.tool_choice.mode
        body["tool_choice"] = (
            {"type": "function", "function": {"name": req.tool_choice.name}} if mode == "tool" else mode
        )
    if req.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    fmt = req.response_format
    if fmt is not None:
        if fmt.kind == "json_schema":
            spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
            if fmt.description:
                spec["description"] = fmt.description
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            body["response_format"] = {"type": fmt.kind}
    effort = req.reasoning_effort or _effort_for_budget(req.reasoning_budget)
    if effort is not None:
        body["reasoning_effort"] = effort
    if req.user is not None:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def _effort_for_budget(budget: int | None) -> str | None:
    """Anthropic/Gemini thinking budgets -> OpenAI's coarse effort levels (docs/compat.md)."""
    if budget is None:
        return None
    if budget == 0:
        return "none"
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


def _chat_tool(tool: ir.Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _image_url(part: ir.Image) -> dict[str, Any]:
    url = part.url if part.url is not None else f"data:{part.media_type};base64,{part.data}"
    image: dict[str, Any] = {"url": url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _chat_messages(msg: ir.Message, target: str) -> list[dict[str, Any]]:
    if msg.role == "system":
        return [{"role": "system", "content": "".join(p.text for p in msg.parts if isinstance(p, ir.Text))}]
    if msg.role == "tool":
        out = []
        for part in msg.parts:
            assert isinstance(part, ir.ToolResult)
            if any(isinstance(c, ir.Image) for c in part.content):
                raise refuse("an image in a tool result", target)
            text = "".join(c.text for c in part.content if isinstance(c, ir.Text))
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": text})
        return out
    if msg.role == "assistant":
        message: dict[str, Any] = {"role": "assistant"}
        text = "".join(p.text for p in msg.parts if isinstance(p, ir.Text))
        calls = [tool_call_json(p) for p in msg.parts if isinstance(p, ir.ToolCall)]
        message["content"] = text if text or not calls else None
        if calls:
            message["tool_calls"] = calls
        return [message]
    content: list[dict[str, Any]] = []
    for part in msg.parts:
        if isinstance(part, ir.Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ir.Image):
            content.append(_image_url(part))
        elif isinstance(part, ir.Audio):
            content.append({"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}})
        elif isinstance(part, ir.File):
            file: dict[str, Any] = {}
            if part.file_id is not None:
                file["file_id"] = part.file_id
            if part.data is not None:
                file["file_data"] = f"data:{part.media_type};base64,{part.data}"
            if part.filename is not None:
                file["filename"] = part.filename
            content.append({"type": "file", "file": file})
        elif isinstance(part, ir.ToolResult):  # a tool result inside a user turn (Anthropic shape)
            raise AssertionError("tool results are split into tool messages by the surface parsers")
    if len(content) == 1 and content[0]["type"] == "text":
        return [{"role": "user", "content": content[0]["text"]}]
    return [{"role": "user", "content": content}]


# -- target: answers ------------------------------------------------------------------------------------


def usage_from_json(raw: Any) -> ir.Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    cached = prompt.get("cached_tokens") if isinstance(prompt, dict) else None
    if cached is None:
        cached = raw.get("prompt_cache_hit_tokens")  # DeepSeek
    reasoning = completion.get("reasoning_tokens") if isinstance(completion, dict) else None
    return ir.Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=cached if isinstance(cached, int) else None,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else None,
    )


def finish_from_chat(reason: Any) -> ir.FinishReason:
    return _FINISH_FROM_CHAT.get(reason, "stop") if isinstance(reason, str) else "stop"


def parse_response(body: dict[str, Any]) -> ir.Response:
    """An OpenAI-compatible chat answer -> IR (the first choice: ``n`` > 1 is never asked)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[ir.Part] = []
    for block in message.get("thinking_blocks") or []:
        if isinstance(block, dict):
            if block.get("type") == "redacted_thinking":
                parts.append(ir.Reasoning(redacted=str(block.get("data") or "")))
            else:
                parts.append(ir.Reasoning(str(block.get("thinking") or ""), block.get("signature")))
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning and not parts:
        parts.append(ir.Reasoning(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(ir.Text(content))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(ir.Text(refusal))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # some servers send an object
            arguments = json.dumps(arguments if arguments is not None else {})
        parts.append(ir.ToolCall(str(call.get("id") or ""), str(function.get("name") or ""), arguments))
    finish = finish_from_chat(choice.get("finish_reason"))
    if finish == "stop" and isinstance(refusal, str) and refusal:
        finish = "content_filter"
    return ir.Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish=finish,
        usage=usage_from_json(body.get("usage")),
        created=created if isinstance(created := body.get("created"), int) else 0,
    )
