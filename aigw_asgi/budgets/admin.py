"""``GET /admin/budgets``: spend, reserved and remaining per budget, scope value and current window.

Every ``[[budgets]]`` entry and every live key's budget is listed for the window running now;
a gateway-wide budget (or a key's) appears even before anything was spent. ``?budget=NAME``
(``key:KEYNAME`` for a key's) narrows the list. Amounts are USD.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import Envelope
from ..errors import InvalidRequest
from ..keys.model import iso
from ..keys.store import KeyStore
from .ledger import CounterState, Ledger, usd
from .rules import Budget, key_budget
from .windows import window


class BudgetAdmin:
    def __init__(
        self,
        budgets: tuple[Budget, ...],
        ledger: Callable[[], Ledger],
        *,
        keys: KeyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ledger``: returns the budget layer's storage (built lazily, on first use, in the loop)."""
        self.budgets = budgets
        self.ledger = ledger
        self.keys = keys
        self.clock = clock

    def routes(self) -> list[BaseRoute]:
        return [Route("/budgets", self.list, methods=["GET"])]

    async def list(self, request: Request) -> Response:
        params = request.query_params
        unknown = set(params.keys()) - {"budget"}
        if unknown:
            raise InvalidRequest(f"Unknown query parameter {sorted(unknown)[0][:64]}")
        wanted = params.get("budget")
        now = self.clock()
        budgets = list(self.budgets)
        if self.keys is not None:
            _, keys = await self.keys.load()
            budgets += [
                key_budget(k.id, k.name, k.budget.usd, k.budget.period)
                for k in keys
                if k.budget is not None and k.revoked_at is None
            ]
        budgets = [b for b in budgets if wanted is None or b.label == wanted]
        windows = {b.id: window(b.period, now) for b in budgets}
        states = await self.ledger().read([(b.id, windows[b.id].name) for b in budgets])
        by_budget: dict[str, list[CounterState]] = {}
        for state in states:
            by_budget.setdefault(state.budget, []).append(state)
        out: list[dict[str, Any]] = []
        for b in budgets:
            win = windows[b.id]
            found = by_budget.get(b.id) or ([CounterState(b.id, "", win.name, 0, 0)] if not b.scope else [])
            for state in sorted(found, key=lambda s: s.scope):
                entry: dict[str, Any] = {
                    "budget": b.label,
                    "scope": list(b.scope) or ["gateway"],
                    "scope_value": _scope_value(b, state.scope),
                    "period": b.period,
                    "window": win.name,
                    "window_start": iso(win.start),
                    "resets_at": iso(win.end),
                    "usd": b.usd,
                    "spent": round(usd(state.spent), 9),
                    "reserved": round(usd(state.reserved), 9),
                    "remaining": round(max(0.0, usd(b.limit - state.spent - state.reserved)), 9),
                }
                if b.key_id is not None:
                    entry["key_id"] = b.key_id
                out.append(entry)
        return Envelope(out, {"count": len(out), "total_count": len(out)})


def _scope_value(budget: Budget, stored: str) -> dict[str, str]:
    if not budget.scope:
        return {}
    return dict(zip(budget.scope, (unquote(part) for part in stored.split("/")), strict=False))
