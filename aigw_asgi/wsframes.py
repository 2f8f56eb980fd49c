"""WebSocket API frames (SPEC §10), as pure functions: parse what a client sends, shape what it gets.

Unit-tested without a socket; websocket.py runs the session around them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from . import _json
from .errors import GatewayError, InvalidRequest
from .headers import header
from .types import Headers, Message

MAX_EVENT_ID = 256
_MESSAGE_CHARS = 500  # error messages taken from upstream bodies are cut to this


@dataclass(slots=True)
class Create:
    """A valid ``universal.create`` frame: its ``eventId`` and the universal body to run."""

    event_id: str
    payload: Any  # what POST / accepts: a step object or an array of steps (eventId removed)


class FrameError(Exception):
    """A frame the gateway cannot run; answered with an error frame, the socket stays open."""

    def __init__(self, error: GatewayError, event_id: str | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.event_id = event_id


def _invalid(why: str, event_id: str | None = None) -> FrameError:
    return FrameError(InvalidRequest(f"Invalid frame: {why}"), event_id)


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_EVENT_ID:
        raise _invalid(f"eventId must be a non-empty string of at most {MAX_EVENT_ID} characters")
    # It becomes the internal requests' cf-aig-event-id: header rules apply.
    if any(c in value for c in "\r\n\x00"):
        raise _invalid("eventId must not contain line breaks")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise _invalid("eventId must be latin-1 text") from None
    return value


def _pop_event_id(step: Any) -> tuple[Any, Any]:
    """The step without its ``eventId`` (a shallow copy; the caller's object is left alone)."""
    if isinstance(step, dict) and "eventId" in step:
        step = dict(step)
        return step, step.pop("eventId")
    return step, None


def parse_frame(data: str | bytes) -> Create:
    """Read a client frame; raise `FrameError` (code 2004, naming the problem) for anything else.

    ``{"type": "universal.create", "request": {...step, "eventId"}}``; ``request`` may also be an
    array of steps, with ``eventId`` on the frame itself or on a step (the first one found wins).
    """
    try:
        frame = _json.loads(data)
    except _json.JSONDecodeError:
        raise _invalid("not JSON") from None
    if not isinstance(frame, dict):
        raise _invalid("expected a JSON object")
    frame_id = raw_id = frame.get("eventId")
    kind = frame.get("type")
    request = frame.get("request")
    if raw_id is None and isinstance(request, dict):
        raw_id = request.get("eventId")
    guess = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_EVENT_ID else None
    if kind is None:
        raise _invalid("missing type", guess)
    if kind != "universal.create":
        raise _invalid(f"unknown type {str(kind)[:64]!r} (expected 'universal.create')", guess)
    if request is None:
        raise _invalid("missing request", guess)
    if isinstance(request, dict):
        request, step_id = _pop_event_id(request)
        raw_id = frame_id if frame_id is not None else step_id
    elif isinstance(request, list):
        steps = []
        for step in request:
            step, step_id = _pop_event_id(step)
            if raw_id is None:
                raw_id = step_id
            steps.append(step)
        request = steps
    else:
        raise _invalid("request must be a step object or an array of steps", guess)
    if raw_id is None:
        raise _invalid("missing eventId")
    try:
        event_id = _event_id(raw_id)
    except FrameError as exc:
        exc.event_id = guess
        raise
    return Create(event_id, request)


def frame_size(message: Message) -> tuple[str | bytes, int]:
    """The frame's data and its size in bytes (UTF-8 length of text frames, counted lazily)."""
    text = message.get("text")
    if text is not None:
        n = len(text)
        return text, n if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    data = message.get("bytes") or b""
    return data, len(data)


def session_headers(headers: Headers) -> Headers:
    """The upgrade's ``cf-aig-*`` headers: every message's defaults (the gateway token excluded)."""
    return [(k, v) for k, v in headers if k.startswith(b"cf-aig-") and k != b"cf-aig-authorization"]


def error_frame(
    event_id: str | None, code: int, message: str, metadata: dict[str, Any] | None = None, response: Any = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "universal.error",
        "metadata": {"eventId": event_id, **(metadata or {})},
        "error": {"code": code, "message": message},
    }
    if response is not None:
        frame["response"] = response
    return frame


def decode_response(body: bytes) -> tuple[Any, str | None]:
    """The answer body as a frame's ``response``: parsed JSON, else text, else base64.

    Returns the value and the encoding to announce (``"base64"`` for binary answers, else None).
    """
    if body:
        try:
            return _json.loads(body), None
        except _json.JSONDecodeError:
            pass
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def _first_message(value: Any) -> str | None:
    """The human message of a provider error body, in the shapes providers use."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    error = value.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]  # OpenAI, Anthropic, Gemini
    errors = value.get("errors")  # Workers AI, Cloudflare envelopes
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        if isinstance(errors[0].get("message"), str):
            return errors[0]["message"]
    for key in ("message", "detail"):
        if isinstance(value.get(key), str):
            return value[key]
    return None


def error_from_answer(status: int, body: bytes) -> tuple[int, str, Any]:
    """``(code, message, response)`` for a non-2xx answer.

    The gateway's own envelope (``{"success": false, "error": [{"code", "message"}]}``) keeps its
    code and message and adds no ``response``; an upstream answer gets its HTTP status as the
    code, the message its body names, and the body itself as ``response``.
    """
    parsed, encoding = decode_response(body)
    if isinstance(parsed, dict) and parsed.get("success") is False and isinstance(parsed.get("error"), list):
        first = parsed["error"][0] if parsed["error"] else None
        if isinstance(first, dict) and isinstance(first.get("code"), int) and isinstance(first.get("message"), str):
            return first["code"], first["message"], None
    message = _first_message(parsed) if encoding is None else None
    if not message:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = f"HTTP {status}"
    if len(message) > _MESSAGE_CHARS:
        message = message[:_MESSAGE_CHARS] + "…"
    return status, message, parsed if body else None


def header_text(headers: Headers, name: bytes) -> str | None:
    value = header(headers, name)
    return None if value is None else value.decode("latin-1")
