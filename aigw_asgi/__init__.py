"""aigw-asgi: a self-hosted AI gateway as composable ASGI middlewares around a provider router."""

from .auth import AuthMiddleware
from .cache import CacheMiddleware
from .config import Config, ConfigError, load_config
from .context import RequestContext, ensure_context, get_context
from .gateway import Gateway
from .mount import mount
from .ratelimit import RateLimitMiddleware
from .router import ProviderRouter
from .telemetry import TelemetryMiddleware

__version__ = "0.1.0"

__all__ = [
    "AuthMiddleware",
    "CacheMiddleware",
    "Config",
    "ConfigError",
    "Gateway",
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
