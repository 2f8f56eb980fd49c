"""Request logs, cost, analytics and OpenTelemetry.

`TelemetryMiddleware`, `Telemetry` and `LogWriter` are imported on first use (PEP 562), so the
SQLite log writer's child process loads the stores without the middleware around them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .middleware import TelemetryMiddleware
    from .recorder import Telemetry
    from .writer import LogWriter

_EXPORTS = {"LogWriter": ".writer", "Telemetry": ".recorder", "TelemetryMiddleware": ".middleware"}

__all__ = ["LogWriter", "Telemetry", "TelemetryMiddleware"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aigw_asgi.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
