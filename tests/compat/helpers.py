"""Helpers for the translation tests: SSE bytes in, parsed events out, and SDK shape checks."""

from __future__ import annotations

import json
from typing import Any

from aigw_asgi.compat import ir
from aigw_asgi.providers.sse import SSEParser


def sse(obj: Any, event: str | None = None) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


def decode(decoder: Any, raw: bytes) -> list[ir.Event]:
    """Run ``raw`` (a whole SSE stream) through a wire decoder, split at an awkward place."""
    parser = SSEParser()
    cut = len(raw) // 3  # chunk boundaries fall inside events
    events = parser.feed(raw[:cut]) + parser.feed(raw[cut:]) + parser.flush()
    out: list[ir.Event] = []
    for event in events:
        out.extend(decoder.feed(event))
    return out


def encode(encoder: Any, events: list[ir.Event]) -> list[tuple[str | None, dict[str, Any] | str]]:
    """Run IR events through a surface encoder; return the SSE events it wrote, parsed."""
    raw = b"".join(encoder.feed(e) for e in events) + encoder.finish()
    parsed = []
    for event in SSEParser().feed(raw):
        data = event.data.decode()
        parsed.append((event.event, data if data == "[DONE]" else json.loads(data)))
    return parsed
