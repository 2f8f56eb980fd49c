"""RateLimitMiddleware: Cloudflare's gateway-wide limit plus scoped request and token rules.

Sits inside the cache (cache hits never reach it) and in front of the router, so a refused
request never reaches a provider. Per request:

1. resolve the facts the rules are scoped by (token name, client IP, provider, model, metadata);
   the body is read only when a rule is scoped by model and nobody named the model yet;
2. token rules: refuse when the token budget is already spent (a read, nothing is consumed);
3. request rules: one `limits` ``hit()`` each, in config order;
4. run the inner app; then debit token rules with the real usage the router recorded
   (streams included).

A refusal is a 429 (code 2003) with ``Retry-After`` and ``RateLimit-*`` headers, and
``ctx.rate_limited_by`` names the rule for the log row. Storage trouble goes through one
`Breaker` (breaker.py): a call that fails or times out lets *its* request through when
``fail_open`` (else 503 code 2011); only ``breaker_failures`` consecutive failures open the
circuit, and only then do requests pass without asking the store (one warning per outage).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from .._asgi import ClientDisconnected, deny_websocket, read_body, replay_receive
from ..breaker import Breaker, StorageDown
from ..config import RateLimitConfig
from ..context import ErrorType, RequestContext, ensure_context, get_context
from ..errors import GatewayError, RateLimited, StoreUnavailable, send_error
from ..providers.registry import ProviderRegistry, model_from
from ..types import ASGIApp, Message, Receive, Scope, Send
from .keys import (
    Facts,
    FixedCounter,
    Rule,
    client_ip,
    compile_rules,
    counter_key,
    denial_message,
    fixed_reset_in,
    key_rule,
    limit_headers,
    provider_from_path,
    window_key,
)
from .storage import close_storage, logger, preload_storage, storage_from_uri

Debits = list[tuple[Rule, RateLimiter, str]]
"""Token rules that admitted a request, with their counter keys (without window index)."""
Check = tuple[Rule, RateLimiter, FixedCounter | None]
"""A rule, its `limits` strategy, and for a fixed request rule the keys of its counters."""

SESSION_DEBIT = "aigw.ratelimit.session_debit"
"""``ctx.extra`` key: ``async debit(tokens)`` for a WebSocket session whose token rules admitted
it; the session layer (realtime) calls it as the provider reports usage."""


class RateLimitMiddleware:
    """Wrap any ASGI app: ``RateLimitMiddleware(app, RateLimitConfig(limit=100, period=60))``.

    ``storage`` injects a `limits.aio` storage (else one is built from ``config.storage`` on
    first use, in the running loop). ``trusted_proxy_header`` names the header that carries the
    client IP for ``ip`` rules (else the socket peer). ``providers`` lets ``model`` rules read
    models that live in the path (Gemini, Workers AI). ``clock`` is the wall clock that places
    fixed windows (tests move it across a boundary).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: RateLimitConfig | None = None,
        *,
        gateway_id: str = "default",
        storage: Storage | None = None,
        trusted_proxy_header: str | None = None,
        providers: ProviderRegistry | None = None,
        max_request_bytes: int = 26_214_400,
        clock: Callable[[], float] = time.time,
        outage_backoff_s: float = 1.0,
    ) -> None:
        self.app = app
        self.config = config or RateLimitConfig()
        self.gateway_id = gateway_id
        self.rules = compile_rules(self.config, gateway_id)
        self.proxy_header = trusted_proxy_header.lower().encode("latin-1") if trusted_proxy_header else None
        self.providers = providers
        self.max_request_bytes = max_request_bytes
        self.clock = clock
        self.needs_model = any(rule.needs_model for rule in self.rules)
        self.needs_metadata = any(rule.needs_metadata for rule in self.rules)
        # Without a scoped rule every request counts in the same counters: no facts to resolve.
        self._scoped = any(rule.scope for rule in self.rules)
        self.guard = Breaker(
            what="rate-limit storage",
            logger=logger,
            timeout_s=self.config.timeout_ms / 1000,
            backoff_s=outage_backoff_s,
            threshold=self.config.breaker_failures,
            failures=(StorageError, OSError),
        )
        self._storage = storage
        self._own_storage = storage is None
        if storage is None:
            preload_storage(self.config.storage)
        self._guarded = True
        self._checks: tuple[Check, ...] | None = None  # token rules first
        self._fixed: RateLimiter
        self._incr: Callable[..., Awaitable[int]]  # the storage's own increment (fixed request rules)
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    def _limiters(self) -> tuple[Check, ...]:
        """Rules paired with their `limits` strategy; built on first use, inside the loop."""
        if self._checks is None:
            if self._storage is None:
                self._storage = storage_from_uri(
                    self.config.storage, timeout_s=self.guard.timeout_s, key_prefix=self.config.key_prefix
                )
            # A memory storage cannot fail or stall: skip the timeout machinery on that hot path.
            self._guarded = not isinstance(self._storage, MemoryStorage)
            fixed = self._fixed = FixedWindowRateLimiter(self._storage)
            sliding = SlidingWindowCounterRateLimiter(self._storage)
            self._incr = self._storage.incr
            ordered = sorted(self.rules, key=lambda rule: rule.unit != "tokens")  # reads before hits
            self._checks = tuple(
                (rule, fixed, FixedCounter(rule) if rule.unit == "requests" else None)
                if rule.technique == "fixed"
                else (rule, sliding, None)
                for rule in ordered
            )
        return self._checks

    async def aclose(self) -> None:
        """Finish pending debits and close the storage we built (an injected one is the caller's)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        storage, self._checks = self._storage, None
        if storage is not None and self._own_storage:
            self._storage = None
            await close_storage(storage)

    def _store(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """``fn(*args, **kwargs)`` through the breaker; a memory storage is called directly."""
        if self._guarded:
            return self.guard.call(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, self._closing_on_shutdown(receive), send)
        elif not self.rules and _key_rule(get_context(scope), self.gateway_id) is None:
            await self.app(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        """Pass the lifespan through, closing our storage when the server shuts down."""

        async def receive_lifespan() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return receive_lifespan

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = ensure_context(scope, self.gateway_id)
        try:
            if self.needs_model and ctx.model is None and ctx.body is None:
                receive = replay_receive(await read_body(ctx, receive, self.max_request_bytes), receive)
            refusal, debits = await self._admit(ctx, read_body_model=True)
        except GatewayError as exc:  # invalid cf-aig-metadata, body too large
            _record(ctx, exc)
            await send_error(send, exc, ctx.response_headers())
            return
        except ClientDisconnected:
            return
        if refusal is not None:
            self._describe(ctx, self._facts(ctx))  # a refusal is rare: resolved again, as `_admit` did
            _record(ctx, refusal)
            await send_error(send, refusal, ctx.response_headers())
            return
        if not debits:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except BaseException:
            # Cancelled or failed mid-answer: tokens may have been spent upstream; debit them
            # without holding up the unwinding.
            task = asyncio.get_running_loop().create_task(self._debit(ctx, debits))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            raise
        await self._debit(ctx, debits)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An upgrade counts as one request on the request rules; refused before accept.

        Token rules refuse a session whose budget is spent, like a request; the session's tokens
        are debited as the provider reports them, through ``ctx.extra[SESSION_DEBIT]``.
        """
        ctx = ensure_context(scope, self.gateway_id)
        try:
            refusal, debits = await self._admit(ctx, read_body_model=False)
        except GatewayError as exc:
            refusal, debits = exc, []
        if refusal is None:
            if debits:
                ctx.extra[SESSION_DEBIT] = functools.partial(self._charge, debits)
            await self.app(scope, receive, send)
            return
        _record(ctx, refusal)
        await deny_websocket(scope, send, refusal, ctx.response_headers())

    # -- for the WebSocket API dispatcher ------------------------------------------------------

    async def check(self, ctx: RequestContext) -> GatewayError | None:
        """Admit one WebSocket API message (its context filled like an HTTP request's).

        Returns the error to answer with (`RateLimited`, `StoreUnavailable`, `InvalidRequest`
        for bad metadata) or ``None``. An admitted message must be followed by
        ``await debit(ctx)`` once its answer is complete, so token rules see its usage.
        """
        if not self.rules and _key_rule(ctx, self.gateway_id) is None:
            return None
        try:
            refusal, debits = await self._admit(ctx, read_body_model=True)
        except GatewayError as exc:
            refusal, debits = exc, []
        if refusal is not None:
            _record(ctx, refusal)
            return refusal
        if debits:
            ctx.extra["aigw.ratelimit.debits"] = debits
        return None

    async def debit(self, ctx: RequestContext) -> None:
        """Debit the token rules that admitted ``ctx`` (after `check`) with its real usage."""
        debits = ctx.extra.pop("aigw.ratelimit.debits", None)
        if debits:
            await self._debit(ctx, debits)

    # -- decisions ------------------------------------------------------------------------------

    def _facts(self, ctx: RequestContext) -> Facts:
        peer = ctx.client_ip
        return Facts(
            token=ctx.token_name,
            ip=client_ip(peer, ctx.header(self.proxy_header)) if self.proxy_header else peer,
            provider=ctx.provider or provider_from_path(ctx.path),
            model=ctx.model,
            # ctx.options raises InvalidRequest (400) on a malformed cf-aig-metadata header.
            metadata=ctx.options.metadata if self.needs_metadata else None,
        )

    def _describe(self, ctx: RequestContext, facts: Facts) -> None:
        """Name the provider and model of a refused request, as the router would have: its log row
        (and the ``cf-aig-provider``/``cf-aig-model`` headers) must show what was refused, or
        analytics filtered by model would never count its 429s. The body is used only if read."""
        known = self.providers is None or (facts.provider is not None and facts.provider in self.providers)
        if ctx.provider is None and known:
            ctx.provider = facts.provider
        if ctx.model is None:
            ctx.model = facts.model or (self._model(ctx, ctx.provider) if ctx.body and ctx.provider else None)

    def _model(self, ctx: RequestContext, provider: str | None) -> str | None:
        body = ctx.json() if ctx.body else None
        registered = self.providers.get(provider) if self.providers is not None and provider else None
        if registered is not None:
            return model_from(registered, ctx.path.partition("/")[2].partition("/")[2], {}, body)
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) and model else None

    async def _admit(self, ctx: RequestContext, *, read_body_model: bool) -> tuple[GatewayError | None, Debits]:
        """The refusal for this request (or ``None``) and the token rules to debit afterwards.

        Raises `InvalidRequest` for a malformed ``cf-aig-metadata`` when a rule is scoped by it.
        """
        checks = self._limiters()
        keyed = _key_rule(ctx, self.gateway_id)
        if keyed is not None:  # the key's own limit (keys/), after the config's rules
            checks = (*checks, (keyed, self._fixed, None))
        facts = self._facts(ctx) if self._scoped or keyed is not None else _UNSCOPED
        if self.needs_model and facts.model is None and read_body_model:
            facts.model = self._model(ctx, facts.provider)
        now = self.clock()
        debits: Debits = []
        for rule, limiter, counter in checks:
            key = counter_key(rule, facts)
            if key is None:
                continue
            try:
                if counter is not None:  # a fixed request rule: what `limiter.hit` does, key kept
                    if await self._store(self._incr, counter(key, now), rule.period) <= rule.limit:
                        continue
                elif rule.unit == "tokens":
                    allowed = await self._store(limiter.test, rule.item, window_key(rule, key, now))
                    if allowed:
                        debits.append((rule, limiter, key))
                        continue
                elif await self._store(limiter.hit, rule.item, window_key(rule, key, now)):
                    continue
                return await self._refusal(rule, limiter, key, now), debits
            except StorageDown:
                if self.config.fail_open:
                    return None, debits
                return StoreUnavailable("Rate-limit storage unavailable"), []
        return None, debits

    async def _refusal(self, rule: Rule, limiter: RateLimiter, key: str, now: float) -> RateLimited:
        try:
            stats = await self._store(limiter.get_window_stats, rule.item, window_key(rule, key, now))
            remaining = stats.remaining
            reset_in = fixed_reset_in(rule, now) if rule.technique == "fixed" else stats.reset_time - time.time()
        except StorageDown:
            remaining, reset_in = 0, float(rule.period)
        return _Refused(rule, limit_headers(rule, remaining, reset_in))

    async def _debit(self, ctx: RequestContext, debits: Debits) -> None:
        """Charge token rules with what the provider reported, retries included."""
        await self._charge(debits, _tokens(ctx))

    async def _charge(self, debits: Debits, tokens: int) -> None:
        if tokens <= 0:
            return
        now = self.clock()
        for rule, limiter, key in debits:
            counter = window_key(rule, key, now)
            try:
                if not await self._store(limiter.hit, rule.item, counter, cost=tokens):
                    # A fixed window counts the whole cost even when it goes over; the sliding
                    # counter refuses a cost that does not fit, so fill the budget instead: the
                    # rule then refuses until the window has slid enough.
                    if rule.technique == "sliding":
                        stats = await self._store(limiter.get_window_stats, rule.item, counter)
                        if stats.remaining > 0:
                            await self._store(limiter.hit, rule.item, counter, cost=stats.remaining)
            except StorageDown:
                return
            except Exception:  # never let accounting break an answer that was already sent
                logger.exception("rate limit: token debit failed for rule %r", rule.name)


_UNSCOPED = Facts()
"""The facts of a request when no rule is scoped (never read: every counter key is the rule's own)."""


class _Refused(RateLimited):
    """A `RateLimited` that remembers which rule refused (for ``ctx.rate_limited_by``)."""

    def __init__(self, rule: Rule, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(denial_message(rule), headers=headers)
        self.rule = rule


def _record(ctx: RequestContext, exc: GatewayError) -> None:
    if isinstance(exc, _Refused):
        ctx.rate_limited_by = exc.rule.name
        ctx.fail(exc, ErrorType.RATE_LIMITED)
    else:
        ctx.fail(exc)


def _key_rule(ctx: RequestContext | None, gateway_id: str) -> Rule | None:
    """The rate limit of the request's runtime gateway key, if it has one."""
    key = ctx.key if ctx is not None else None
    limit = key.rate_limit if key is not None else None
    if limit is None:
        return None
    return key_rule(gateway_id, limit.limit, limit.period, limit.unit)


def _tokens(ctx: RequestContext) -> int:
    total = 0
    for usage in [attempt.usage for attempt in ctx.attempts] + [ctx.usage]:
        total += (usage.tokens_in or 0) + (usage.tokens_out or 0)
    return total
