"""What a realtime session's frames say about usage and the model: pure, per wire format.

The relay forwards every frame untouched; `SessionMeter` only *looks* at them, and cheaply: a
frame is parsed as JSON only when a substring says it is one of the few events that matter, so
the audio deltas that make up most of a session cost one bounded substring search each.

* OpenAI Realtime (``format = "openai"``, also Azure and custom providers): every
  ``response.done`` carries the ``usage`` of that response; a session's usage is their sum.
  ``session.created``/``session.updated`` name the model that answers.
* Gemini Live (``format = "gemini"``): server messages may carry ``usageMetadata`` (one per
  turn); summed the same way. The model is named by the client's first message,
  ``{"setup": {"model": "models/…"}}``.

Transcription usage (``conversation.item.input_audio_transcription.completed``) is billed for a
different model (the transcription one) and is not added to the session's tokens.
"""

from __future__ import annotations

from typing import Any

from .. import _json
from ..context import Usage

__all__ = ["SessionMeter", "add_usage"]

_HEAD = 256  # OpenAI puts "type" first (after at most an event_id): look no further for it


def _int(value: Any) -> int | None:
    if type(value) is int and value >= 0:
        return value
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _loads(data: str | bytes) -> dict[str, Any]:
    try:
        value = _json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def add_usage(total: Usage, part: Usage) -> None:
    """``total += part``, field by field; unknown (``None``) stays unknown only if both are."""
    for name in ("tokens_in", "tokens_out", "cached_tokens_in", "reasoning_tokens_out"):
        value = getattr(part, name)
        if value is not None:
            current = getattr(total, name)
            setattr(total, name, value if current is None else current + value)


def openai_usage(usage: dict[str, Any]) -> Usage:
    """``response.done``'s ``response.usage`` (input/output token counts, with details)."""
    details = _dict(usage.get("input_token_details"))
    return Usage(
        tokens_in=_int(usage.get("input_tokens")),
        tokens_out=_int(usage.get("output_tokens")),
        cached_tokens_in=_int(details.get("cached_tokens")),
    )


def gemini_usage(meta: dict[str, Any]) -> Usage:
    """Gemini Live ``usageMetadata``: like ``generateContent``'s, with ``responseTokenCount``."""
    prompt = _int(meta.get("promptTokenCount"))
    tool_prompt = _int(meta.get("toolUsePromptTokenCount"))
    response = _int(meta.get("responseTokenCount"))
    if response is None:
        response = _int(meta.get("candidatesTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    if response is None and thoughts is None:
        # proto3 JSON omits zero counts: with a total present, a missing output count is 0
        tokens_out = 0 if _int(meta.get("totalTokenCount")) is not None else None
    else:
        tokens_out = (response or 0) + (thoughts or 0)
    return Usage(
        tokens_in=None if prompt is None else prompt + (tool_prompt or 0),
        tokens_out=tokens_out,
        cached_tokens_in=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens_out=thoughts,
    )


class SessionMeter:
    """Usage and model of one session, read off its frames as they pass."""

    __slots__ = ("gemini", "usage", "model", "response_model", "_setup_pending")

    def __init__(self, fmt: str, model: str | None = None) -> None:
        self.gemini = fmt == "gemini"
        self.usage = Usage()
        self.model = model
        self.response_model: str | None = None
        self._setup_pending = self.gemini

    def client_frame(self, data: str | bytes) -> None:
        """A frame from the client (Gemini's setup message names the model)."""
        if not self._setup_pending:
            return
        head = data[:_HEAD]
        found = '"setup"' in head if isinstance(head, str) else b'"setup"' in head
        if not found:
            return
        self._setup_pending = False
        model = _dict(_loads(data).get("setup")).get("model")
        if isinstance(model, str) and model:
            self.model = model.removeprefix("models/")

    def upstream_frame(self, data: str | bytes) -> Usage | None:
        """A frame from the provider; returns the usage it reported (also added to ``usage``)."""
        if self.gemini:
            found = '"usageMetadata"' in data if isinstance(data, str) else b'"usageMetadata"' in data
            if not found:
                return None
            meta = _loads(data).get("usageMetadata")
            if not isinstance(meta, dict):
                return None
            part = gemini_usage(meta)
        else:
            head = data[:_HEAD]
            text = head if isinstance(head, str) else head.decode("utf-8", "replace")
            if '"response.done"' in text:
                event = _loads(data)
                if event.get("type") != "response.done":
                    return None
                usage = _dict(event.get("response")).get("usage")
                if not isinstance(usage, dict):
                    return None
                part = openai_usage(usage)
            elif '"session.created"' in text or '"session.updated"' in text:
                model = _dict(_loads(data).get("session")).get("model")
                if isinstance(model, str) and model:
                    self.response_model = model
                return None
            else:
                return None
        if not part.known():
            return None
        add_usage(self.usage, part)
        return part
