"""Failed credential checks per client address: token guessing slows to a few tries a minute.

Without it the gateway answered about 2,000 wrong gateway or admin tokens a second from one
client. `FailureThrottle` counts 401s per client address; after ``limit`` failures within a
minute (counted from the first one) every request from that address gets 429 code 2003 with
``Retry-After`` until the minute is over -- without its token being checked at all, so a guess
that happens to be right during the block teaches nothing.

In memory, per process (``aigw serve --workers 4`` allows four times the limit): an attacker needs
the numbers, not the exact count, and a shared store on the path of every failed request would
be a lever for the attacker. Bounded: at most ``max_clients`` addresses are tracked; past that the
expired entries go first, then the oldest.

The client address is the socket peer, or the last entry of ``gateway.trusted_proxy_header``
when one is configured (behind a proxy every client would otherwise be the proxy).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .errors import RateLimited
from .ratelimit.keys import client_ip
from .types import Headers

WINDOW_S = 60.0


class FailureThrottle:
    """``blocked(ip)`` before checking a credential, ``failed(ip)`` after a wrong one."""

    __slots__ = ("limit", "max_clients", "_clock", "_failures")

    def __init__(self, limit: int, *, max_clients: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self._clock = clock
        self._failures: dict[str | None, tuple[float, int]] = {}  # address -> (window start, failures)

    def blocked(self, address: str | None) -> RateLimited | None:
        """The 429 to answer when ``address`` used up its failures, else None (one dict lookup)."""
        entry = self._failures.get(address)
        if entry is None or entry[1] < self.limit:
            return None
        left = entry[0] + WINDOW_S - self._clock()
        if left <= 0:
            del self._failures[address]
            return None
        seconds = str(max(1, math.ceil(left))).encode()
        return RateLimited(
            f"Too many failed authentication attempts from this address; retry in {seconds.decode()} s",
            headers=[(b"retry-after", seconds)],
        )

    def failed(self, address: str | None) -> None:
        now = self._clock()
        entry = self._failures.get(address)
        if entry is None or now - entry[0] >= WINDOW_S:
            if entry is None and len(self._failures) >= self.max_clients:
                self._prune(now)
            self._failures[address] = (now, 1)
        else:
            self._failures[address] = (entry[0], entry[1] + 1)

    def _prune(self, now: float) -> None:
        expired = [a for a, (start, _) in self._failures.items() if now - start >= WINDOW_S]
        for address in expired:
            del self._failures[address]
        if len(self._failures) >= self.max_clients:  # a flood of fresh addresses: drop the oldest half
            for address in list(self._failures)[: len(self._failures) // 2]:
                del self._failures[address]

    def __len__(self) -> int:
        return len(self._failures)


def address(peer: str | None, headers: Headers, proxy_header: bytes | None) -> str | None:
    """The client address the throttle counts (the trusted proxy header's, else the peer's)."""
    if proxy_header is None:
        return peer
    for name, value in headers:
        if name == proxy_header:
            return client_ip(peer, value)
    return peer
