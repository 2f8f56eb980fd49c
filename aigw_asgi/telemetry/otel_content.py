"""Opt-in prompt/answer capture for spans (``telemetry.capture_content``; off by default).

``gen_ai.input.messages`` / ``output.messages`` / ``system_instructions`` as JSON strings in the
conventions' ``{role, parts:[{type, content}]}`` shape (semantic-conventions-genai,
gen-ai-input-messages.json). Text parts only; other parts keep just their type, and a streamed
answer's output is not reassembled. Prompts are sensitive: this runs only when asked.
"""

from __future__ import annotations

import json
from typing import Any

from ..context import RequestContext
from . import semconv as sc


def content_attributes(attributes: dict[str, Any], ctx: RequestContext) -> None:
    """Add the content attributes for the attempt that answered ``ctx``."""
    body = ctx.json() if ctx.body and ctx.body[:1] == b"{" else None
    if isinstance(body, dict):
        messages: list[dict[str, Any]] = []
        system = body.get("system") or body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(body.get("messages"), list):
            for m in body["messages"]:
                if isinstance(m, dict):
                    if m.get("role") in ("system", "developer") and system is None:
                        system = m.get("content")
                        continue
                    messages.append({"role": m.get("role", "user"), "parts": _parts(m.get("content"))})
        elif isinstance(body.get("contents"), list):  # Gemini
            for c in body["contents"]:
                if isinstance(c, dict):
                    messages.append({"role": c.get("role", "user"), "parts": _parts(c.get("parts"))})
        else:
            prompt = body.get("prompt", body.get("input"))
            if prompt is not None:
                messages.append({"role": "user", "parts": _parts(prompt)})
        if messages:
            attributes[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(messages, ensure_ascii=False)
        if system is not None:
            parts = _parts(system.get("parts") if isinstance(system, dict) else system)
            attributes[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps(parts, ensure_ascii=False)
    if not ctx.stream and ctx.response_body and ctx.response_body[:1] == b"{":
        try:
            answer = json.loads(ctx.response_body)
        except (ValueError, UnicodeDecodeError):
            return  # compressed, or cut at the log cap
        output = _output_messages(answer)
        if output:
            attributes[sc.GEN_AI_OUTPUT_MESSAGES] = json.dumps(output, ensure_ascii=False)


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for item in content:
            if isinstance(item, str):
                parts.append({"type": "text", "content": item})
            elif isinstance(item, dict):
                text = item.get("text")
                if isinstance(text, str):
                    parts.append({"type": "text", "content": text})
                else:
                    parts.append({"type": str(item.get("type", "unknown"))})
    return parts


def _output_messages(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict):
        return []
    out: list[dict[str, Any]] = []
    if isinstance(answer.get("choices"), list):  # OpenAI chat / completions
        for choice in answer["choices"]:
            if isinstance(choice, dict):
                message = choice.get("message") or {}
                content = message.get("content") if isinstance(message, dict) else None
                out.append(
                    {
                        "role": "assistant",
                        "parts": _parts(content if content is not None else choice.get("text")),
                        "finish_reason": choice.get("finish_reason") or "",
                    }
                )
    elif answer.get("type") == "message":  # Anthropic
        out.append(
            {"role": "assistant", "parts": _parts(answer.get("content")), "finish_reason": answer.get("stop_reason")}
        )
    elif isinstance(answer.get("candidates"), list):  # Gemini
        for candidate in answer["candidates"]:
            if isinstance(candidate, dict):
                content = candidate.get("content") or {}
                out.append(
                    {
                        "role": "assistant",
                        "parts": _parts(content.get("parts") if isinstance(content, dict) else None),
                        "finish_reason": str(candidate.get("finishReason", "")).lower(),
                    }
                )
    return out
