"""Request logs, cost, analytics and OpenTelemetry.

`TelemetryMiddleware`, `Telemetry` and `LogWriter` are imported on first use (PEP 562), so the
SQLite log writer's child process loads the stores without the middleware around them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .middleware import TelemetryMiddleware
    from .recorder import Telemetry
    from .writer import LogWriter

_EXPORTS = {"LogWriter": ".writer", "Telemetry": ".recorder", "TelemetryMiddleware": ".middleware"}

__all__ = ["LogWriter", "Telemetry", "TelemetryMiddleware"]

__getattr__ = lazy_exports(__name__, _EXPORTS)
