"""Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse`` as a target wire format.

Shapes that differ and how they map:

* roles are ``user`` and ``model``; the system prompt is ``systemInstruction``;
* tool calls carry no id (or one the client never sees) and tool results name the *function*, so
  a result finds its function's name through the call with the same id earlier in the
  conversation. The ids the gateway hands out carry Gemini's ``thoughtSignature`` (which Gemini 3
  requires back with each function call): ``call_<random>`` or ``call_<random>__ts_<signature>``,
  the signature base64url-encoded so the id stays within ``[A-Za-z0-9_-]`` (Anthropic's rule, for a
  conversation that later moves to Claude);
* a function result is an object: ``{"result": text}`` (``{"error": text}`` when it failed);
* schemas go as ``parametersJsonSchema`` / ``responseJsonSchema``, which take JSON Schema as is (the
  older ``parameters`` / ``responseSchema`` accept only an OpenAPI subset and reject common schemas);
* image URLs become ``fileData`` with a MIME type from the file extension; the gateway never
  fetches a URL itself (that would be a server-side request forgery hole), so an URL without a
  known image extension is refused: send it base64.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .. import _json
from ..providers.sse import SSEEvent
from . import ir
from ._fields import bad, refuse

EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_IMAGE_TYPES |= {".gif": "image/gif", ".heic": "image/heic", ".heif": "image/heif"}
_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})
_SIGNATURE = "__ts_"
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


# -- tool call ids ---------------------------------------------------------------------------------------


_TO_URLSAFE = str.maketrans("+/", "-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")


def call_id(signature: str | None) -> str:
    base = "call_" + os.urandom(8).hex()
    if not signature or not _BASE64.fullmatch(signature):
        return base
    # Character for character (no decoding), so the signature comes back byte-exact.
    return base + _SIGNATURE + signature.rstrip("=").translate(_TO_URLSAFE)


def signature_of(call: str) -> str | None:
    _, sep, encoded = call.partition(_SIGNATURE)
    if not sep or not encoded:
        return None
    return encoded.translate(_FROM_URLSAFE) + "=" * (-len(encoded) % 4)


# -- request ---------------------------------------------------------------------------------------------


def build_request(req: ir.Request, target: str) -> dict[str, Any]:
    """IR -> a ``generateContent`` body (the model goes in the URL)."""
    if req.extras:
        raise refuse(next(iter(req.extras)), target)
    if req.n is not None and req.n > 1:
        raise refuse("n > 1", target)
    if req.logprobs or req.top_logprobs is not None:
        raise refuse("logprobs", target)
    if req.parallel_tool_calls is False:
        raise refuse("parallel_tool_calls false", target, "Gemini cannot forbid parallel calls")
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, ir.ToolCall)}
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for m, msg in enumerate(req.messages):
        if msg.role == "system":
            system.extend({"text": p.text} for p in msg.parts if isinstance(p, ir.Text))
            continue
        role = "model" if msg.role == "assistant" else "user"
        parts = [p for p in (_part(part, names, target, f"messages[{m}]") for part in msg.parts) if p is not None]
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(req, target)
    if config:
        body["generationConfig"] = config
    if req.tools:
        declarations = []
        for tool in req.tools:
            declaration: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                declaration["description"] = tool.description
            if tool.parameters is not None:
                declaration["parametersJsonSchema"] = tool.parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
    if req.tool_choice is not None:
        modes = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
        calling: dict[str, Any] = {"mode": modes[req.tool_choice.mode]}
        if req.tool_choice.mode == "tool":
            calling["allowedFunctionNames"] = [req.tool_choice.name]
        body["toolConfig"] = {"functionCallingConfig": calling}
    return body


def _generation_config(req: ir.Request, target: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    pairs = (
        ("maxOutputTokens", req.max_tokens),
        ("temperature", req.temperature),
        ("topP", req.top_p),
        ("topK", req.top_k),
        ("seed", req.seed),
        ("presencePenalty", req.presence_penalty),
        ("frequencyPenalty", req.frequency_penalty),
    )
    for key, value in pairs:
        if value is not None:
            config[key] = value
    if req.stop:
        config["stopSequences"] = req.stop
    fmt = req.response_format
    if fmt is not None and fmt.kind != "text":
        config["responseMimeType"] = "application/json"
        if fmt.kind == "json_schema":
            config["responseJsonSchema"] = fmt.schema or {}
    budget = req.reasoning_budget
    if budget is None and req.reasoning_effort is not None:
        if req.reasoning_effort not in EFFORT_BUDGETS:
            raise refuse(f"reasoning_effort {req.reasoning_effort[:20]!r}", target)
        budget = EFFORT_BUDGETS[req.reasoning_effort]
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    return config


def _part(part: ir.Part, names: dict[str, str], target: str, where: str) -> dict[str, Any] | None:
    if isinstance(part, ir.Text):
        return {"text": part.text} if part.text else None
    if isinstance(part, ir.Image):
        return _media(part, where)
    if isinstance(part, ir.ToolCall):
        try:
            args = json.loads(part.arguments) if part.arguments.strip() else {}
        except ValueError:
            raise bad(f"{where} tool call {part.id[:40]!r}", "arguments are not valid JSON") from None
        out: dict[str, Any] = {"functionCall": {"name": part.name, "args": args}}
        signature = signature_of(part.id)
        if signature is not None:
            out["thoughtSignature"] = signature
        return out
    if isinstance(part, ir.ToolResult):
        name = names.get(part.call_id)
        if name is None:
            raise bad(where, f"tool result {part.call_id[:40]!r} answers no earlier tool call")
        if any(isinstance(c, ir.Image) for c in part.content):
            raise refuse(f"{where}: an image in a tool result", target)
        text = "".join(c.text for c in part.content if isinstance(c, ir.Text))
        return {"functionResponse": {"name": name, "response": {"error" if part.is_error else "result": text}}}
    if isinstance(part, ir.Reasoning):
        return None  # Gemini's thoughts are summaries; what it needs back rides in the tool-call ids
    if isinstance(part, ir.Audio):
        return {"inlineData": {"mimeType": f"audio/{part.format}", "data": part.data}}
    if part.data is None:  # ir.File
        raise refuse(f"{where}: a file by file_id", target, "send the file's data")
    return {"inlineData": {"mimeType": part.media_type or "application/pdf", "data": part.data}}


def _media(part: ir.Image, where: str) -> dict[str, Any]:
    if part.url is None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.data}}
    ext = os.path.splitext(part.url.split("?", 1)[0].split("#", 1)[0])[1].lower()
    mime = _IMAGE_TYPES.get(ext)
    if mime is None:
        raise bad(where, "an image URL without a known image extension; send it as a base64 data URL")
    return {"fileData": {"mimeType": mime, "fileUri": part.url}}


# -- answers ---------------------------------------------------------------------------------------------


def usage_from_json(raw: Any) -> ir.Usage | None:
    if not isinstance(raw, dict):
        return None

    def count(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) else None

    thoughts = count("thoughtsTokenCount")
    return ir.Usage(
        input_tokens=(count("promptTokenCount") or 0) + (count("toolUsePromptTokenCount") or 0),
        output_tokens=(count("candidatesTokenCount") or 0) + (thoughts or 0),
        cached_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def finish_from_gemini(reason: Any, called: bool) -> ir.FinishReason:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called else "stop"


def _candidate(body: dict[str, Any]) -> dict[str, Any]:
    candidates = body.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def parts_of(candidate: dict[str, Any]) -> list[ir.Part]:
    out: list[ir.Part] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        if "functionCall" in part:
            call = part.get("functionCall") or {}
            args = call.get("args") if call.get("args") is not None else {}
            out.append(ir.ToolCall(call_id(signature), str(call.get("name") or ""), json.dumps(args)))
        elif part.get("thought") and isinstance(part.get("text"), str):
            out.append(ir.Reasoning(part["text"]))
        elif isinstance(part.get("text"), str):
            out.append(ir.Text(part["text"]))
    return out


def parse_response(body: dict[str, Any]) -> ir.Response:
    candidate = _candidate(body)
    parts = parts_of(candidate)
    reason = candidate.get("finishReason")
    if not candidate and (body.get("promptFeedback") or {}).get("blockReason"):
        reason = "SAFETY"  # the prompt itself was blocked: no candidate at all
    return ir.Response(
        id=str(body.get("responseId") or ""),
        model=str(body.get("modelVersion") or ""),
        parts=parts,
        finish=finish_from_gemini(reason, any(isinstance(p, ir.ToolCall) for p in parts)),
        usage=usage_from_json(body.get("usageMetadata")),
    )


class GeminiStreamDecoder:
    """``streamGenerateContent?alt=sse`` events (each a partial ``GenerateContentResponse``) -> IR.

    Gemini sends function calls whole, so each one is a `ToolCallStart` plus one `ToolCallDelta`;
    usage is cumulative on every chunk that has it.
    """

    __slots__ = ("_started", "_calls", "_finished")

    def __init__(self) -> None:
        self._started = False
        self._calls = 0
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, event: SSEEvent) -> list[ir.Event]:
        if not event.data:
            return []
        obj = _json.loads(event.data)
        if not isinstance(obj, dict):
            return []
        error = obj.get("error")
        if isinstance(error, dict):
            return [ir.StreamError(str(error.get("message") or "upstream error"))]
        out: list[ir.Event] = []
        if not self._started:
            self._started = True
            out.append(ir.Start(str(obj.get("responseId") or ""), str(obj.get("modelVersion") or "")))
        candidate = _candidate(obj)
        for part in parts_of(candidate):
            if isinstance(part, ir.Text):
                out.append(ir.TextDelta(part.text))
            elif isinstance(part, ir.Reasoning):
                out.append(ir.ReasoningDelta(part.text))
            elif isinstance(part, ir.ToolCall):
                out.append(ir.ToolCallStart(self._calls, part.id, part.name))
                out.append(ir.ToolCallDelta(self._calls, part.arguments))
                self._calls += 1
        usage = usage_from_json(obj.get("usageMetadata"))
        if usage is not None:
            out.append(ir.UsageUpdate(usage))
        reason = candidate.get("finishReason")
        if reason is None and not candidate and (obj.get("promptFeedback") or {}).get("blockReason"):
            reason = "SAFETY"
        if reason is not None:
            self._finished = True
            out.append(ir.Finish(finish_from_gemini(reason, self._calls > 0)))
        return out


# -- count tokens and embeddings ---------------------------------------------------------------------------


def count_tokens_request(req: ir.Request, model: str, target: str) -> dict[str, Any]:
    """``models/{m}:countTokens`` counts a whole generate request, system prompt and tools included."""
    inner = build_request(req, target)
    inner.pop("generationConfig", None)  # counting needs no sampling settings
    return {"generateContentRequest": {"model": f"models/{model}", **inner}}


def embed_request(inputs: list[str], model: str, dimensions: int | None) -> dict[str, Any]:
    requests = []
    for text in inputs:
        one: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            one["outputDimensionality"] = dimensions
        requests.append(one)
    return {"requests": requests}
