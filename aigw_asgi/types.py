"""ASGI type aliases: a leaf module (it imports nothing of the package), as Starlette's ``types.py``.

Every layer imports its ASGI vocabulary from here, so no module needs another module's
internals just to spell ``Send``. Messages stay plain mutable mappings: the hot path builds
them as dict literals, and ``asgiref.typing``'s per-message TypedDicts would make every one of
those a cast without catching a bug the tests do not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]
"""Raw ASGI headers: lowercase names, latin-1 bytes."""

__all__ = ["ASGIApp", "Headers", "Message", "Receive", "Scope", "Send"]
