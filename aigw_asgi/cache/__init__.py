"""Exact-match response cache: pure policy (`policy`), storages (`storage`), the middleware."""

from .middleware import CacheMiddleware

__all__ = ["CacheMiddleware"]
