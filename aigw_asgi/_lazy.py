"""Package attributes imported on first use (PEP 562), for the package roots.

A package root that imports its public names eagerly makes every import of one of its modules
load them all: the SQLite log writer's child would load the whole gateway (~30 MiB) to reach the
stores, and ``aigw --version`` would take 0.4 s. Stdlib only, so importing it costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each name to the relative module
    that defines it. The first lookup imports it and keeps it in the package's namespace, so later
    lookups never come back here."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def preload(*modules: str) -> None:
    """Import ``modules`` now, where a part that needs them is built, not inside the event loop.

    Clients and pools bind to the loop that first uses them, so they are made at the first
    request; importing their library there (redis-py ~175 ms, aiohttp ~180 ms, asyncpg ~75 ms warm
    on the bench machine, twice that cold) would block that loop and every request in flight on
    it. A missing optional library is not an error here: the first use names it.
    """
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


async def import_off_loop(name: str) -> Any:
    """``name``, imported in a worker thread if it is not loaded yet: for a library only some
    requests need (aiohttp for realtime sessions), where importing it for every gateway at start-up
    would cost everyone. The loop keeps serving other requests meanwhile."""
    module = sys.modules.get(name)
    if module is None:
        import asyncio  # not at the top: importing this module must stay free (see above)

        module = await asyncio.to_thread(importlib.import_module, name)
    return module
