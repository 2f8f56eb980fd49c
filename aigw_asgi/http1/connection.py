"""One keep-alive connection to an origin: the request written, the answer parsed as it arrives.

- the request written at once (head and body); a header name or value with a line break or a
  NUL is refused (`InvalidRequest`), never written;
- the response parsed by httptools (llhttp, the parser of Node.js and of uvicorn): the status,
  the headers (names lowercased, values as sent), then the body as it arrives, whatever its
  framing (Content-Length, chunked, or until the server closes), 1xx interim answers skipped;
- ``upstream.idle_timeout_ms`` bounds every silence from the request to the end of the body with
  one timer per connection that re-arms itself only when it fires (`_Connection._on_idle`),
  instead of a timer cancelled and re-armed on every read or every request.

A connection hands itself back to its pool when an answer ends (`pool.Http1Transport`); `_Pool`
names what it needs of the pool, so this module does not import the pool that imports it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httptools

from ..errors import InvalidRequest
from .response import Http1Response

_WITH_LENGTH = frozenset({"POST", "PUT", "PATCH"})  # an empty body still says Content-Length: 0
_JOIN_BELOW = 64 * 1024  # smaller bodies are written with their head in one piece
_MAX_HEADER_BYTES = 256 * 1024  # an answer's headers past this are refused (a broken upstream)


class _Lost(Exception):
    """The connection ended before any of a response arrived (a pooled one may be stale); the
    message names the cause."""


class _Origin:
    """One scheme, host and port: its idle connections and what every request to it writes."""

    __slots__ = ("base", "host", "port", "tls", "host_line", "basic_auth", "idle")

    def __init__(
        self, base: str, host: str, port: int, tls: bool, host_line: str, basic_auth: str | None = None
    ) -> None:
        self.base = base
        self.host = host
        self.port = port
        self.tls = tls
        self.host_line = host_line
        self.basic_auth = basic_auth  # Authorization for "user:password@" in the URL, as aiohttp sent it
        self.idle: list[_Connection] = []


class _Pool(Protocol):
    """What a connection needs from its pool: `pool.Http1Transport`."""

    _idle_s: float | None

    def _release(self, conn: _Connection) -> None: ...

    def _slot_freed(self) -> None: ...


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its response parsed as it arrives."""

    def __init__(self, pool: _Pool, origin: _Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.resp: Http1Response | None = None
        self.closed = False
        self.counted = False  # holds one of the pool's `max_connections` slots
        self.paused = False
        self.requests = 0
        self.idle_since = 0.0
        self.last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._interim = False
        self._head_only = False
        self._until_close = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0

    # -- a request ------------------------------------------------------------------------------

    def send(self, data: bytes, body: bytes, head_only: bool) -> Http1Response:
        transport = self.transport
        assert transport is not None
        resp = self.resp = Http1Response(self, self.loop)
        self.requests += 1
        self._head_only = head_only
        if body and len(body) >= _JOIN_BELOW:
            transport.writelines((data, body))
        else:
            transport.write(data + body if body else data)
        idle_s = self.pool._idle_s
        if idle_s is not None:
            self.last_read = now = self.loop.time()
            if self._timer is None:  # else the last request's timer, still armed: it re-arms from last_read
                self._timer = self.loop.call_at(now + idle_s, self._on_idle)
        return resp

    def _on_idle(self) -> None:
        """The idle bound: re-armed from the last read, or the answer fails if it was silent.

        A request that ends leaves the timer armed (arming and cancelling one per request cost
        ~2 µs of each, benchmarks/README.md, seventh pass): the next request on the connection
        takes it over, and one that finds the connection idle in the pool lets it lapse. Closing
        the connection cancels it (`discard`).
        """
        self._timer = None
        if self.resp is None or self.closed:
            return
        idle_s = self.pool._idle_s
        assert idle_s is not None
        now = self.loop.time()
        if self.paused:  # a slow client, not a silent server: the bound restarts on resume
            self._timer = self.loop.call_at(now + idle_s, self._on_idle)
            return
        due = self.last_read + idle_s
        if now < due:
            self._timer = self.loop.call_at(due, self._on_idle)
            return
        resp, self.resp = self.resp, None
        resp._fail(TimeoutError("upstream silent past upstream.idle_timeout_ms"))
        self.discard()

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        parser = self.parser
        if parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            resp, self.resp = self.resp, None
            if resp is not None:
                resp._fail(exc if resp._head.done() else _Lost(type(exc).__name__))
            self.discard()

    def connection_lost(self, exc: Exception | None) -> None:
        resp, self.resp = self.resp, None
        if resp is not None:
            if resp._head.done() and self._until_close and exc is None:
                resp._end()  # a body without a length ends when the server closes
            elif resp._head.done():
                resp._fail(exc or ConnectionResetError("upstream closed the connection mid-answer"))
            else:
                resp._fail(_Lost(type(exc).__name__ if exc is not None else "ServerDisconnected"))
        self.discard()
        self.parser = None  # the parser holds this protocol's methods: no cycle left behind

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise httptools.HttpParserError("upstream headers too large")

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: the answer is still to come
            return
        resp = self.resp
        if resp is None:  # an answer nobody asked for
            self.discard()
            return
        resp.status = status
        resp.headers = self._headers
        self._until_close = status not in (204, 304) and not any(
            name in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        )
        resp._headers_arrived()
        if self._head_only:  # the parser cannot know a HEAD answer has no body: stop here
            self.resp = None
            resp._end()
            self.discard()

    def on_body(self, body: bytes) -> None:
        resp = self.resp
        if resp is not None:
            resp._data(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        resp, self.resp = self.resp, None
        if resp is None:
            return
        resp._end()  # the idle timer stays armed for the next request (`_on_idle`)
        if self.parser is not None and self.parser.should_keep_alive() and not self._until_close:
            self.pool._release(self)
        else:
            self.discard()

    # -- flow and end ---------------------------------------------------------------------------

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.last_read = self.loop.time()
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def discard(self) -> None:
        """Close the connection and give back its slot (idempotent)."""
        timer, self._timer = self._timer, None
        if timer is not None:  # the idle timer is the connection's, not a request's: it ends here
            timer.cancel()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        if self.counted:
            self.counted = False
            self.pool._slot_freed()


def _head(method: str, target: str, host_line: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The request line and headers; a line break or NUL in any of them is refused, never sent."""
    lines = [f"{method} {target} HTTP/1.1", host_line]
    lines.extend([f"{k}: {v}" for k, v in headers])
    if body or method in _WITH_LENGTH:
        lines.append(f"content-length: {len(body)}")
    text = "\n".join(lines)
    if "\r" in text or "\x00" in text or text.count("\n") != len(lines) - 1:
        raise InvalidRequest("Invalid header: a line break or NUL in a header sent upstream")
    try:
        return (text.replace("\n", "\r\n") + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidRequest("Invalid header: a header sent upstream is not Latin-1") from None
