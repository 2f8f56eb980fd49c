"""The built-in upstream transport: HTTP/1.1 on asyncio's protocol API, parsed by httptools.

Why a client of our own: measured in-process on the shared bench (benchmarks/README.md, fifth
pass), aiohttp's client spent ~110 µs of Python per request (a request object, a URL object,
multidicts, a timer re-armed on every read, the response's stream reader) where relaying the
bytes needs ~25: it was most of the "bare aiohttp pass-through" floor, and the largest single
cost of every request through the gateway. A provider call always has one shape (one request
whose body is already in memory, one response relayed as it arrives), so the client needs little:

- a pool of keep-alive connections per origin, at most ``upstream.max_connections`` open in all
  (an idle one of another origin is closed to make room), idle ones dropped after
  ``upstream.keepalive_s``;
- the request written at once (head and body); a header name or value with a line break or a
  NUL is refused (`InvalidRequest`), never written;
- the response parsed by httptools (llhttp, the parser of Node.js and of uvicorn): the status,
  the headers (names lowercased, values as sent), then the body as it arrives, whatever its
  framing (Content-Length, chunked, or until the server closes), 1xx interim answers skipped;
- back-pressure: the socket stops being read while more than `HIGH_WATER` bytes wait for a slow
  client, so a stream is never buffered without bound;
- ``upstream.idle_timeout_ms`` bounds every silence from the request to the end of the body with
  one timer per connection that re-arms itself only when it fires (`_Connection._on_idle`),
  instead of a timer cancelled and re-armed on every read or every request;
- a pooled connection the server closed while it sat idle (nothing of a response arrived) is
  retried once on a new connection for idempotent methods, as aiohttp does; a POST is not
  replayed behind the client's back (the router's retry policy decides);
- TLS through the standard library with the system's trust store
  (``ssl.create_default_context()``, which honours ``SSL_CERT_FILE``) and SNI.

No proxies from the environment, no cookies, no redirects, no decompression: the same contract
as the other transports (aigw_asgi.transport).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohappyeyeballs
import httptools

from .config import UpstreamConfig
from .errors import InvalidRequest, UpstreamStreamError, UpstreamTimeout, UpstreamUnreachable

HIGH_WATER = 256 * 1024
"""Bytes of a response waiting for the client above which the upstream socket is not read
(reading resumes once the client has taken what waited)."""
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_WITH_LENGTH = frozenset({"POST", "PUT", "PATCH"})  # an empty body still says Content-Length: 0
_SWEEP_EVERY_S = 30.0
_MAX_ORIGINS = 256  # origins remembered (an Azure resource name comes from the client's path)
_JOIN_BELOW = 64 * 1024  # smaller bodies are written with their head in one piece
_MAX_HEADER_BYTES = 256 * 1024  # an answer's headers past this are refused (a broken upstream)
_HAPPY_EYEBALLS_S = 0.25  # RFC 8305's delay before trying the next address family, as aiohttp


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


class Http1Response:
    """A response whose headers arrived; the body is read with ``async for chunk in resp.stream()``."""

    __slots__ = ("status", "headers", "_conn", "_chunks", "_size", "_waiter", "_done", "_error", "_head", "_loop")

    def __init__(self, conn: _Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._conn: _Connection | None = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._loop = loop
        self._head: asyncio.Future[None] = loop.create_future()

    # -- what the connection reports ----------------------------------------------------------

    def _headers_arrived(self) -> None:
        if not self._head.done():
            self._head.set_result(None)

    def _data(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        conn = self._conn
        if self._size > HIGH_WATER and conn is not None:
            conn.pause()
        self._wake()

    def _end(self) -> None:
        self._done = True
        self._conn = None
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._conn = None
        if not self._head.done():
            self._head.set_exception(exc)
            return
        self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- what the router uses -----------------------------------------------------------------

    def stream(self) -> Http1Response:
        return self

    def complete(self) -> bool:
        """The body has arrived and every byte of it was handed out."""
        return self._done and not self._chunks

    def __aiter__(self) -> Http1Response:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._size = 0
                conn = self._conn
                if conn is not None and conn.paused:
                    conn.resume()
                return chunk
            if self._done:
                raise StopAsyncIteration
            if self._error is not None:
                raise UpstreamStreamError(type(self._error).__name__) from self._error
            waiter = self._waiter = self._loop.create_future()
            await waiter

    async def aclose(self) -> None:
        """Done with the answer: a connection whose body was not read to the end is closed."""
        conn, self._conn = self._conn, None
        if conn is not None and not self._done:
            conn.discard()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its response parsed as it arrives."""

    def __init__(self, pool: Http1Transport, origin: _Origin, loop: asyncio.AbstractEventLoop) -> None:
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


