"""Target selection for named routes (``[routes.NAME]``): pure, no I/O, clock injectable.

A selector answers one question per request: in which order should this route's targets be
tried? The first index is the choice; the rest are the fallback order, so a request still
succeeds when its chosen target fails (SPEC §5). After each target was tried, the universal
layer tells the selector how it went (`record_success` / `record_failure`); only least-latency
uses that.

    fallback       targets in config order, always
    round-robin    a rotation: request k starts at target k mod n, then continues around the ring
    weighted       smooth weighted round-robin (nginx's algorithm): deterministic, exact over every
                   cycle of sum(weights) picks, and never bursts the heavy target (5:1:1 gives
                   a a b a c a a, not a a a a a b c); the rest follow in config order
    least-latency  lowest EWMA of time to first byte; a failure folds a penalty into the EWMA,
                   ``failure_threshold`` failures in a row open a circuit breaker (the target
                   goes last) for ``cooldown_s``; then one probe request tries it first (half
                   open) and a success closes it. A target never observed, or not tried for
                   ``explore_every`` selections, is tried first once, so a slow target that healed
                   is noticed and one that never answered is measured.

State lives in the process (one selector per route per `Gateway`): several workers or
processes each balance on their own. Selection is synchronous (no ``await`` between reading and
updating the state), so under asyncio round-robin is exactly fair however many requests are in
flight; a lock keeps it so if several threads share one gateway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config import RouteConfig, RouteTarget

Clock = Callable[[], float]


Target = RouteTarget
"""A route target is the config's own value object (frozen): the selectors only read it."""


class Selector(Protocol):
    def order(self) -> list[int]:
        """Target indices in the order to try them; the first is this request's choice."""
        ...

    def record_success(self, index: int, latency_s: float) -> None: ...

    def record_failure(self, index: int) -> None: ...


class _Stateless:
    """No feedback: results do not change the order."""

    def record_success(self, index: int, latency_s: float) -> None:
        return None

    def record_failure(self, index: int) -> None:
        return None


class FallbackSelector(_Stateless):
    def __init__(self, n: int) -> None:
        self._order = list(range(n))

    def order(self) -> list[int]:
        return list(self._order)


class RoundRobinSelector(_Stateless):
    def __init__(self, n: int) -> None:
        self.n = n
        self._turn = 0
        self._lock = threading.Lock()

    def order(self) -> list[int]:
        with self._lock:
            start = self._turn
            self._turn = (start + 1) % self.n
        return [(start + i) % self.n for i in range(self.n)]


class WeightedSelector(_Stateless):
    """Smooth weighted round-robin: each pick adds every weight to its target's credit, takes
    the target with the most credit and charges it the total. Over sum(weights) picks every
    target is chosen exactly in proportion (integer weights), spread out rather than in runs."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.weights = [float(w) for w in weights]
        self.total = sum(self.weights)
        self._credit = [0.0] * len(self.weights)
        self._lock = threading.Lock()

    def order(self) -> list[int]:
        with self._lock:
            credit = self._credit
            for i, weight in enumerate(self.weights):
                credit[i] += weight
            best = max(range(len(credit)), key=lambda i: (credit[i], -i))
            credit[best] -= self.total
        return [best, *(i for i in range(len(self.weights)) if i != best)]


@dataclass(slots=True)
class _Health:
    ewma: float | None = None  # seconds to first byte
    failures: int = 0  # consecutive
    open_until: float | None = None  # circuit open until this clock time
    probing: bool = False  # half open: one request is trying it
    last_tried: int = 0  # selection count when it was last first in line or observed


class LeastLatencySelector:
    def __init__(
        self,
        n: int,
        *,
        alpha: float = 0.3,
        failure_penalty_s: float = 10.0,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        explore_every: int = 20,
        clock: Clock = time.monotonic,
    ) -> None:
        self.n = n
        self.alpha = alpha
        self.failure_penalty_s = failure_penalty_s
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.explore_every = explore_every
        self.clock = clock
        self.health = [_Health() for _ in range(n)]
        self._picks = 0
        self._lock = threading.Lock()

    def order(self) -> list[int]:
        with self._lock:
            now = self.clock()
            self._picks += 1
            closed: list[int] = []
            opened: list[int] = []
            first: int | None = None
            for i, h in enumerate(self.health):
                if h.open_until is None:
                    closed.append(i)
                elif now < h.open_until or first is not None:
                    opened.append(i)
                else:
                    # Cooldown over: half open. This request probes it; if no verdict comes
                    # back (e.g. the client left), another probe is allowed one cooldown later.
                    h.probing = True
                    h.open_until = now + self.cooldown_s
                    opened.append(i)
                    first = i
            if first is None:
                stale = [
                    i
                    for i in closed
                    if self.health[i].ewma is None or self._picks - self.health[i].last_tried >= self.explore_every
                ]
                if stale:  # never measured, or not tried for a while: look again
                    first = min(stale, key=lambda i: self.health[i].last_tried)
            closed.sort(key=lambda i: self.health[i].ewma or 0.0)
            opened.sort(key=lambda i: self.health[i].open_until or 0.0)
            ranked = closed + opened
            if first is not None:
                ranked.remove(first)
                ranked.insert(0, first)
            self.health[ranked[0]].last_tried = self._picks
            return ranked

    def record_success(self, index: int, latency_s: float) -> None:
        with self._lock:
            h = self.health[index]
            h.ewma = latency_s if h.ewma is None else self.alpha * latency_s + (1 - self.alpha) * h.ewma
            h.failures = 0
            h.open_until = None
            h.probing = False
            h.last_tried = self._picks

    def record_failure(self, index: int) -> None:
        with self._lock:
            h = self.health[index]
            sample = max(self.failure_penalty_s, 2 * (h.ewma or 0.0))
            h.ewma = sample if h.ewma is None else self.alpha * sample + (1 - self.alpha) * h.ewma
            h.failures += 1
            h.last_tried = self._picks
            if h.probing or h.failures >= self.failure_threshold:
                h.open_until = self.clock() + self.cooldown_s
                h.probing = False


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled ``[routes.NAME]``: its targets and the selector that orders them."""

    name: str
    strategy: str
    targets: tuple[Target, ...]
    selector: Selector

    def plan(self) -> list[tuple[int, Target]]:
        """This request's targets, in the order to try them, with their indices."""
        return [(i, self.targets[i]) for i in self.selector.order()]


def make_selector(strategy: str, targets: Sequence[Target], clock: Clock = time.monotonic) -> Selector:
    if strategy == "round-robin":
        return RoundRobinSelector(len(targets))
    if strategy == "weighted":
        return WeightedSelector([t.weight for t in targets])
    if strategy == "least-latency":
        return LeastLatencySelector(len(targets), clock=clock)
    return FallbackSelector(len(targets))


def compile_routes(routes: dict[str, RouteConfig], clock: Clock = time.monotonic) -> dict[str, Route]:
    compiled: dict[str, Route] = {}
    for name, cfg in routes.items():
        targets = tuple(cfg.targets)
        compiled[name] = Route(name, cfg.strategy, targets, make_selector(cfg.strategy, targets, clock))
    return compiled


def is_target_failure(status: int | None, error_code: int | None = None) -> bool:
    """Whether an answer says the *target* is unwell (counts against it in least-latency).

    Transport errors, timeouts, 429 and 5xx do; a 4xx other than 429 is about the request, and
    the gateway's own rate limit (2003) about the client, so neither blames the target.
    """
    if error_code == 2003:
        return False
    return status is None or status == 429 or status >= 500
