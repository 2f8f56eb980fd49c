"""The upstream transport: one small protocol, two implementations.

Why not just httpx: measured on the shared bench (nginx fake upstream, 1 uvicorn worker), a bare
pass-through on httpx's own pool spends ~1.8 ms CPU per request and falls to ~450 RPS at c=64
(encode/httpx#3215); the same pass-through on aiohttp spends 0.2-0.4 ms. The transport is the
hot path's biggest cost, so the router talks to this protocol and `AiohttpTransport` is the
default. `HttpxTransport` keeps the httpx API available (config ``upstream.transport = "httpx"``,
or any ``httpx.AsyncClient`` you inject, e.g. with the ``httpx-aiohttp`` transport); the numbers
are in ``benchmarks/README.md``.

Both are created lazily inside the running event loop (a mounted gateway never sees lifespan)
and closed by ``aclose()``. Both forward bytes exactly as received (no decompression), so an
upstream ``Content-Encoding``/``Content-Length`` stays true.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

from .config import UpstreamConfig
from .errors import UpstreamTimeout, UpstreamUnreachable

T = TypeVar("T")


class UpstreamStreamError(Exception):
    """The upstream connection failed after the response had started."""


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]  # names lowercase (as ASGI), values as sent

    def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises `UpstreamStreamError` if the connection breaks."""
        ...

    async def aclose(self) -> None:
        """Release the connection (closing it if the body was not read to the end)."""
        ...


