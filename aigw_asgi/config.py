"""TOML configuration -> typed, validated dataclasses (SPEC §11).

Every problem is found at start and reported with the dotted key that causes it
(``rate_limit.technique: expected one of 'fixed', 'sliding'``): a gateway that starts is a
gateway whose config was understood. ``"env:VAR"`` reads an environment variable at load time;
a missing variable is an error naming both the key and the variable.

Secrets (tokens, provider keys) are kept out of ``repr`` so a config never leaks into a log.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

from .bounds import CACHE_TTL_S, MAX_ATTEMPTS, RETRY_DELAY_MS, Backoff
from .errors import ConfigError

Technique = Literal["fixed", "sliding"]


@dataclass
class ServerConfig:
    """``aigw serve`` only; hosts that mount the gateway ignore it."""

    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 1
    log_level: str = "info"
    proxy_headers: bool = False  # trust X-Forwarded-For from forwarded_allow_ips (uvicorn)
    # Slow clients (docs/security.md): what a request may take to arrive, and how many at once.
    header_timeout_ms: int = 10_000  # request line + headers complete within this, else 408 + close
    max_header_bytes: int = 65_536  # request line + headers larger than this: 431 + close
    keep_alive_s: int = 5  # an idle keep-alive connection is closed after this (uvicorn)
    limit_concurrency: int = 2048  # connections + requests per worker before new requests get 503; 0 = no cap
    # Allocations between young-generation collections in each worker (Python's default: 700);
    # 0 keeps the interpreter's setting. Why 50,000: benchmarks/README.md, "Garbage collection".
    gc_threshold: int = 50_000


@dataclass
class TokenConfig:
    name: str
    token: str | None = field(default=None, repr=False)
    sha256: str | None = field(default=None, repr=False)


@dataclass
class GatewayConfig:
    id: str = "default"
    mount_path: str = "/"
    authentication: bool = False
    tokens: list[TokenConfig] = field(default_factory=list)
    admin_token: str | None = field(default=None, repr=False)
    max_request_bytes: int = 26_214_400  # 25 MiB, Cloudflare's cacheable-request limit
    body_timeout_ms: int = 60_000  # the whole request body must arrive within this, else 408
    auth_failures_per_minute: int = 30  # per client address; then 429 for the rest of the minute; 0 = off
    trusted_proxy_header: str | None = None  # e.g. "x-forwarded-for": where the client IP comes from
    # Which providers this gateway calls: None = every built-in and configured custom provider.
    # Anything else is refused with 400 code 2008 before any upstream call (fewer doors).
    providers: list[str] | None = None
    only_configured_providers: bool = False  # only providers with a [providers.NAME] table


@dataclass
class UpstreamConfig:
    """How the gateway talks to providers."""

    transport: Literal["builtin", "aiohttp", "httpx"] = "builtin"
    connect_timeout_ms: int = 10_000
    idle_timeout_ms: int = 600_000  # max silence between two chunks of an answer
    max_connections: int = 1024
    keepalive_s: int = 300
    compression: bool = False  # False: ask upstream for identity bodies (cheaper usage parsing)


@dataclass
class CacheConfig:
    ttl: int = 0  # seconds; 0 = only requests that ask (cf-aig-cache-ttl / cf-aig-cache-key)
    storage: str = "memory://"
    max_bytes: int = 268_435_456  # memory storage: total size of the LRU
    max_entry_bytes: int = 10_485_760  # larger answers are not stored
    cache_streams: bool = True
    timeout_ms: int = 250  # Redis: per-operation bound; a slow cache is a MISS, never an error
    key_prefix: str = "aigw"
    # Body-derived entries shared by every gateway token (a cf-aig-cache-key never is): False keeps
    # tenants apart when they share a stored provider key.
    share_across_tokens: bool = False


@dataclass
class RateLimitRule:
    limit: int
    period: int
    name: str = ""
    technique: Technique = "fixed"
    scope: list[str] = field(default_factory=lambda: ["gateway"])  # gateway|token|ip|provider|model|metadata.K
    unit: Literal["requests", "tokens"] = "requests"


@dataclass
class RateLimitConfig:
    limit: int = 0  # 0 = off
    period: int = 60
    technique: Technique = "fixed"
    storage: str = "memory://"
    fail_open: bool = True
    timeout_ms: int = 250
    breaker_failures: int = 5  # consecutive storage failures before requests stop asking it
    key_prefix: str = "aigw"
    rules: list[RateLimitRule] = field(default_factory=list)


@dataclass
class RetryConfig:
    max_attempts: int = 1
    delay_ms: int = 0
    backoff: Backoff = "constant"
    request_timeout_ms: int = 0  # 0 = no first-byte timeout
    max_retry_after_ms: int = 5000  # an upstream Retry-After is honoured up to this
    jitter: float = 0.1  # +-10 % on every delay, so retries of many clients spread out


@dataclass
class LogsConfig:
    enabled: bool = True
    store: str = "sqlite:///aigw.db"
    collect_payload: bool = True
    max_logs: int = 1_000_000
    strategy: Literal["DELETE_OLDEST", "STOP_INSERTING"] = "DELETE_OLDEST"
    max_body_bytes: int = 65_536  # stored request/response bodies are capped at this
    batch_size: int = 200
    flush_interval_ms: int = 500
    queue_size: int = 10_000
    max_age: int = 0  # seconds; rows older than this are deleted (0 = kept until max_logs)
    pool_size: int = 5  # postgresql:// connections per process
    timeout_ms: int = 10_000  # postgresql:// and redis://: per connect and per statement
    # sqlite:/// only: where rows are redacted and written. "process": a child process per worker;
    # "thread": a thread of the worker; "auto": process under `aigw serve`, thread when mounted.
    writer: Literal["auto", "thread", "process"] = "auto"


@dataclass
class KeysConfig:
    """Gateway keys issued at runtime (SPEC §14); see docs/keys-and-budgets.md."""

    store: str = ""  # "" = the log store's database (logs.store); or sqlite:///, redis://, postgresql://, memory://
    refresh_ms: int = 500  # how old this instance's view of the keys may get (revocations hold within ~this)


@dataclass
class BudgetRule:
    """One ``[[budgets]]`` entry: at most ``usd`` dollars per clock-aligned UTC ``period``, per scope value."""

    usd: float
    period: Literal["day", "week", "month", "total"] = "month"
    scope: list[str] = field(default_factory=lambda: ["gateway"])  # gateway|token|provider|model|metadata.K
    name: str = ""


@dataclass
class SpendConfig:
    """How budgets are enforced (``[spend]``); the budgets themselves are ``[[budgets]]`` and per key."""

    storage: str = (
        ""  # "" = the log store's database; or memory://, sqlite:///, redis://, redis+cluster://, postgresql://
    )
    unknown_price: Literal["allow", "refuse"] = "allow"  # a budgeted request to a model without a price
    max_output_tokens: int = 4096  # worst-case output of a request that names no max tokens
    reservation_ttl_s: int = 3600  # a reservation whose process died is charged in full after this
    fail_open: bool = False  # budget storage down: false = 503 code 2011, true = serve uncounted
    timeout_ms: int = 1000  # per storage call


@dataclass
class TelemetryConfig:
    otel: bool = True  # spans and metrics through the global (or injected) OTel providers
    capture_content: bool = False
    service_name: str = "aigw-asgi"


@dataclass
class RealtimeConfig:
    """Caps on realtime WebSocket sessions (``WS /{provider}/{path}``, docs/realtime.md)."""

    max_frame_bytes: int = 16_777_216  # one frame, either way (uvicorn's own ws_max_size default)
    max_session_s: float = 3600.0  # 0 = no limit
    idle_timeout_s: float = 600.0  # no frame either way for this long closes the session; 0 = never
    ping_interval_s: float = 20.0  # pings to the provider (a dead upstream is noticed); 0 = none
    close_timeout_s: float = 5.0  # how long a closing handshake may take before the socket is dropped


@dataclass
class ProviderKeyConfig:
    alias: str
    key: str = field(repr=False)


@dataclass
class ProviderConfig:
    base_url: str | None = None
    version_prefix: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_keys: list[ProviderKeyConfig] = field(default_factory=list)
    auth_header: str | None = None
    auth_scheme: str | None = None  # "Bearer", "Token", "" …
    format: str | None = None  # usage wire format: openai|anthropic|gemini|workers-ai|cohere|ollama|replicate
    account_id: str | None = None  # workers-ai
    stream_usage: bool | None = None  # inject stream_options.include_usage (OpenAI-style APIs)
    headers: dict[str, str] = field(default_factory=dict)
    realtime_url: str | None = None  # ws(s):// endpoint of the provider's realtime WebSocket


@dataclass
class PriceConfig:
    """USD per token."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """One place a route can send a request: provider + model (+ BYOK alias, weight, endpoint)."""

    provider: str
    model: str
    alias: str | None = None
    weight: float = 1.0
    endpoint: str | None = None

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}" + (f"#{self.alias}" if self.alias else "")


@dataclass
class RouteConfig:
    targets: list[RouteTarget]
    strategy: Literal["fallback", "round-robin", "weighted", "least-latency"] = "fallback"


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    retries: RetryConfig = field(default_factory=RetryConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    prices: dict[str, PriceConfig] = field(default_factory=dict)
    keys: KeysConfig = field(default_factory=KeysConfig)
    budgets: list[BudgetRule] = field(default_factory=list)
    spend: SpendConfig = field(default_factory=SpendConfig)


# -- loading --------------------------------------------------------------------------------------


def _resolve_env(value: str, key: str) -> str:
    if value.startswith("env:"):
        var = value[4:]
        if var not in os.environ:
            raise ConfigError(f"{key}: environment variable {var} is not set")
        return os.environ[var]
    return value


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        last: ConfigError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                last = exc
        raise last or ConfigError(f"{key}: invalid value")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list")
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table")
        _, val_tp = typing.get_args(tp)
        return {str(k): _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return _resolve_env(value, key)
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - schema bug


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for name in data:
        if name not in known:
            where = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{where}: unknown key")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{key}: required")
    return cls(**kwargs)


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


def config_from_dict(data: dict[str, Any]) -> Config:
    config: Config = _build(Config, data, "")
    return validate(config)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate a TOML config; with no path, ``$AIGW_CONFIG`` or the embedded defaults."""
    if path is None:
        path = os.environ.get("AIGW_CONFIG") or None
    if path is None:
        return validate(Config())
    try:
        with Path(path).open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(data)
