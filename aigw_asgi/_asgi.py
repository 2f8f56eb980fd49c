"""Small helpers over raw ASGI messages, shared by every layer: one helper per repeated chore."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .errors import GatewayError, InvalidRequest, PayloadTooLarge
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
