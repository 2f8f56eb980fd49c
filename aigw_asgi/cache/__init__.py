"""Exact-match response cache: pure policy (`policy`), storages (`storage`), the middleware."""

from .middleware import CacheMiddleware
from .storage import CachedResponse, CacheStorage, MemoryStorage, RedisStorage, storage_from_config

__all__ = ["CacheMiddleware", "CacheStorage", "CachedResponse", "MemoryStorage", "RedisStorage", "storage_from_config"]
