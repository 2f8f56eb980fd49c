"""The HTTP protocol ``aigw serve`` runs: uvicorn's httptools protocol with read deadlines.

uvicorn bounds only the silence *between* requests (``timeout_keep_alive``, reset by any byte
received). Nothing bounds a request's own arrival: a connection that sends half its headers, or
headers and then a body one byte a second, stays open for as long as the client likes, before
the application is even called -- a few thousand such connections, unauthenticated, and the
gateway is out of sockets. This subclass adds, per connection:

- a **head deadline** (``server.header_timeout_ms``): from the connection's first moment, and
  from the first byte of each later request, the request line and headers must be complete in
  time, else the client gets 408 (SPEC envelope, code 2004) and the connection is closed;
- a **head size cap** (``server.max_header_bytes``): httptools accepts headers of any size, held
  in memory as they arrive; past the cap the client gets 431 and the connection is closed;
- a **body backstop** (``gateway.body_timeout_ms`` + 1 s): the gateway answers a body that is
  late with its own 408 (`aigw_asgi._asgi.body_deadline`); this closes what the application never
  reads -- a body still trickling in after a 401 or 413 was sent.

Timers are armed only while a request is incomplete at the end of a read: a request that
arrives in one read (the usual case) arms none, so the hot path pays one comparison per read.
The deadlines are set once per process by `configure` (``aigw serve``'s app factory).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_IDLE, _HEAD, _BODY, _UPGRADED = range(4)
_BODY_GRACE_S = 1.0  # the gateway's own 408 (same deadline, from the same moment) answers first
_LINGER_S = 2.0  # after a refusal, how long what the client still sends is read and dropped


@dataclass(frozen=True, slots=True)
class ReadLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_header_bytes: int = 65_536


_limits = ReadLimits()


def configure(limits: ReadLimits) -> None:
    """Set the deadlines every connection of this process uses (called once, before serving)."""
    global _limits
    _limits = limits


def _refusal(status: int, reason: bytes, message: str) -> bytes:
    body = json.dumps(
        {"success": False, "result": [], "messages": [], "error": [{"code": 2004, "message": message}]},
        separators=(",", ":"),
    ).encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return head % (status, reason, len(body)) + body


_HEAD_TIMEOUT = _refusal(408, b"Request Timeout", "Request headers not received in time")
_HEAD_TOO_LARGE = _refusal(431, b"Request Header Fields Too Large", "Request headers too large")


class ReadDeadlineProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes connections whose request does not arrive in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = _limits
        self._phase = _IDLE
        self._message_done = False  # a request completed during the current read
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()  # a connection that never sends anything holds a socket too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused: the rest of what the client sends is read and dropped
        super().data_received(data)
        if self.parser is None or self.transport.is_closing():
            return
        phase = self._phase
        if phase == _HEAD or (phase == _IDLE and not self._message_done):
            # Part of a head (or bytes that have not begun one yet): the deadline runs.
            if self._head_timer is None:
                self._arm_head()
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(_HEAD_TOO_LARGE)
        elif phase == _BODY and self._body_timer is None:
            self._body_timer = self.loop.call_later(self._limits.body_timeout_s + _BODY_GRACE_S, self._on_body_timeout)
        self._message_done = False

    # -- parser callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD

    def on_headers_complete(self) -> None:
        self._cancel_head()
        self._head_bytes = 0
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        self._phase = _UPGRADED if upgrade else _BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._phase == _BODY:
            self._phase = _IDLE
            self._message_done = True
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

    # -- deadlines -------------------------------------------------------------------------------

    def _arm_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._on_head_timeout)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _disarm(self) -> None:
        self._cancel_head()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _busy(self) -> bool:
        """A request of this connection is still being answered."""
        cycle: Any = self.cycle
        return cycle is not None and not cycle.response_complete

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._busy():  # a pipelined head behind a request in progress: not before it is answered
            self._arm_head()
            return
        self._refuse(_HEAD_TIMEOUT)

    def _on_body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._phase != _BODY:
            return
        cycle: Any = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            # Answering while the body still arrives (an app that did not need it): let it finish.
            self._body_timer = self.loop.call_later(_BODY_GRACE_S, self._on_body_timeout)
            return
        # The application answered without reading the rest (401, 413), or never answered: the
        # body will not be read, so the connection has nothing left to wait for.
        self.transport.close()

    def _refuse(self, response: bytes) -> None:
        """Answer ``response`` and end the connection, without losing the answer to a reset.

        Closing a socket with unread bytes in it makes the kernel reset the connection, and a
        reset can discard the answer before the client reads it (a client still sending its
        oversized headers got ECONNRESET instead of the 431). So, like nginx's lingering close:
        the answer goes out with a FIN, what still arrives is read and dropped, and the socket
        closes when the client closes its side or after `_LINGER_S`.
        """
        self._disarm()
        busy = self._busy()
        if not busy:  # never a second answer in the middle of one
            self.transport.write(response)
        if busy or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._lingering = True
        # In the head timer's slot: `_disarm` (at connection_lost) cancels it with the others.
        self._head_timer = self.loop.call_later(_LINGER_S, self.transport.close)
