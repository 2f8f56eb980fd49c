"""Which budget counters a request charges (pure): ``[[budgets]]`` compiled once, plus its key's.

A budget applies to a request only when every part of its scope is known (SPEC §14, like
rate-limit rules): a ``token`` budget skips unauthenticated requests, ``metadata.team`` skips
requests without that entry, ``model`` skips requests that name none. Each applicable budget
charges one counter: (budget, scope value, window of its period at the request's start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ..config import BudgetRule
from ..keys.model import GatewayKey, Period
from ..ratelimit.keys import Facts, scope_value as rate_limit_scope_value
from .ledger import Counter, nanos
from .windows import Window, window


@dataclass(frozen=True, slots=True)
class Budget:
    id: str  # the counters' name: the config name (or "budgets[i]"), "key:ID" for a key's budget
    label: str  # how messages and the admin API name it
    usd: float
    period: Period
    scope: tuple[str, ...]  # "token" | "provider" | "model" | "metadata.K"; () = gateway-wide
    key_id: str | None = None

    @property
    def limit(self) -> int:
        return nanos(self.usd)


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter a request charges, with the budget and window it belongs to."""

    budget: Budget
    counter: Counter
    window: Window


def compile_budgets(rules: list[BudgetRule]) -> tuple[Budget, ...]:
    out = []
    for i, rule in enumerate(rules):
        name = rule.name or f"budgets[{i}]"
        scope = tuple(part for part in rule.scope if part != "gateway")
        out.append(Budget(id=name, label=name, usd=rule.usd, period=rule.period, scope=scope))
    return tuple(out)


@lru_cache(maxsize=4096)
def key_budget(key_id: str, name: str, amount: float, period: Period) -> Budget:
    """A key's own budget; counted by the key's id, so a rename or a rotation keeps its spend."""
    return Budget(id=f"key:{key_id}", label=f"key:{name}", usd=amount, period=period, scope=(), key_id=key_id)


def escape(value: str) -> str:
    """``value`` safe inside a counter name: ``% / { }`` and line breaks percent-encoded."""
    if any(c in value for c in "%/{}\t\n\r"):
        for char in "%/{}\t\n\r":
            value = value.replace(char, f"%{ord(char):02X}")
    return value


def scope_value(budget: Budget, facts: Facts) -> str | None:
    """The counter's scope value ("" for a gateway-wide budget), ``None`` when it does not apply."""
    return rate_limit_scope_value(budget.scope, facts, escape)


def charges(budgets: tuple[Budget, ...], key: GatewayKey | None, facts: Facts, now: float) -> list[Charge]:
    """Every counter this request charges: the config's budgets that apply, then its key's."""
    found = list(budgets)
    if key is not None and key.budget is not None:
        found.append(key_budget(key.id, key.name, key.budget.usd, key.budget.period))
    out: list[Charge] = []
    for budget in found:
        scope = scope_value(budget, facts)
        if scope is None:
            continue
        win = window(budget.period, now)
        out.append(Charge(budget, Counter(budget.id, scope, win.name, budget.limit, win.expires_at), win))
    return out


def retry_after(win: Window, now: float) -> int | None:
    """Whole seconds until ``win`` resets (at least 1), ``None`` for a ``total`` budget."""
    left = win.reset_in(now)
    return None if left is None else max(1, math.ceil(left))
