"""The effective configuration as the dashboard shows it (``GET /admin/config``), secrets masked.

Two layers, so a secret in a place nobody thought of is still caught:

1. by field: gateway tokens and their digests, the admin token, provider keys and every extra
   provider header value are replaced whole; store and base URLs lose ``user:password@`` and
   credential query parameters (`redact_url`);
2. by value: every other string goes through the gateway's `Redactor`, which knows each
   configured secret and the generic shapes (``Bearer …``, ``key=…``), wherever it appears.

A digest is masked too: it is not the token, but it is all an offline guesser needs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .config import Config
from .providers.registry import ProviderRegistry
from .redact import REDACTED, Redactor, config_secrets, redact_url

_SECRET_FIELDS = frozenset({"token", "sha256", "admin_token", "api_key", "key"})
_URL_FIELDS = frozenset({"storage", "store", "base_url"})
_OPAQUE_MAPPINGS = frozenset({"headers"})  # every value may be a credential (custom auth headers)


def masked_config(config: Config) -> dict[str, Any]:
    """``config`` as plain JSON data with every secret replaced by ``[REDACTED]``."""
    redactor = Redactor(config_secrets(config))
    masked: dict[str, Any] = _mask(asdict(config), redactor)
    return masked


def providers_view(config: Config) -> list[dict[str, Any]]:
    """Every provider the gateway knows (built-ins and configured), with its upstream base URL."""
    registry = ProviderRegistry.from_config(config)
    redactor = Redactor(config_secrets(config))
    out = []
    for name in registry.names():
        provider = registry.get(name)
        if provider is None:  # pragma: no cover - names() lists what get() finds
            continue
        out.append(
            {
                "name": name,
                "base_url": redactor(redact_url(provider.base_url)),
                "format": provider.format,
                "auth_header": provider.auth_header,
                "keys": [key.alias for key in provider.keys],
                "configured": name in config.providers,
            }
        )
    return out


def _mask(value: Any, redactor: Redactor, field: str = "") -> Any:
    if isinstance(value, dict):
        if field in _OPAQUE_MAPPINGS:
            return {str(k): REDACTED for k in value}
        return {str(k): _mask(v, redactor, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, redactor, field) for v in value]
    if isinstance(value, str):
        if field in _SECRET_FIELDS:
            return REDACTED
        if field in _URL_FIELDS:
            value = redact_url(value)
        return redactor(value)
    if field in _SECRET_FIELDS and value is not None:
        return REDACTED
    return value
