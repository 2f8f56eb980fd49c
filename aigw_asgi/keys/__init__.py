"""Gateway keys issued at runtime (SPEC §14); see docs/keys-and-budgets.md.

``model.py`` the key as a value (secret, digest, policy, input validation), ``store.py`` where
keys live (memory, SQLite; ``redis_store.py``, ``postgres_store.py``), ``resolver.py`` this
instance's bounded-staleness view, ``policy.py`` what a key may do, ``middleware.py`` the layer
that applies it, ``service.py`` the operations the admin API (``admin.py``) and CLI share.
"""

from __future__ import annotations

from .middleware import KeyPolicyMiddleware
from .model import GatewayKey, KeyBudget, KeyRateLimit
from .policy import access_error
from .resolver import KeyResolver
from .service import KeyService
from .store import KeyStore, MemoryKeyStore, SQLiteKeyStore, make_key_store

__all__ = [
    "GatewayKey",
    "KeyBudget",
    "KeyPolicyMiddleware",
    "KeyRateLimit",
    "KeyResolver",
    "KeyService",
    "KeyStore",
    "MemoryKeyStore",
    "SQLiteKeyStore",
    "access_error",
    "make_key_store",
]
