"""OpenAI Chat Completions as a target wire format: the body for an OpenAI-compatible provider
(when the client spoke another surface) and the reading of its answers."""

from __future__ import annotations

import json
from typing import Any

from . import ir
from ._fields import refuse
from .openai_chat import tool_call_json

_FINISH_FROM_CHAT: dict[str, ir.FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


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