class Http1Transport:
    """``upstream.transport = "builtin"`` (the default): see the module docstring.

    ``ssl_context``: what TLS connections verify against (default: the system's trust store).
    """

    def __init__(self, config: UpstreamConfig | None = None, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.config = config or UpstreamConfig()
        cfg = self.config
        self._ssl = ssl_context
        self._connect_s = cfg.connect_timeout_ms / 1000
        self._idle_s: float | None = cfg.idle_timeout_ms / 1000 if cfg.idle_timeout_ms > 0 else None
        self._keepalive_s = float(cfg.keepalive_s)
        self._limit = max(1, cfg.max_connections)
        self._origins: dict[str, _Origin] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._swept = 0.0
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        first_byte_timeout: float | None = None,
    ) -> Http1Response:
        try:
            if first_byte_timeout is None:
                return await self._request(method, url, headers, body)
            async with asyncio.timeout(first_byte_timeout):
                return await self._request(method, url, headers, body)
        except TimeoutError:
            raise UpstreamTimeout() from None
        except OSError as exc:  # ssl.SSLError and socket.gaierror included
            raise UpstreamUnreachable(f"Failed to get response from provider ({type(exc).__name__})") from None

    async def _request(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> Http1Response:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._adopt(loop)
        origin, target = self._origin(url)
        if origin.basic_auth is not None and not any(k.lower() == "authorization" for k, _ in headers):
            headers = [*headers, ("authorization", origin.basic_auth)]
        data = _head(method, target, origin.host_line, headers, body)
        retried = False
        while True:
            conn = await self._connection(origin)
            reused = conn.requests > 0
            resp = conn.send(data, body, method == "HEAD")
            try:
                await resp._head
            except _Lost as lost:
                if reused and not retried and method in _IDEMPOTENT:
                    retried = True  # the server closed it while it sat in the pool
                    continue
                raise UpstreamUnreachable(f"Failed to get response from provider ({lost})") from None
            except BaseException:
                conn.discard()  # cancelled or timed out mid-exchange: the connection's state is unknown
                raise
            return resp

    # -- connections ----------------------------------------------------------------------------

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use in this loop (a test suite may run several loops): forget the other's pool."""
        self._loop = loop
        self._origins = {}
        self._open = 0
        self._waiters = deque()
        self._closed = False

    def _origin(self, url: str) -> tuple[_Origin, str]:
        scheme_end = url.find("://")
        start = scheme_end + 3 if scheme_end > 0 else 0
        cut = len(url)
        for mark in ("/", "?"):
            at = url.find(mark, start)
            if 0 <= at < cut:
                cut = at
        base, target = url[:cut], url[cut:]
        if not target.startswith("/"):
            target = "/" + target
        origin = self._origins.get(base)
        if origin is None:
            origin = self._new_origin(base)
        if " " in target:
            raise InvalidRequest("Invalid path: a space in the upstream URL")
        return origin, target

    def _new_origin(self, base: str) -> _Origin:
        try:
            parts = urlsplit(base)
            port = parts.port
        except ValueError:
            raise UpstreamUnreachable("Failed to get response from provider (invalid URL)") from None
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise UpstreamUnreachable("Failed to get response from provider (unsupported URL)")
        tls = parts.scheme == "https"
        default = 443 if tls else 80
        shown = f"[{host}]" if ":" in host else host
        host_line = f"host: {shown}" if port in (None, default) else f"host: {shown}:{port}"
        if len(self._origins) >= _MAX_ORIGINS:
            self._origins = {k: o for k, o in self._origins.items() if o.idle}
        basic_auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            basic_auth = "Basic " + base64.b64encode(pair).decode("ascii")
        origin = self._origins[base] = _Origin(base, host, port or default, tls, host_line, basic_auth)
        return origin

    async def _connection(self, origin: _Origin) -> _Connection:
        loop = self._loop
        assert loop is not None
        while True:
            idle = origin.idle
            if idle:
                now = loop.time()
                while idle:
                    conn = idle.pop()  # the most recently used: the least likely to be stale
                    if self._reusable(conn, now):
                        return conn
                    conn.discard()
            if self._open < self._limit or self._close_one_idle():
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: the room it was told of goes to the next
                raise
            finally:
                if not waiter.done():
                    waiter.cancel()
        self._open += 1
        try:
            async with asyncio.timeout(self._connect_s):
                # Each of the host's addresses in turn, IPv6 and IPv4 interleaved and raced after
                # 250 ms (RFC 8305): a host whose IPv6 route is broken still connects at once.
                infos = await loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
                if not infos:
                    raise OSError(f"no address for {origin.host}")
                sock = await aiohappyeyeballs.start_connection(
                    infos, happy_eyeballs_delay=_HAPPY_EYEBALLS_S, interleave=1, loop=loop
                )
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, origin, loop),
                        sock=sock,
                        ssl=self._tls() if origin.tls else None,
                        server_hostname=origin.host if origin.tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except BaseException:
            self._slot_freed()
            raise
        conn.counted = True
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _release(self, conn: _Connection) -> None:
        """A connection whose answer was read to the end: back to its origin's idle list."""
        if self._closed or conn.closed or self._origins.get(conn.origin.base) is not conn.origin:
            conn.discard()  # shut down, closed by the server, or its origin was forgotten
            return
        conn.resume()
        conn.idle_since = now = conn.loop.time()
        conn.origin.idle.append(conn)
        if self._waiters:
            self._wake_one()
        if now - self._swept > _SWEEP_EVERY_S:
            self._sweep(now)

    def _slot_freed(self) -> None:
        self._open -= 1
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _close_one_idle(self) -> bool:
        """Make room for a new connection by closing the longest idle one (any origin)."""
        oldest: _Connection | None = None
        for origin in self._origins.values():
            if origin.idle and (oldest is None or origin.idle[0].idle_since < oldest.idle_since):
                oldest = origin.idle[0]
        if oldest is None:
            return False
        oldest.origin.idle.remove(oldest)
        oldest.discard()
        return self._open < self._limit

    def _reusable(self, conn: _Connection, now: float) -> bool:
        """An idle connection still fit to carry a request: open, and idle less than ``keepalive_s``."""
        return not conn.closed and now - conn.idle_since < self._keepalive_s

    def _sweep(self, now: float) -> None:
        """Close the idle connections no longer `_reusable`."""
        self._swept = now
        for origin in self._origins.values():
            keep: list[_Connection] = []
            for conn in origin.idle:
                if self._reusable(conn, now):
                    keep.append(conn)
                else:
                    conn.discard()
            origin.idle[:] = keep

    async def aclose(self) -> None:
        self._closed = True
        for origin in self._origins.values():
            for conn in origin.idle:
                conn.discard()
            origin.idle.clear()
        self._origins = {}
        await asyncio.sleep(0)  # the transports close their sockets on the loop's next turn


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
