"""Rate limits over the `limits` library (SPEC §7); see docs/rate-limits.md.

``middleware.py`` is the ASGI layer, ``keys.py`` the pure decisions (rules, counter keys,
headers), ``storage.py`` the `limits.aio` storages and the fail-open/closed guard.
"""

from __future__ import annotations

from .keys import Facts, Rule, compile_rules, counter_key
from .middleware import RateLimitMiddleware
from .storage import storage_from_uri

__all__ = ["Facts", "RateLimitMiddleware", "Rule", "compile_rules", "counter_key", "storage_from_uri"]
