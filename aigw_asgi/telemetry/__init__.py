"""Request logs, cost, analytics and OpenTelemetry."""

from .middleware import TelemetryMiddleware
from .recorder import Telemetry
from .writer import LogWriter

__all__ = ["LogWriter", "Telemetry", "TelemetryMiddleware"]
