"""Spend budgets (SPEC §14): exact under concurrency; see docs/keys-and-budgets.md.

``windows.py`` clock-aligned UTC windows, ``rules.py`` which counters a request charges,
``estimate.py`` worst case before and real cost after, ``ledger.py`` the reserve/settle rules
(and the memory storage), ``sqlite.py``, ``redis.py``, ``postgres.py`` the shared storages,
``middleware.py`` the layer, ``admin.py`` ``GET /admin/budgets``.
"""

from __future__ import annotations

from .ledger import Counter, CounterState, Ledger, LedgerState, MemoryLedger
from .middleware import BudgetMiddleware
from .storage import make_ledger

__all__ = ["BudgetMiddleware", "Counter", "CounterState", "Ledger", "LedgerState", "MemoryLedger", "make_ledger"]
