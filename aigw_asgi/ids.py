"""Log, request and event ids: UUIDv7 strings, time-ordered, one per request and attempt.

Its own module because more than the request context mints them (budget holds, virtual keys),
and because the random bits behind them are process state with a fork hook, which no module
about requests should carry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator


def uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562) string; Python 3.11 has no ``uuid.uuid7``.

    Time-ordered ids keep log rows in insertion order in every store's index. Built from hex
    strings directly: it runs once per request and attempt.
    """
    r = next(_random, None) or _refill()  # 80 random bits -> 20 hex digits, 19 used
    h = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    # version nibble 7; variant bits 10 -> the 17th hex digit is one of 8, 9, a, b
    return f"{h[:8]}-{h[8:12]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}

# The ids' random bits, read from the OS for 256 ids at a time: still `os.urandom`'s, but one
# system call per 256 requests instead of one each (on the bench's worker, under load, a call
# into the kernel cost ~4 µs of a ~160 µs stream, benchmarks/README.md). A list iterator hands
# each item out once even across threads (``next`` runs in C under the interpreter lock); a
# refill race only makes two batches, never one item twice. A forked child forgets the batch it
# inherited, or parent and child would give out the same ids.
_BATCH = 256
_random: Iterator[str] = iter(())


def _refill() -> str:
    global _random
    data = os.urandom(10 * _BATCH).hex()
    batch = iter([data[i : i + 20] for i in range(0, len(data), 20)])
    _random = batch
    return next(batch)


def _forget_random() -> None:
    global _random
    _random = iter(())


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_random)
