"""Package attributes imported on first use (PEP 562), for the package roots.

A package root that imports its public names eagerly makes every import of one of its modules
load them all: the SQLite log writer's child would load the whole gateway (~30 MiB) to reach the
stores, and ``aigw --version`` would take 0.4 s. Stdlib only, so importing it costs nothing.
"""

from __future__ import annotations

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
