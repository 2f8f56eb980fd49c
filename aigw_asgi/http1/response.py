"""The answer as the router reads it: status and headers, then the body as it arrives.

- back-pressure: the socket stops being read while more than `HIGH_WATER` bytes wait for a slow
  client, so a stream is never buffered without bound.

The response is fed by the connection it arrives on (`connection._Connection`) and pauses,
resumes or discards it; `_Source` names what it needs of that connection, so this module imports
nothing of the others (the connection creates the response).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from ..errors import UpstreamStreamError

HIGH_WATER = 256 * 1024
"""Bytes of a response waiting for the client above which the upstream socket is not read
(reading resumes once the client has taken what waited)."""


class _Source(Protocol):
    """What a response needs from the connection it arrives on: `connection._Connection`."""

    paused: bool

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def discard(self) -> None: ...


class Http1Response:
    """A response whose headers arrived; the body is read with ``async for chunk in resp.stream()``."""

    __slots__ = ("status", "headers", "_conn", "_chunks", "_size", "_waiter", "_done", "_error", "_head", "_loop")

    def __init__(self, conn: _Source, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._conn: _Source | None = conn
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
