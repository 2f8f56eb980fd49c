"""The error event the gateway appends when an upstream breaks mid-stream, in each stream's format.

Once the first byte is relayed the status line is gone: the only honest way left to say "this
answer is cut" is an event the client's SDK raises on (SPEC §4, never a silent 200).
"""

from __future__ import annotations

import json
from typing import Any


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_event(fmt: str, message: str, *, code: int = 2005) -> bytes:
    """An error event in the stream's own format, for an upstream that broke after the first byte.

    SPEC §4: never a silent 200. Each shape is what that provider's SDK turns into an exception:
    OpenAI's reads ``{"error":…}`` in any data event, Anthropic's an ``error`` event, Ollama's an
    ``{"error":…}`` line. ``code`` is the gateway's error code (2005 unreachable, 2006 timeout).
    """
    if fmt == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + _dumps(body) + b"\n\n"
    if fmt == "gemini":
        body = {"error": {"code": code, "message": message, "status": "UNAVAILABLE"}}
        return b"data: " + _dumps(body) + b"\r\n\r\n"  # Gemini frames its events with CRLF
    if fmt == "cohere":
        body = {"type": "error", "error": {"code": code, "message": message}}
        return b"event: error\ndata: " + _dumps(body) + b"\n\n"
    if fmt == "ollama":
        return _dumps({"error": message}) + b"\n"
    body = {"error": {"message": message, "type": "gateway_error", "param": None, "code": code}}
    return b"data: " + _dumps(body) + b"\n\n"
