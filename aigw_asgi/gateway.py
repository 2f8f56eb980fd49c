"""Gateway: the whole pipeline, built in one place.

    request ─▶ TelemetryMiddleware   times it, logs every attempt, spans and metrics
             ─▶ AuthMiddleware        gateway token or runtime key (cache hits are authenticated too)
             ─▶ UniversalMiddleware   POST / and WebSocket GET /: each step through the stack below
             ─▶ CompatMiddleware      /compat/*: one client shape, translated steps through the stack below
             ─▶ KeyPolicyMiddleware   a runtime key's expiry, providers and models (authentication on)
             ─▶ CacheMiddleware       HIT answers here: logged, never rate-limited
             ─▶ RateLimitMiddleware   counts what reaches a provider (a key's own limit too)
             ─▶ BudgetMiddleware      reserves the worst-case cost, settles the real one
             ─▶ ProviderRouter        /{provider}/{path} pass-through, retries, usage
    /admin/* ─▶ AdminApp              guarded by the admin token, outside the pipeline

Everything with a connection or a background task (upstream pool, Redis, log writer) starts
lazily on first use, because a gateway mounted in FastAPI/Starlette never receives lifespan
events. ``async with gateway.lifespan():`` or ``await gateway.aclose()`` closes it all; as the
top-level app it answers the ``lifespan`` scope itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ._asgi import body_deadline, lifespan_loop
from .admin import AdminApp
from .auth import AdminGuard, AuthMiddleware, throttle_from_config
from .budgets import BudgetMiddleware
from .budgets.admin import BudgetAdmin
from .cache import CacheMiddleware
from .compat import CompatMiddleware
from .config import Config, validate
from .context import ensure_context, route_path
from .dashboard import is_shell
from .errors import GatewayError, NotFound, send_error
from .keys import KeyPolicyMiddleware, KeyResolver, KeyService, make_key_store
from .keys.admin import KeyAdmin
from .keys.store import store_url
from .providers.registry import ProviderRegistry
from .ratelimit import RateLimitMiddleware
from .router import ProviderRouter
from .routing.balance import compile_routes
from .runner import StepRunner
from .telemetry import Telemetry, TelemetryMiddleware
from .telemetry.cost import PriceTable
from .transport import Transport, UpstreamStreamError
from .types import ASGIApp, Receive, Scope, Send
from .universal import UniversalMiddleware
from .websocket import WebSocketAPI

if TYPE_CHECKING:
    from limits.aio.storage import Storage
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .cache.storage import CacheStorage
    from .telemetry.stores import LogStore

logger = logging.getLogger("aigw_asgi")


class Gateway:
    """An ASGI app: ``app.mount("/ai", Gateway(load_config("aigw.toml")))``."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        transport: Transport | None = None,
        cache_storage: CacheStorage | None = None,
        rate_limit_storage: Storage | None = None,
        log_store: LogStore | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Backends default to what the config names; pass one to inject it (tests, shared pools).

        ``transport``: an upstream `Transport`; ``cache_storage``: a `CacheStorage`;
        ``rate_limit_storage``: a ``limits.aio`` storage; ``log_store``: a `LogStore`;
        ``tracer_provider``/``meter_provider``: OpenTelemetry providers (default: the globals).
        """
        self.config = config if config is not None else validate(Config())
        self.id = self.config.gateway.id
        self.providers = ProviderRegistry.from_config(self.config)

        gateway = self.config.gateway
        # One price table: what budgets charge is what the logs say a request cost.
        prices = PriceTable(self.config.prices)
        # Runtime keys live in the log store's database unless [keys] names another (lazy: no
        # connection until a key is looked up or administered).
        self.key_store = make_key_store(store_url(self.config.keys.store, self.config.logs.store), self.id)
        self.keys = KeyResolver(self.key_store, refresh_s=self.config.keys.refresh_ms / 1000)
        # Innermost first: each object gets what it uses when it is built, nothing is patched later.
        self.router = ProviderRouter(self.config, providers=self.providers, transport=transport)
        self.budgets = BudgetMiddleware(self.router, self.config, prices=prices, providers=self.providers)
        self.rate_limit = RateLimitMiddleware(
            self.budgets,
            self.config.rate_limit,
            gateway_id=self.id,
            storage=rate_limit_storage,
            trusted_proxy_header=gateway.trusted_proxy_header,
            providers=self.providers,
            max_request_bytes=gateway.max_request_bytes,
        )
        self.cache = CacheMiddleware(
            self.rate_limit,
            self.config.cache,
            gateway_id=self.id,
            storage=cache_storage,
            providers=self.providers,
            max_request_bytes=gateway.max_request_bytes,
            log_body_bytes=self.config.logs.max_body_bytes,
            # every answer below (rate limit, budgets, router) carries ctx.response_headers()
            miss_header=False,
        )
        # Requests finish in two places, the telemetry layer (HTTP) and the WebSocket API (each
        # message on a socket bypasses the layers above it), so the recorder is built before both.
        self.recorder = Telemetry(
            self.config, store=log_store, prices=prices, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        # A key's own rules apply to every request that reaches the cache: each universal step,
        # each WebSocket message, each /compat target (keys exist only with authentication on).
        self.policy: ASGIApp = (
            KeyPolicyMiddleware(
                self.cache, resolver=self.keys, providers=self.providers, max_request_bytes=gateway.max_request_bytes
            )
            if gateway.authentication
            else self.cache
        )
        routes = compile_routes(self.config.routes)
        self.compat = CompatMiddleware(self.policy, self.config, providers=self.providers, routes=routes)
        websocket = WebSocketAPI(
            StepRunner(self.compat, self.providers, routes),
            self.config,
            telemetry=self.recorder,
            rate_limit=self.rate_limit,
        )
        self.universal = UniversalMiddleware(
            self.compat, self.config, providers=self.providers, routes=routes, websocket=websocket
        )
        # One failure count per client address for gateway and admin tokens: guessing either costs the same.
        throttle = throttle_from_config(gateway)
        self.auth = AuthMiddleware(self.universal, gateway, throttle=throttle, keys=self.keys)
        self.telemetry = TelemetryMiddleware(self.auth, telemetry=self.recorder)
        self.app: ASGIApp = self.telemetry
        self.admin = AdminGuard(
            AdminApp(
                self.config,
                store=self.recorder.store,
                writer=self.recorder,
                cache=self.cache.storage,
                prices=self.recorder.prices,
                sections=(
                    KeyAdmin(
                        KeyService(
                            self.key_store,
                            self.id,
                            resolver=self.keys,
                            reserved_names=frozenset(t.name for t in gateway.tokens),
                        )
                    ),
                    BudgetAdmin(self.budgets.budgets, lambda: self.budgets.ledger, keys=self.key_store),
                ),
            ),
            gateway,
            throttle=throttle,
            public=is_shell,
        )

        self._body_timeout = gateway.body_timeout_ms / 1000
        mount = self.config.gateway.mount_path.rstrip("/")
        self._mount = mount  # "" when the gateway sits at the root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await lifespan_loop(receive, send, None, self.aclose)
            return
        if self._mount:
            path = route_path(scope)
            if path != self._mount and not path.startswith(self._mount + "/"):
                if kind == "http":
                    await send_error(send, NotFound(f"Not found: the gateway is at {self._mount}/"))
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
            scope = dict(scope)
            scope["root_path"] = scope.get("root_path", "") + self._mount
        path = route_path(scope)
        if path == "/admin" or path.startswith("/admin/"):
            await self.admin(scope, receive, send)
            return
        if kind != "http":
            ensure_context(scope, self.id)
            await self.app(scope, receive, send)
            return
        await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = ensure_context(scope, self.id)
        try:
            # A stalled or trickling body gets a 408 from whichever layer reads it (slow clients,
            # docs/security.md); under `aigw serve` the server bounds the headers too. Whether the
            # answer has started is what the telemetry layer (always the outermost) records on
            # the context: no second wrapper around every message of every stream.
            await self.app(scope, body_deadline(receive, self._body_timeout), send)
        except UpstreamStreamError:
            # The upstream broke inside a non-streamed body after we had started relaying it.
            # Returning without finishing the body makes the server drop the connection, which
            # is the only honest way left to tell the client (never a silent, truncated 200).
            return
        except GatewayError as exc:
            if ctx.sent_status is not None:
                raise
            await send_error(send, exc, ctx.response_headers())
        except Exception:
            logger.exception("unhandled error in the gateway pipeline")
            if ctx.sent_status is not None:
                raise
            await send_error(send, GatewayError("Internal gateway error"), ctx.response_headers())

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[Gateway]:
        """For hosts that manage resources: ``async with gateway.lifespan(): ...``."""
        try:
            yield self
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Flush logs and close every pool; the gateway reopens them lazily if used again."""
        closers = (
            self.telemetry.aclose,
            self.cache.aclose,
            self.rate_limit.aclose,
            self.budgets.aclose,
            self.keys.aclose,
            self.router.aclose,
        )
        for closer in closers:
            try:
                await closer()
            except Exception:  # one failing backend must not keep the others open
                logger.exception("error while closing the gateway")
