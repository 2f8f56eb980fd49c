"""Providers as data (`registry`), and their wire formats (`sse`, `usage`)."""

from .registry import BUILTINS, Provider, ProviderKey, ProviderRegistry, join_url, model_from

__all__ = ["BUILTINS", "Provider", "ProviderKey", "ProviderRegistry", "join_url", "model_from"]
