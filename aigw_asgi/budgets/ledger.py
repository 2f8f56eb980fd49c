"""The budget ledger: reserve the worst case before a request, settle to the real cost after.

Each counter (one budget, one scope value, one window) holds two integers in nano-dollars:
``spent`` (settled) and ``reserved`` (admitted requests still running). The rules, which every
storage applies atomically (a Python step here, one SQL transaction, one Redis Lua script):

- **reserve(lease, counters, amount)** — refuse (naming the first counter without room) unless
  every counter has ``spent + reserved < limit`` and ``spent + reserved + amount <= limit``; else
  add ``amount`` to each ``reserved`` and remember the lease. All or nothing.
- **settle(lease, counters, amount, actual)** — the lease still held: ``reserved -= amount``,
  ``spent += actual``. Already reclaimed (see below): ``spent += actual - amount``.
  Never held (a reserve that timed out before it ran, released just in case): nothing.
- **reclaim(now)** — a lease past its deadline (its process died mid-request) is charged in full:
  ``reserved -= amount``, ``spent += amount``, and kept (marked) for a week, so a late settle
  corrects it to ``actual`` and a settle of a lease that never existed changes nothing.

Invariant: ``spent + reserved <= limit`` after every reserve, and settle with ``actual <= amount``
or a reclaim never raises ``spent + reserved``. So as long as a request's real cost stays within
what it reserved, **spent never exceeds the limit**, however requests and instances interleave
(tests/budgets/test_budgets_ledger_property.py checks it with Hypothesis). Integers, not floats: sums are
exact and every storage computes the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

NANOS_PER_USD = 1_000_000_000


def nanos(usd: float) -> int:
    """Dollars -> nano-dollars, rounded to the nearest (for limits and real costs)."""
    return int(round(usd * NANOS_PER_USD))


def nanos_up(usd: float) -> int:
    """Dollars -> nano-dollars, never below the exact value (for worst cases)."""
    return int(math.ceil(round(usd * NANOS_PER_USD, 3)))


def usd(value: int) -> float:
    return value / NANOS_PER_USD


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter a request charges: ``budget`` ("monthly", "key:ID"), ``scope`` value, ``window``."""

    budget: str
    scope: str  # the scope values, escaped and joined by "/" ("" for a gateway-wide budget)
    window: str
    limit: int  # nano-dollars
    expires_at: float | None = None  # when the counter may be forgotten (None: never)

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.budget, self.scope, self.window)


@dataclass(frozen=True, slots=True)
class CounterState:
    budget: str
    scope: str
    window: str
    spent: int
    reserved: int


@runtime_checkable
class Ledger(Protocol):
    """What `BudgetMiddleware` needs from a storage; every method is atomic on its own."""

    kind: str

    async def reserve(self, lease: str, counters: Sequence[Counter], amount: int, *, now: float, ttl: float) -> int:
        """``-1`` when reserved; else the index in ``counters`` of the first one without room."""
        ...

    async def settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None: ...

    async def read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        """Every counter of these ``(budget, window)`` pairs (all scope values)."""
        ...

    async def aclose(self) -> None: ...


RECLAIMED_KEEP_S = 7 * 86_400.0
"""How long a reclaimed lease is remembered, for a settle that arrives very late."""


@dataclass(slots=True)
class _Lease:
    idents: tuple[tuple[str, str, str], ...]
    amount: int
    deadline: float
    reclaimed: bool = False


class LedgerState:
    """The rules above on plain dicts: the memory storage, and the model the others are tested against."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str, str], list[int]] = {}  # ident -> [spent, reserved]
        self.expiry: dict[tuple[str, str, str], float] = {}
        self.leases: dict[str, _Lease] = {}

    def _counter(self, ident: tuple[str, str, str]) -> list[int]:
        state = self.counters.get(ident)
        if state is None:
            state = self.counters[ident] = [0, 0]
        return state

    def reclaim(self, now: float) -> None:
        for lease_id in [k for k, lease in self.leases.items() if lease.deadline <= now]:
            lease = self.leases[lease_id]
            if lease.reclaimed:
                del self.leases[lease_id]  # a week past its reclaim: nobody will settle it now
                continue
            for ident in lease.idents:
                state = self._counter(ident)
                state[1] -= lease.amount
                state[0] += lease.amount
            lease.reclaimed, lease.deadline = True, now + RECLAIMED_KEEP_S

    def reserve(self, lease: str, counters: Sequence[Counter], amount: int, *, now: float, ttl: float) -> int:
        self.reclaim(now)
        for i, counter in enumerate(counters):
            spent, reserved = self.counters.get(counter.ident, (0, 0))
            if spent + reserved >= counter.limit or spent + reserved + amount > counter.limit:
                return i
        for counter in counters:
            self._counter(counter.ident)[1] += amount
            if counter.expires_at is not None:
                self.expiry[counter.ident] = counter.expires_at
        self.leases[lease] = _Lease(tuple(c.ident for c in counters), amount, now + ttl)
        return -1

    def settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None:
        held = self.leases.pop(lease, None)
        if held is None:
            return  # never reserved (or settled already)
        if not held.reclaimed:
            for counter in counters:
                state = self._counter(counter.ident)
                state[1] -= amount
                state[0] += actual
        else:  # reclaimed already, charged ``amount``: correct it to what was really spent
            for counter in counters:
                self._counter(counter.ident)[0] += actual - amount

    def forget(self, now: float) -> None:
        """Drop counters whose window is long over (and that nothing is reserved on)."""
        for ident in [i for i, at in self.expiry.items() if at <= now]:
            if self.counters.get(ident, [0, 0])[1] == 0:
                self.counters.pop(ident, None)
                del self.expiry[ident]

    def read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        wanted = set(windows)
        return [
            CounterState(budget, scope, win, spent, reserved)
            for (budget, scope, win), (spent, reserved) in self.counters.items()
            if (budget, win) in wanted
        ]


class MemoryLedger:
    """One process: the rules applied in one event-loop step each (no await inside: atomic)."""

    kind = "memory"

    def __init__(self) -> None:
        self.state = LedgerState()
        self._forgotten_at = 0.0

    async def reserve(self, lease: str, counters: Sequence[Counter], amount: int, *, now: float, ttl: float) -> int:
        if now - self._forgotten_at > 3600:
            self.state.forget(now)
            self._forgotten_at = now
        return self.state.reserve(lease, counters, amount, now=now, ttl=ttl)

    async def settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None:
        self.state.settle(lease, counters, amount, actual)

    async def read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        return self.state.read(windows)

    async def aclose(self) -> None:
        return None
