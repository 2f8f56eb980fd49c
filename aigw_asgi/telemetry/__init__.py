"""Request logs, cost, analytics and OpenTelemetry."""

from .middleware import TelemetryMiddleware

__all__ = ["TelemetryMiddleware"]
