"""A fake provider realtime WebSocket (pure ASGI) speaking OpenAI Realtime and Gemini Live.

`FakeUpstream` hands it every WebSocket scope, so a gateway pointed at the fake upstream for HTTP
reaches it for realtime too (``ws://fake/v1/realtime``, ``ws://fake/openai/realtime``,
``ws://fake/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent``).
A path containing ``BidiGenerateContent`` speaks Gemini Live, anything else OpenAI Realtime (GA
event names; the beta ones when the client sent ``OpenAI-Beta: realtime=v1``).

OpenAI Realtime, answers per client event::

    (on connect)                session.created {session: {model}}
    session.update              session.updated (the session with the client's changes)
    response.create             response.created, ``audio_deltas`` × response.output_audio.delta
                                (base64 PCM16), a transcript delta, response.done {usage}
    anything else               nothing (recorded)

Gemini Live (server messages go out as binary frames holding JSON, as Google sends them)::

    setup                       setupComplete
    clientContent               serverContent {modelTurn: text + inlineData audio}, then
                                serverContent {turnComplete} with usageMetadata
    realtimeInput               nothing (recorded)

Test controls, in either dialect::

    a binary frame                                   echoed back unchanged
    {"type": "fake.echo", ...}                       echoed back unchanged (text)
    {"type": "fake.close", "code": C, "reason": R}   the fake closes with C and R
    {"type": "fake.drop"}                            the fake drops the connection, no close frame
    {"type": "fake.flood", "count": N, "size": S}    N binary frames of S bytes, as fast as the
                                                     connection takes them (``session.sent``)
    {"type": "fake.big", "size": S}                  one text frame of S bytes

Steering: ``fake.refuse(401, times=1)`` (or ``?fake_status=401`` on the URL, which a browser can
send) answers the next handshakes with that HTTP status and an OpenAI-style error body; ``usage``
(input, output, cached tokens per response/turn) and ``audio_deltas`` set what responses report.
Recording: ``fake.sessions`` (`RealtimeSession`: path, query, headers, offered and accepted
subprotocols, frames received, frames sent, the close code and reason the gateway sent, a
``closed`` event); ``fake.wait_for_sessions(n)``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PCM_CHUNK = bytes(range(256)) * 4  # 1 KiB of "audio"


@dataclass
class RealtimeSession:
    """One session as the fake saw it (filled from the server's thread; read from the test's)."""

    path: str
    query_string: str
    headers: dict[str, str]
    subprotocols: list[str]
    accepted: str | None = None
    received: list[str | bytes] = field(default_factory=list)
    sent: int = 0  # frames the fake managed to send
    close_code: int | None = None  # what the gateway closed the fake's socket with
    close_reason: str | None = None
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def events(self) -> list[dict[str, Any]]:
        """The client's JSON text frames, parsed."""
        return [json.loads(f) for f in self.received if isinstance(f, str) and f.startswith("{")]