class Transport(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        first_byte_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send a request and return once the response headers arrived.

        Raises `UpstreamUnreachable` (connect error, reset before headers) or `UpstreamTimeout`
        (no response headers within ``first_byte_timeout`` seconds).
        """
        ...

    async def aclose(self) -> None: ...


# -- aiohttp ---------------------------------------------------------------------------------------


class _AiohttpResponse:
    __slots__ = ("_resp", "_done", "_idle_s", "_chunks", "headers", "status")

    def __init__(self, resp: Any, idle_s: float | None = None):
        self._resp = resp
        self._done = False
        self.status: int = resp.status
        self.headers: list[tuple[bytes, bytes]] = [(k.lower(), v) for k, v in resp.raw_headers]
        self._idle_s = idle_s
        self._chunks: _AiohttpChunks | None = None
        connection = resp.connection
        if idle_s and connection is not None and connection.protocol is not None:
            # aiohttp's sock_read cancels and re-arms a timer on every read from the socket, a
            # few µs per chunk of a stream under load. From the headers on, `_AiohttpChunks`
            # watches the body's silences lazily instead; the timer aiohttp armed last still
            # bounds the silence until the next read. (aiohttp sets it again per request.)
            connection.protocol.read_timeout = None

    def stream(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = _AiohttpChunks(self, self._idle_s)
        return self._chunks

    async def aclose(self) -> None:
        if self._chunks is not None:
            self._chunks.stop()
        if self._done:
            self._resp.release()  # back to the pool
        else:
            self._resp.close()  # a half-read body poisons the connection: drop it


class _AiohttpChunks:
    """The body as it arrives: each chunk one ``readany`` away, no silence longer than ``idle_s``.

    A class rather than an async generator over ``iter_any()``: each chunk of a stream (one per
    token of a model's answer) then resumes one frame fewer, and no async generator.

    The silence bound (``upstream.idle_timeout_ms``) is one timer per response, re-armed only
    when it fires (by then for what is left of the bound since the last chunk): a chunk costs one
    clock read instead of a timer cancelled and armed again. Bytes that arrived but wait for a
    slow reader count as the upstream speaking: only its silence is bounded here.
    """

    __slots__ = ("_owner", "_read", "_errors", "_loop", "_idle_s", "_last", "_got", "_timer")

    def __init__(self, owner: _AiohttpResponse, idle_s: float | None) -> None:
        import aiohttp

        self._owner = owner
        self._read = owner._resp.content.readany
        self._errors = (TimeoutError, aiohttp.ClientError, OSError)
        self._loop = asyncio.get_running_loop()
        self._idle_s = idle_s
        self._last = self._loop.time()
        self._got = 0  # bytes handed out; the reader's total_bytes counts those received
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(idle_s, self._watch) if idle_s else None

    def __aiter__(self) -> _AiohttpChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._read()
        except self._errors as exc:
            self.stop()
            raise UpstreamStreamError(type(exc).__name__) from exc
        if not chunk:  # readany answers b"" only at the end of the body
            self.stop()
            self._owner._done = True
            raise StopAsyncIteration
        self._last = self._loop.time()
        self._got += len(chunk)
        return chunk

    def _watch(self) -> None:
        assert self._idle_s is not None
        now = self._loop.time()
        if self._owner._resp.content.total_bytes > self._got:
            self._last = now  # received, not read yet: the reader is slow, the upstream is not silent
        silent = now - self._last
        if silent < self._idle_s:
            self._timer = self._loop.call_later(self._idle_s - silent, self._watch)
            return
        import aiohttp

        self._timer = None
        # What aiohttp's own sock_read does: the waiting read raises.
        self._owner._resp.content.set_exception(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


class AiohttpTransport:
    def __init__(self, config: UpstreamConfig | None = None):
        self.config = config or UpstreamConfig()
        self._session: Any = None

    def _make_session(self) -> Any:
        import aiohttp

        cfg = self.config
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=cfg.max_connections, limit_per_host=0, keepalive_timeout=cfg.keepalive_s
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=cfg.connect_timeout_ms / 1000, sock_read=cfg.idle_timeout_ms / 1000
            ),
            auto_decompress=False,
            # A shared gateway must never keep one client's upstream cookies for the next client.
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            trust_env=False,
        )

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        first_byte_timeout: float | None = None,
    ) -> _AiohttpResponse:
        import aiohttp

        if self._session is None:
            self._session = self._make_session()
        try:
            resp = await _within(
                first_byte_timeout,
                self._session.request(method, url, headers=headers, data=body or None, allow_redirects=False),
            )
        except TimeoutError:
            raise UpstreamTimeout() from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnreachable(f"Failed to get response from provider ({type(exc).__name__})") from None
        return _AiohttpResponse(resp, self.config.idle_timeout_ms / 1000)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


# -- httpx -----------------------------------------------------------------------------------------


class _HttpxResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: Any):
        self._resp = resp
        self.status: int = resp.status_code
        self.headers: list[tuple[bytes, bytes]] = [(k.lower(), v) for k, v in resp.headers.raw]

    async def stream(self) -> AsyncIterator[bytes]:
        import httpx

        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamStreamError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._resp.aclose()


class HttpxTransport:
    """httpx's API over its own pool, or over whatever transport the injected client has."""

    def __init__(self, config: UpstreamConfig | None = None, client: Any = None):
        self.config = config or UpstreamConfig()
        self._client = client
        self._owned = client is None
        if client is not None:
            _refuse_cookies(client)

    def _make_client(self) -> Any:
        import httpx

        cfg = self.config
        return httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=cfg.connect_timeout_ms / 1000, read=cfg.idle_timeout_ms / 1000),
            limits=httpx.Limits(
                max_connections=cfg.max_connections,
                max_keepalive_connections=cfg.max_connections,
                keepalive_expiry=cfg.keepalive_s,
            ),
            follow_redirects=False,
            trust_env=False,
        )

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        first_byte_timeout: float | None = None,
    ) -> _HttpxResponse:
        import httpx

        if self._client is None:
            self._client = self._make_client()
            _refuse_cookies(self._client)
        req = self._client.build_request(method, url, headers=headers, content=body)
        try:
            resp = await _within(first_byte_timeout, self._client.send(req, stream=True))
        except TimeoutError:
            raise UpstreamTimeout() from None
        except httpx.TimeoutException:
            raise UpstreamTimeout() from None
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(f"Failed to get response from provider ({type(exc).__name__})") from None
        return _HttpxResponse(resp)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owned:
            await client.aclose()


async def _within(seconds: float | None, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, bounded by ``seconds`` when given (no timer otherwise)."""
    if seconds is None:
        return await awaitable
    async with asyncio.timeout(seconds):
        return await awaitable


def _refuse_cookies(client: Any) -> None:
    """A shared gateway must never keep one client's upstream cookies for the next client.

    httpx has no switch for that; a cookie policy that accepts no domain stores nothing.
    """
    from http.cookiejar import DefaultCookiePolicy

    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))


def make_transport(config: UpstreamConfig) -> Transport:
    if config.transport == "httpx":
        return HttpxTransport(config)
    return AiohttpTransport(config)
