"""The upstream transport: one small protocol, three implementations.

The transport is the hot path's biggest cost, so the router talks to this protocol and the
implementation is a setting (``upstream.transport``):

- ``"builtin"`` (the default): `aigw_asgi.http1.Http1Transport`, the gateway's own HTTP/1.1
  client; the bare pass-through on it spends ~41 µs of CPU per request where the same
  pass-through on aiohttp spends ~141 (in-process, benchmarks/README.md, fifth pass).
- ``"aiohttp"``: `AiohttpTransport`, a thin seam over ``aiohttp.ClientSession``.
- ``"httpx"``: `HttpxTransport`, httpx's API (or any ``httpx.AsyncClient`` you inject, e.g. with
  the ``httpx-aiohttp`` transport). On its own pool it spent ~1.8 ms CPU per request and fell to
  ~450 RPS at c=64 (encode/httpx#3215).

All are created lazily inside the running event loop (a mounted gateway never sees lifespan)
and closed by ``aclose()``. All forward bytes exactly as received (no decompression), so an
upstream ``Content-Encoding``/``Content-Length`` stays true.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

from ._lazy import preload
from .config import UpstreamConfig
from .errors import UpstreamStreamError, UpstreamTimeout, UpstreamUnreachable

T = TypeVar("T")


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]  # names lowercase (as ASGI), values as sent

    def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises `UpstreamStreamError` if the connection breaks."""
        ...

    def complete(self) -> bool:
        """Whether the whole body has arrived and been handed out (the next read would end it).

        Never waits; ``False`` when unsure. The router then sends the chunk it holds as the
        body's last message instead of a separate empty one, and reads no further (a transport
        that answers ``True`` must treat the body as read to the end: its connection is reused).
        """
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
    __slots__ = ("_resp", "_done", "headers", "status")

    def __init__(self, resp: Any):
        self._resp = resp
        self._done = False
        self.status: int = resp.status
        self.headers: list[tuple[bytes, bytes]] = [(k.lower(), v) for k, v in resp.raw_headers]

    def stream(self) -> AsyncIterator[bytes]:
        return _AiohttpChunks(self)

    def complete(self) -> bool:
        if self._resp.content.at_eof():  # the payload ended and nothing of it is left unread
            self._done = True
            return True
        return False

    async def aclose(self) -> None:
        if self._done:
            self._resp.release()  # back to the pool
        else:
            self._resp.close()  # a half-read body poisons the connection: drop it


class _AiohttpChunks:
    """The body as it arrives: each chunk one ``readany`` away.

    A class rather than an async generator over ``iter_any()``: each chunk of a stream (one per
    token of a model's answer) then resumes one frame fewer, and no async generator.
    """

    __slots__ = ("_owner", "_read", "_errors")

    def __init__(self, owner: _AiohttpResponse) -> None:
        import aiohttp

        self._owner = owner
        self._read = owner._resp.content.readany
        self._errors = (TimeoutError, aiohttp.ClientError, OSError)

    def __aiter__(self) -> _AiohttpChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._read()
        except self._errors as exc:
            raise UpstreamStreamError(type(exc).__name__) from exc
        if not chunk:  # readany answers b"" only at the end of the body
            self._owner._done = True
            raise StopAsyncIteration
        return chunk


class AiohttpTransport:
    def __init__(self, config: UpstreamConfig | None = None):
        self.config = config or UpstreamConfig()
        self._session: Any = None
        preload("aiohttp")  # the session is made inside the loop at first use; its import is not

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
        return _AiohttpResponse(resp)

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

    def complete(self) -> bool:
        return False  # httpx does not say without a read: the router reads on to the end

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
        else:
            preload("httpx")  # the client is made inside the loop at first use; its import is not

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
    if config.transport == "aiohttp":
        return AiohttpTransport(config)
    from .http1 import Http1Transport

    return Http1Transport(config)