class FakeRealtime:
    """The realtime half of the fake provider; see the module docstring."""

    def __init__(self) -> None:
        self.sessions: list[RealtimeSession] = []
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.sessions = []
            self._refusals: list[int] = []
        self.usage = (12, 34, 2)  # input, output, cached input tokens per response / turn
        self.audio_deltas = 3
        self.model = "gpt-realtime"

    def refuse(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` handshakes with HTTP ``status``."""
        with self._lock:
            self._refusals.extend([status] * times)

    def wait_for_sessions(self, n: int = 1, timeout_s: float = 10.0) -> list[RealtimeSession]:
        deadline = time.monotonic() + timeout_s
        while len(self.sessions) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} realtime sessions, got {len(self.sessions)}")
            time.sleep(0.005)
        return list(self.sessions)

    @property
    def last(self) -> RealtimeSession:
        assert self.sessions, "the fake realtime server saw no session"
        return self.sessions[-1]

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        session = RealtimeSession(
            path=scope["path"],
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            subprotocols=list(scope.get("subprotocols") or ()),
        )
        with self._lock:
            self.sessions.append(session)
            status = self._refusals.pop(0) if self._refusals else None
        if status is None and session.query.get("fake_status"):
            status = int(session.query["fake_status"][0])  # steering a browser can send
        if status is not None:
            body = json.dumps(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": None}}
            ).encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
            session.closed_at = time.monotonic()
            session.closed.set()
            return
        gemini = "BidiGenerateContent" in session.path
        session.accepted = "realtime" if "realtime" in session.subprotocols else None
        await send({"type": "websocket.accept", "subprotocol": session.accepted})
        dialect = _Gemini(self, session, send) if gemini else _OpenAI(self, session, send)
        try:
            await dialect.opened()
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    session.close_code = message.get("code")
                    session.close_reason = message.get("reason")
                    return
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                session.received.append(data)
                if isinstance(data, bytes) and not gemini:
                    await dialect.emit_bytes(data)  # binary frames are echoed
                    continue
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                if await dialect.control(event, data) == "drop":
                    return  # returning without a close frame makes uvicorn drop the connection
                await dialect.handle(event)
        finally:
            await dialect.stop()
            session.closed_at = time.monotonic()
            session.closed.set()


class _Dialect:
    def __init__(self, fake: FakeRealtime, session: RealtimeSession, send: Send) -> None:
        self.fake = fake
        self.session = session
        self._send = send
        self.tasks: set[asyncio.Task[None]] = set()

    async def emit_bytes(self, data: bytes) -> None:
        await self._send({"type": "websocket.send", "bytes": data})
        self.session.sent += 1

    async def emit_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})
        self.session.sent += 1

    async def emit(self, event: dict[str, Any]) -> None:
        await self.emit_text(json.dumps(event))

    async def opened(self) -> None:
        return None

    async def handle(self, event: dict[str, Any]) -> None:
        return None

    async def control(self, event: dict[str, Any], raw: str | bytes) -> str | None:
        kind = event.get("type")
        if kind == "fake.echo":
            await self.emit_text(raw if isinstance(raw, str) else raw.decode())
        elif kind == "fake.close":
            code, reason = event.get("code", 1000), event.get("reason", "")
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        elif kind == "fake.drop":
            return "drop"
        elif kind == "fake.big":
            await self.emit_text("x" * int(event["size"]))
        elif kind == "fake.flood":
            task = asyncio.get_running_loop().create_task(self._flood(int(event["count"]), int(event["size"])))
            self.tasks.add(task)
        return None

    async def _flood(self, count: int, size: int) -> None:
        payload = os.urandom(size)  # incompressible: permessage-deflate cannot shrink the flood
        for i in range(count):
            await self.emit_bytes(i.to_bytes(4, "big") + payload[4:])

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError):
                await task


class _OpenAI(_Dialect):
    """OpenAI Realtime event shapes (GA names, or the beta ones for ``OpenAI-Beta: realtime=v1``)."""

    def __init__(self, fake: FakeRealtime, session: RealtimeSession, send: Send) -> None:
        super().__init__(fake, session, send)
        self.beta = "realtime=v1" in session.headers.get("openai-beta", "")
        model = session.query.get("model", [fake.model])[0]
        self.state: dict[str, Any] = {
            "id": "sess_fake",
            "object": "realtime.session",
            "type": "realtime",
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
        }
        self.counter = 0

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter:04d}"

    async def opened(self) -> None:
        await self.emit({"type": "session.created", "event_id": self._id("event"), "session": self.state})

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            self.state.update(event.get("session") or {})
            await self.emit({"type": "session.updated", "event_id": self._id("event"), "session": self.state})
        elif kind == "response.create":
            await self._respond()

    async def _respond(self) -> None:
        tokens_in, tokens_out, cached = self.fake.usage
        response_id, item_id = self._id("resp"), self._id("item")
        response = {"id": response_id, "object": "realtime.response", "status": "in_progress", "output": []}
        await self.emit({"type": "response.created", "event_id": self._id("event"), "response": response})
        audio = "response.audio.delta" if self.beta else "response.output_audio.delta"
        transcript = "response.audio_transcript.delta" if self.beta else "response.output_audio_transcript.delta"
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        for _ in range(self.fake.audio_deltas):
            delta = base64.b64encode(PCM_CHUNK).decode()
            await self.emit({"type": audio, "event_id": self._id("event"), **where, "delta": delta})
        await self.emit({"type": transcript, "event_id": self._id("event"), **where, "delta": "Hello there."})
        usage = {
            "total_tokens": tokens_in + tokens_out,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "input_token_details": {"cached_tokens": cached, "text_tokens": tokens_in, "audio_tokens": 0},
            "output_token_details": {"text_tokens": 4, "audio_tokens": tokens_out - 4},
        }
        done = {**response, "status": "completed", "usage": usage}
        await self.emit({"type": "response.done", "event_id": self._id("event"), "response": done})


class _Gemini(_Dialect):
    """Gemini Live message shapes; server messages are JSON in binary frames."""

    async def emit(self, event: dict[str, Any]) -> None:
        await self.emit_bytes(json.dumps(event).encode())

    async def handle(self, event: dict[str, Any]) -> None:
        if "setup" in event:
            await self.emit({"setupComplete": {}})
        elif "clientContent" in event:
            tokens_in, tokens_out, cached = self.fake.usage
            audio = base64.b64encode(PCM_CHUNK).decode()
            parts = [{"text": "Hello there."}, {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": audio}}]
            await self.emit({"serverContent": {"modelTurn": {"role": "model", "parts": parts}}})
            usage = {
                "promptTokenCount": tokens_in,
                "cachedContentTokenCount": cached,
                "responseTokenCount": tokens_out,
                "totalTokenCount": tokens_in + tokens_out,
            }
            done = {"generationComplete": True, "turnComplete": True}
            await self.emit({"serverContent": done, "usageMetadata": usage})
