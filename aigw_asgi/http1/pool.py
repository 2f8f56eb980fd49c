"""The pool: which connection carries a request, and how a new one is opened.

- a pool of keep-alive connections per origin, at most ``upstream.max_connections`` open in all
  (an idle one of another origin is closed to make room), idle ones dropped after
  ``upstream.keepalive_s``;
- a pooled connection the server closed while it sat idle (nothing of a response arrived) is
  retried once on a new connection for idempotent methods, as aiohttp does; a POST is not
  replayed behind the client's back (the router's retry policy decides);
- TLS through the standard library with the system's trust store
  (``ssl.create_default_context()``, which honours ``SSL_CERT_FILE``) and SNI.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections import deque
from urllib.parse import unquote, urlsplit

import aiohappyeyeballs

from ..config import UpstreamConfig
from ..errors import InvalidRequest, UpstreamTimeout, UpstreamUnreachable
from .connection import _Connection, _head, _Lost, _Origin
from .response import Http1Response

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_SWEEP_EVERY_S = 30.0
_MAX_ORIGINS = 256  # origins remembered (an Azure resource name comes from the client's path)
_HAPPY_EYEBALLS_S = 0.25  # RFC 8305's delay before trying the next address family, as aiohttp


class Http1Transport:
    """``upstream.transport = "builtin"`` (the default): see the package docstring (`aigw_asgi.http1`).

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
