"""The configuration's shape: one dataclass per TOML table, with its defaults (docs/configuration.md).

Plain data, kept apart from reading and checking so the schema can be read on its own:
``load.py`` fills these from TOML and ``validate.py`` checks them. Secrets (tokens, provider keys)
are kept out of ``repr`` so a config never leaks into a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..bounds import Backoff

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
