"""Range and cross-field checks the types cannot express, each reported with its dotted key.

Its own module because it is used without loading: ``Gateway`` and the layers that default to
``Config()`` validate that, and ``keys/model.py`` caps per-key budgets with ``MAX_BUDGET_USD``.
Ranges come from ``bounds.py``, so each is written once.
"""

from __future__ import annotations

from ..bounds import CACHE_TTL_S, MAX_ATTEMPTS, RETRY_DELAY_MS
from ..errors import ConfigError
from .model import Config


def _check(cond: bool, key: str, why: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {why}")


def validate(config: Config) -> Config:
    """Range and cross-field checks the types cannot express."""
    g = config.gateway
    _check(bool(g.id) and len(g.id) <= 64, "gateway.id", "expected 1 to 64 characters")
    _check(g.mount_path.startswith("/"), "gateway.mount_path", "must start with '/'")
    _check(g.max_request_bytes > 0, "gateway.max_request_bytes", "must be positive")
    _check(g.body_timeout_ms > 0, "gateway.body_timeout_ms", "must be positive")
    _check(g.auth_failures_per_minute >= 0, "gateway.auth_failures_per_minute", "must be 0 (off) or positive")
    for i, tok in enumerate(g.tokens):
        key = f"gateway.tokens[{i}]"
        _check(bool(tok.name), f"{key}.name", "required")
        _check((tok.token is None) != (tok.sha256 is None), key, "set exactly one of token or sha256")
        if tok.sha256 is not None:
            digest = tok.sha256.lower()
            _check(
                len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
                f"{key}.sha256",
                "expected 64 hex characters",
            )
        if tok.token is not None:
            _check(len(tok.token) >= 8, f"{key}.token", "expected at least 8 characters")
    names = [t.name for t in g.tokens]
    _check(len(names) == len(set(names)), "gateway.tokens", "token names must be unique")
    s = config.server
    _check(0 < s.port < 65536, "server.port", "expected 1 to 65535")
    _check(s.workers >= 1, "server.workers", "must be at least 1")
    _check(s.header_timeout_ms > 0, "server.header_timeout_ms", "must be positive")
    _check(s.max_header_bytes >= 1024, "server.max_header_bytes", "must be at least 1024")
    _check(s.keep_alive_s > 0, "server.keep_alive_s", "must be positive")
    _check(s.limit_concurrency >= 0, "server.limit_concurrency", "must be 0 (no cap) or positive")
    _check(
        s.gc_threshold == 0 or 700 <= s.gc_threshold <= 10_000_000,
        "server.gc_threshold",
        "must be 0 (the interpreter's setting) or 700 to 10000000",
    )
    u = config.upstream
    _check(u.connect_timeout_ms > 0, "upstream.connect_timeout_ms", "must be positive")
    _check(u.idle_timeout_ms > 0, "upstream.idle_timeout_ms", "must be positive")
    _check(u.max_connections > 0, "upstream.max_connections", "must be positive")
    c = config.cache
    _check(c.ttl == 0 or c.ttl in CACHE_TTL_S, "cache.ttl", f"expected 0 or {CACHE_TTL_S.describe()} seconds")
    _check(
        c.storage.split("://")[0] in ("memory", "redis", "rediss", "redis+cluster"),
        "cache.storage",
        "expected memory://, redis://, rediss:// or redis+cluster://",
    )
    _check(
        c.max_entry_bytes > 0 and c.max_bytes >= c.max_entry_bytes,
        "cache.max_entry_bytes",
        "must be positive and at most cache.max_bytes",
    )
    _check(c.timeout_ms > 0, "cache.timeout_ms", "must be positive")
    r = config.rate_limit
    _check(r.limit >= 0, "rate_limit.limit", "must be 0 (off) or positive")
    _check(r.period > 0, "rate_limit.period", "must be positive")
    _check(r.timeout_ms > 0, "rate_limit.timeout_ms", "must be positive")
    _check(r.breaker_failures >= 1, "rate_limit.breaker_failures", "must be at least 1")
    _check(
        r.storage.split("://")[0] in ("memory", "redis", "rediss", "redis+cluster"),
        "rate_limit.storage",
        "expected memory://, redis://, rediss:// or redis+cluster://",
    )
    for i, rule in enumerate(r.rules):
        key = f"rate_limit.rules[{i}]"
        _check(rule.limit > 0, f"{key}.limit", "must be positive")
        _check(rule.period > 0, f"{key}.period", "must be positive")
        _check(bool(rule.scope), f"{key}.scope", "must name at least one scope")
        for part in rule.scope:
            _check(
                part in ("gateway", "token", "ip", "provider", "model")
                or (part.startswith("metadata.") and len(part) > 9),
                f"{key}.scope",
                f"unknown scope {part!r}",
            )
    t = config.retries
    _check(t.max_attempts in MAX_ATTEMPTS, "retries.max_attempts", f"expected {MAX_ATTEMPTS.describe()}")
    _check(t.delay_ms in RETRY_DELAY_MS, "retries.delay_ms", f"expected {RETRY_DELAY_MS.describe()}")
    _check(t.request_timeout_ms >= 0, "retries.request_timeout_ms", "must be 0 (off) or positive")
    _check(0 <= t.jitter <= 1, "retries.jitter", "expected 0 to 1")
    lg = config.logs
    _check(
        lg.store.split("://")[0] in ("sqlite", "memory", "redis", "rediss", "postgresql", "postgres"),
        "logs.store",
        "expected sqlite:///PATH, memory://, redis:// or postgresql://",
    )
    _check(lg.max_logs > 0, "logs.max_logs", "must be positive")
    _check(lg.max_age >= 0, "logs.max_age", "must be 0 (off) or positive seconds")
    _check(1 <= lg.pool_size <= 100, "logs.pool_size", "expected 1 to 100")
    _check(lg.timeout_ms > 0, "logs.timeout_ms", "must be positive")
    _check(lg.batch_size > 0 and lg.queue_size > 0, "logs.batch_size", "batch_size and queue_size must be positive")
    _check(
        lg.writer != "process" or (lg.store.startswith("sqlite:///") and ":memory:" not in lg.store),
        "logs.writer",
        '"process" needs a SQLite file store (sqlite:///PATH); use "thread" or "auto"',
    )
    for name, p in config.providers.items():
        key = f"providers.{name}"
        if p.base_url is not None:
            _check(p.base_url.startswith(("http://", "https://")), f"{key}.base_url", "must be an http(s) URL")
        if p.realtime_url is not None:
            _check(
                p.realtime_url.startswith(("ws://", "wss://", "http://", "https://")),
                f"{key}.realtime_url",
                "must be a ws(s):// URL",
            )
        aliases = [k.alias for k in p.api_keys]
        _check(len(aliases) == len(set(aliases)), f"{key}.api_keys", "aliases must be unique")
    rt = config.realtime
    _check(rt.max_frame_bytes > 0, "realtime.max_frame_bytes", "must be positive")
    for name in ("max_session_s", "idle_timeout_s", "ping_interval_s"):
        _check(getattr(rt, name) >= 0, f"realtime.{name}", "must be 0 (off) or positive")
    _check(rt.close_timeout_s > 0, "realtime.close_timeout_s", "must be positive")
    for name, route in config.routes.items():
        _check(bool(route.targets), f"routes.{name}.targets", "needs at least one target")
        for i, target in enumerate(route.targets):
            _check(target.weight > 0, f"routes.{name}.targets[{i}].weight", "must be positive")
    _validate_spend(config)
    return config


_STORES = ("memory", "sqlite", "redis", "rediss", "postgresql", "postgres")
MAX_BUDGET_USD = 1_000_000.0  # counters are integer nano-dollars: exact far beyond this


def _validate_spend(config: Config) -> None:
    """``[keys]``, ``[[budgets]]`` and ``[spend]``."""
    k = config.keys
    _check(
        not k.store or k.store.split("://")[0] in _STORES,
        "keys.store",
        "expected sqlite:///PATH, memory://, redis:// or postgresql://",
    )
    _check(50 <= k.refresh_ms <= 1000, "keys.refresh_ms", "expected 50 to 1000 (a revocation must hold within 2 s)")
    sp = config.spend
    _check(
        not sp.storage or sp.storage.split("://")[0] in (*_STORES, "redis+cluster"),
        "spend.storage",
        "expected memory://, sqlite:///PATH, redis://, redis+cluster:// or postgresql://",
    )
    _check(sp.max_output_tokens > 0, "spend.max_output_tokens", "must be positive")
    _check(sp.reservation_ttl_s >= 60, "spend.reservation_ttl_s", "must be at least 60 seconds")
    _check(sp.timeout_ms > 0, "spend.timeout_ms", "must be positive")
    names: set[str] = set()
    for i, budget in enumerate(config.budgets):
        key = f"budgets[{i}]"
        _check(0 < budget.usd <= MAX_BUDGET_USD, f"{key}.usd", f"expected more than 0 and at most {MAX_BUDGET_USD:g}")
        _check(bool(budget.scope), f"{key}.scope", "must name at least one scope")
        for part in budget.scope:
            _check(
                part in ("gateway", "token", "provider", "model") or (part.startswith("metadata.") and len(part) > 9),
                f"{key}.scope",
                f"unknown scope {part!r} (expected gateway, token, provider, model or metadata.KEY)",
            )
        name = budget.name or key
        _check(not name.startswith("key:"), f"{key}.name", "names starting with 'key:' are the per-key budgets'")
        _check(name not in names, f"{key}.name", f"budget name {name!r} is used twice (names must be unique)")
        names.add(name)
