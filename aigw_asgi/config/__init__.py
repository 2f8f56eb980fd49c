"""TOML configuration -> typed, validated dataclasses (SPEC §11).

Every problem is found at start and reported with the dotted key that causes it
(``rate_limit.technique: expected one of 'fixed', 'sliding'``): a gateway that starts is a
gateway whose config was understood. ``"env:VAR"`` reads an environment variable at load time;
a missing variable is an error naming both the key and the variable.

Secrets (tokens, provider keys) are kept out of ``repr`` so a config never leaks into a log.

``model.py`` the dataclasses (one per TOML table, with their defaults), ``load.py`` TOML or a
dict -> those dataclasses (types, ``env:``), ``validate.py`` the range and cross-field checks.
One module used to hold all three (530 lines); split so each file holds one concern. Every
name is re-exported here, so ``from aigw_asgi.config import X`` stays the one import to use.
"""

from __future__ import annotations

from ..errors import ConfigError
from .load import config_from_dict, load_config
from .model import (
    BudgetRule,
    CacheConfig,
    Config,
    GatewayConfig,
    KeysConfig,
    LogsConfig,
    PriceConfig,
    ProviderConfig,
    ProviderKeyConfig,
    RateLimitConfig,
    RateLimitRule,
    RealtimeConfig,
    RetryConfig,
    RouteConfig,
    RouteTarget,
    ServerConfig,
    SpendConfig,
    Technique,
    TelemetryConfig,
    TokenConfig,
    UpstreamConfig,
)
from .validate import MAX_BUDGET_USD, validate

__all__ = [
    "BudgetRule",
    "CacheConfig",
    "Config",
    "ConfigError",
    "GatewayConfig",
    "KeysConfig",
    "LogsConfig",
    "MAX_BUDGET_USD",
    "PriceConfig",
    "ProviderConfig",
    "ProviderKeyConfig",
    "RateLimitConfig",
    "RateLimitRule",
    "RealtimeConfig",
    "RetryConfig",
    "RouteConfig",
    "RouteTarget",
    "ServerConfig",
    "SpendConfig",
    "Technique",
    "TelemetryConfig",
    "TokenConfig",
    "UpstreamConfig",
    "config_from_dict",
    "load_config",
    "validate",
]
