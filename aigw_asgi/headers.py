"""Raw ASGI header lists: one lookup, one override, the hop-by-hop set (a leaf module).

Every layer reads headers the same way: lowercase names as ASGI and both upstream transports
give them, first value wins.
"""

from __future__ import annotations

from .types import Headers

# Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, never the message, so no
# layer forwards, stores or replays them.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)


def set_headers(headers: Headers, extra: Headers) -> Headers:
    """``headers`` with every name in ``extra`` replaced by ``extra``'s values."""
    names = {name for name, _ in extra}
    return [h for h in headers if h[0] not in names] + extra


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase, as ASGI and the transports give names)."""
    for key, value in headers:
        if key == name:
            return value
    return None
