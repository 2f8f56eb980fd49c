"""aigw-asgi: a self-hosted AI gateway as composable ASGI middlewares around a provider router."""

from ._version import __version__
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
