"""What `OTelRecorder` asks of the OpenTelemetry API beyond spans: whether the global providers
record at all, and the caller's trace context in raw ASGI headers.

Asked per request, so each answer is cheap: the API's own module globals are read instead of its
getters (which look up an environment variable per call), and a propagator's header names are
kept so a request without any of them skips extraction.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.propagators.textmap import Getter

from ..types import Headers


class HeaderGetter(Getter[Headers]):
    """Reads raw ASGI headers (lowercase bytes) for the configured propagators."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k == name]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


HEADERS_GETTER = HeaderGetter()

try:
    from opentelemetry.metrics import _internal as metrics_api
    from opentelemetry.metrics._internal import _ProxyMeterProvider as ProxyMeterProvider
except ImportError:  # pragma: no cover - a future API without it: never taken for idle
    metrics_api = None  # type: ignore[assignment]

    class ProxyMeterProvider:  # type: ignore[no-redef]
        pass


def global_provider(module: Any, name: str, getter: Any) -> Any:
    """The global provider if one is set, else ``None``. Reads the API's own module global: the
    public getter also looks up an environment variable on every call (~0.6 µs, per request here);
    it is only used if a future API renames the global."""
    provider = getattr(module, name, getter)
    return getter() if provider is getter else provider


def recording_state(provider: Any, proxy: type, noop: type) -> bool | None:
    """Whether a provider records: ``False`` for a no-op, ``True`` for an SDK's, ``None`` for the
    API's global proxy (it records once an SDK is installed, maybe after the gateway was built:
    `OTelRecorder._active` asks the global provider per request until it is set)."""
    if isinstance(provider, proxy):
        return None
    return not isinstance(provider, noop)


def propagation_fields(textmap: Any) -> frozenset[bytes]:
    """The header names a propagator reads (``traceparent``, ``tracestate``, ``baggage``…)."""
    try:
        return frozenset(f.lower().encode("latin-1") for f in textmap.fields)
    except Exception:  # a propagator that does not list its fields: always extract
        return frozenset()
