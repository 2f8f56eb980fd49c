"""aigw-asgi: a self-hosted AI gateway as composable ASGI middlewares around a provider router.

The names below are imported on first use (PEP 562): ``from aigw_asgi import Gateway`` works as
always, while a process that needs one corner of the package -- the SQLite log writer's child,
``aigw --version`` -- does not load the whole gateway (and its ~30 MiB of imports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .auth import AuthMiddleware
    from .budgets import BudgetMiddleware
    from .cache import CacheMiddleware
    from .config import Config, ConfigError, load_config
    from .context import RequestContext, ensure_context, get_context
    from .gateway import Gateway
    from .keys import KeyPolicyMiddleware
    from .mount import mount
    from .ratelimit import RateLimitMiddleware
    from .router import ProviderRouter
    from .telemetry import TelemetryMiddleware

_EXPORTS = {
    "AuthMiddleware": ".auth",
    "BudgetMiddleware": ".budgets",
    "CacheMiddleware": ".cache",
    "Config": ".config",
    "ConfigError": ".config",
    "Gateway": ".gateway",
    "KeyPolicyMiddleware": ".keys",
    "ProviderRouter": ".router",
    "RateLimitMiddleware": ".ratelimit",
    "RequestContext": ".context",
    "TelemetryMiddleware": ".telemetry",
    "ensure_context": ".context",
    "get_context": ".context",
    "load_config": ".config",
    "mount": ".mount",
}

__all__ = [
    "AuthMiddleware",
    "BudgetMiddleware",
    "CacheMiddleware",
    "Config",
    "ConfigError",
    "Gateway",
    "KeyPolicyMiddleware",
    "ProviderRouter",
    "RateLimitMiddleware",
    "RequestContext",
    "TelemetryMiddleware",
    "ensure_context",
    "get_context",
    "load_config",
    "mount",
    "__version__",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
