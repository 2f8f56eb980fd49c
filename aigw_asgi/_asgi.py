"""Small helpers over raw ASGI messages, shared by every layer: one helper per repeated chore."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from .errors import GatewayError, InvalidRequest, PayloadTooLarge, RequestTimeout
from .headers import header
from .types import Headers, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .context import RequestContext


async def read_body(ctx: RequestContext, receive: Receive, limit: int) -> bytes:
    """The request body, read once (kept on the context) and capped at ``limit`` bytes.

    A declared ``Content-Length`` above the limit is refused before reading anything, so an
    oversized upload costs nothing; a body that grows past the limit while arriving is refused
    as soon as it crosses it.
    """
    if ctx.body is not None:
        return ctx.body
    declared = header(ctx.headers, b"content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidRequest("Invalid header content-length") from None
        if length > limit:
            raise PayloadTooLarge(f"Request body too large (limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"Request body too large (limit {limit} bytes)")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    ctx.body = body
    return body


class ClientDisconnected(Exception):
    """The client went away before the request body was complete."""


def body_deadline(receive: Receive, timeout_s: float) -> Receive:
    """A ``receive`` whose request body must be complete within ``timeout_s`` from now.

    A body that is still arriving at the deadline (stalled, or a byte a second) raises
    `RequestTimeout` (408, code 2004, ``connection: close``) from the ``receive`` call of the
    layer reading it, which answers it like any gateway error. Once the body is complete the
    wrapper only forwards: waiting for a disconnect afterwards is not bounded.
    """
    return _BodyDeadline(receive, asyncio.get_running_loop().time() + timeout_s, timeout_s)


class _BodyDeadline:
    """`body_deadline`'s ``receive``: a timer only while a body message is actually awaited.

    Most bodies are in the server's buffer when the app starts, and the server's ``receive``
    returns without suspending: then no timer is armed at all (arming and cancelling one, with
    the closure it needs, cost ~4.5 µs per request, a tenth of a cache hit). Only a ``receive``
    that suspends gets the timer, which cancels the waiting task at the deadline: a bare timer,
    not ``asyncio.timeout``, which costs three times as much.
    """

    __slots__ = ("_receive", "_deadline", "_timeout_s", "_complete", "_expired")

    def __init__(self, receive: Receive, deadline: float, timeout_s: float) -> None:
        self._receive = receive
        self._deadline = deadline
        self._timeout_s = timeout_s
        self._complete = False
        self._expired: asyncio.Task[Any] | None = None

    def __call__(self) -> Awaitable[Message]:
        if self._complete:
            return self._receive()  # the body is in: waiting for a disconnect is not bounded
        return self._in_time()  # type: ignore[return-value]  # types.coroutine: awaitable

    @types.coroutine
    def _in_time(self) -> Generator[Any, Any, Message]:
        # Drives the server's receive by hand, as ``await`` would (PEP 380: ``next`` for None and
        # ``throw`` only where the iterator has one -- granian's awaitable is a bare iterator),
        # so that whether it suspends is known before any timer exists.
        inner = self._receive().__await__()
        try:
            waiting = next(inner)
        except StopIteration as done:
            return self._seen(done.value)
        loop = asyncio.get_running_loop()
        timer = loop.call_at(self._deadline, self._expire, asyncio.current_task())
        try:
            while True:
                try:
                    sent = yield waiting
                except GeneratorExit:
                    close = getattr(inner, "close", None)
                    if close is not None:
                        close()
                    raise
                except BaseException as exc:
                    throw = getattr(inner, "throw", None)
                    if throw is None:
                        raise
                    try:
                        waiting = throw(exc)
                    except StopIteration as done:
                        return self._seen(done.value)
                else:
                    try:
                        waiting = next(inner) if sent is None else inner.send(sent)
                    except StopIteration as done:
                        return self._seen(done.value)
        except asyncio.CancelledError:
            task = self._expired
            if task is not None and task.uncancel() == 0:
                raise RequestTimeout(f"Request body not received within {self._timeout_s:g} s") from None
            raise
        finally:
            timer.cancel()

    def _expire(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._expired = task
            task.cancel()

    def _seen(self, message: Message) -> Message:
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._complete = True
        return message


# How many body messages a watcher lets through before it stops: each layer that read the body
# replays it once (cache, rate limit, a universal step), then a real server blocks until the
# client leaves. A ``receive`` that keeps answering at once is not a server: nothing to watch.
_MAX_REPLAYS = 8
WATCH_AFTER_S = 0.02  # see `ClientWatch`


class ClientWatch:
    """Cancels the running task when the client leaves, for as long as an upstream call runs.

    Started once per request just before the upstream call (not per stream): a client that hangs
    up while the provider is still thinking must stop the call the provider bills for, and
    servers such as uvicorn silently drop ``send()`` after a disconnect, so nothing else would
    notice. The watcher waits on ``receive`` (after the already-read body, a server's next
    message is ``http.disconnect``) and cancels the task that created it.

    The task catches that cancellation and asks `release` whether it was the watcher's own (and
    nobody else's): only then is it swallowed. `stop` must be called right after the last body
    message is sent, before any other ``await``: from then on a server answers ``receive`` with
    ``http.disconnect`` because the response is complete, not because the client left.

    The watcher task starts ``after_s`` after the upstream call (a timer until then): most
    answers that are fast enough to be cheap never pay for a task (a task per request cost ~12 %
    of the router's CPU at c=64), and a client that leaves is still noticed within ``after_s``,
    long before a provider has generated anything worth billing.
    """

    __slots__ = ("left", "_task", "_watcher", "_timer", "_released")

    def __init__(self, receive: Receive, after_s: float = WATCH_AFTER_S) -> None:
        self.left = False
        self._released = False
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if self._task is not None:
            loop = asyncio.get_running_loop()
            if after_s > 0:
                self._timer = loop.call_later(after_s, self._start, receive)
            else:
                self._start(receive)

    def _start(self, receive: Receive) -> None:
        self._timer = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        for _ in range(_MAX_REPLAYS):
            try:
                message = await receive()
            except Exception:  # a host's broken receive is not ours to report
                return
            if message["type"] == "http.disconnect":
                self.left = True
                assert self._task is not None
                self._task.cancel()
                return

    def release(self) -> bool:
        """Whether a `CancelledError` being handled is the watcher's alone: then un-cancel the task.

        Call it once per handled cancellation; a second call answers False (re-raise).
        """
        if not self.left or self._released or self._task is None:
            return False
        self._released = True
        return self._task.uncancel() == 0

    def stop(self) -> None:
        """Stop watching (idempotent, never waits)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()


def replay_receive(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then defers to the real one.

    Lets a middleware that needed the body (the cache, for its key) hand an intact request
    to an inner app that knows nothing of the context.
    """
    sent = False

    async def receive_replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_replay


async def send_json(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def lifespan_loop(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] | None,
    shutdown: Callable[[], Awaitable[None]] | None,
) -> None:
    """Answer a ``lifespan`` scope: run ``startup``/``shutdown`` and report failures per spec."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                if startup is not None:
                    await startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                if shutdown is not None:
                    await shutdown()
            except Exception as exc:
                await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return


async def deny_websocket(
    scope: Scope, send: Send, exc: GatewayError, headers: Headers, *, close_reason: bool = True
) -> None:
    """Refuse a WebSocket handshake (the client's ``websocket.connect`` already received).

    With the ``websocket.http.response`` extension the client gets the real HTTP answer (status,
    SPEC §4 envelope, ``exc.headers`` such as ``Retry-After``, and ``headers``); without it the
    only thing left is a close before accept, code 1008 with the message as reason (servers turn
    that into a 403). ``close_reason=False`` closes without one (the auth layer's denial names
    nothing beyond the status).
    """
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = exc.envelope()
        start: Headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        start += exc.headers + headers
        await send({"type": "websocket.http.response.start", "status": exc.status, "headers": start})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        close: Message = {"type": "websocket.close", "code": 1008}
        if close_reason:
            close["reason"] = exc.message[:120]
        await send(close)
