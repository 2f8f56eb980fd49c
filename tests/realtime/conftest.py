"""Helpers for the realtime pass-through tests: the gateway under uvicorn on the fake upstream,
whose WebSocket half (tests/fakes/realtime.py) plays the provider's realtime server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.fakes.realtime import FakeRealtime
from tests.fakes.upstream import RunningFake

OPENAI_PATH = "/openai/v1/realtime?model=gpt-realtime"
GEMINI_PATH = "/google-ai-studio/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
CLIENT_KEY = {"authorization": "Bearer sk-client-key"}


@pytest.fixture
def fake(fake_upstream: RunningFake) -> FakeRealtime:
    return fake_upstream.app.realtime


@contextmanager
def open_ws(server: Any, path: str = OPENAI_PATH, **kwargs: Any) -> Iterator[ClientConnection]:
    kwargs.setdefault("additional_headers", CLIENT_KEY)
    with connect(f"{server.ws_url}{path}", open_timeout=10, close_timeout=5, **kwargs) as ws:
        yield ws


def recv_json(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    frame = ws.recv(timeout=timeout)
    return json.loads(frame)


def until(ws: ClientConnection, kind: str, timeout: float = 10) -> list[dict[str, Any]]:
    """OpenAI events up to and including the first of type ``kind``."""
    events = []
    while True:
        event = recv_json(ws, timeout)
        events.append(event)
        if event.get("type") == kind:
            return events


def rows(server: Any, **params: Any) -> list[dict[str, Any]]:
    """Log rows through the admin API (it flushes the log writer before reading)."""
    resp = httpx.get(f"{server.url}/admin/logs", params={"per_page": 100, **params}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]


def session_rows(server: Any, n: int = 1, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The realtime session rows once ``n`` of them are written (a row is written when its session
    ends, which on the gateway's side may come a moment after the client saw the close)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [r for r in rows(server) if (r["metadata"] or {}).get("realtime_closed_by")]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.fixture
def realtime_gateway(make_gateway: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
    """``realtime_gateway(**sections) -> (gateway, server)`` with caps and pings set for tests:
    nothing closes a session on its own unless a test asks (huge idle/session limits, no pings)."""

    def _make(**sections: Any) -> tuple[Any, Any]:
        realtime = {"idle_timeout_s": 3600, "max_session_s": 0, "ping_interval_s": 0, **sections.pop("realtime", {})}
        return make_gateway(realtime=realtime, **sections)

    return _make
