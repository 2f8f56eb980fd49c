"""BudgetMiddleware: admit a request only if its worst-case cost fits, settle it to the real cost.

Sits innermost, just before the router: cache hits (free) never reach it, nor do requests the
rate limit refused, and each universal step, WebSocket message step and ``/compat`` target is
its own request here, with its real provider and model. Per request that a budget applies to
(rules.py; GET/HEAD/OPTIONS/DELETE never are — they make nothing generate):

1. the worst case (estimate.py) is reserved on every applicable counter at once (ledger.py:
   all or nothing, atomic in the storage), else 429 code 2031 with ``Retry-After`` = seconds to
   the window's reset (none for a ``total`` budget);
2. the inner app runs — the answer streams through untouched; only the number of stream events
   the client received is counted, for a stream that gets cut;
3. when the answer has ended — complete, cut by the client, broken upstream, or cancelled — the
   reservation is settled to the real cost (the logged cost). This is the one place that sees
   every provider request end, HTTP or WebSocket message alike, and it settles exactly what it
   reserved, so nothing else needs to know that budgets exist.

Realtime sessions (``WS /{provider}/…``) are admitted the same way at the upgrade (the model is
the query's ``model``) and settled when the session closes, to the usage its events reported; a
session may run past its reservation (the documented tolerance, docs/keys-and-budgets.md).

Models without a price: ``spend.unknown_price = "allow"`` (default) reserves and charges $0 and
warns once per model; ``"refuse"`` answers 403 code 2032. Storage trouble goes through one
`Breaker`: ``spend.fail_open = false`` (default: budgets are money) answers 503 code 2011.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from .._asgi import ClientDisconnected, deny_websocket, read_body, replay_receive
from ..breaker import Breaker, StorageDown
from ..config import Config, validate
from ..context import RequestContext, Usage, ensure_context
from ..errors import BudgetExhausted, GatewayError, KeyNotAllowed, StoreUnavailable, send_error
from ..ids import uuid7
from ..keys.policy import SAFE_METHODS, provider_of, request_model
from ..providers.registry import ProviderRegistry
from ..ratelimit.keys import Facts
from ..telemetry.cost import PriceTable, compute_cost
from ..types import ASGIApp, Message, Receive, Scope, Send
from .estimate import custom_cost, price_of, real_cost, worst_case
from .ledger import Ledger, nanos, nanos_up
from .rules import Charge, charges, compile_budgets, retry_after
from .storage import ledger_scheme, make_ledger, store_failures

logger = logging.getLogger("aigw_asgi.budgets")

_SETTLE_RETRIES = (1.0, 2.0, 4.0, 8.0, 16.0)  # then the lease is reclaimed (charged in full) at its deadline
_MAX_WARNED = 1024
_CLOSE_WAIT_S = 3.0


class BudgetMiddleware:
    """``BudgetMiddleware(app, config, ledger=…, prices=…, providers=…, clock=…)``.

    ``ledger``: a `Ledger` (default: the one ``spend.storage`` names, else the log store's
    database). ``prices``: the telemetry's `PriceTable` (so what is charged is what is logged).
    ``clock``: the wall clock that places windows (tests move it across a reset).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        ledger: Ledger | None = None,
        prices: PriceTable | None = None,
        providers: ProviderRegistry | None = None,
        clock: Callable[[], float] = time.time,
        outage_backoff_s: float = 1.0,
    ) -> None:
        self.app = app
        self.config = config if config is not None else validate(Config())
        self.spend = self.config.spend
        self.gateway_id = self.config.gateway.id
        self.budgets = compile_budgets(self.config.budgets)
        self.needs_metadata = any(part.startswith("metadata.") for b in self.budgets for part in b.scope)
        self.prices = prices if prices is not None else PriceTable(self.config.prices)
        self.providers = providers
        self.max_request_bytes = self.config.gateway.max_request_bytes
        self.clock = clock
        self._ledger = ledger
        self._own_ledger = ledger is None
        self.guard = Breaker(
            what="budget storage",
            logger=logger,
            timeout_s=self.spend.timeout_ms / 1000,
            backoff_s=outage_backoff_s,
            failures=store_failures(ledger.kind if ledger is not None else ledger_scheme(self.config)),
            consequence="budgeted requests are " + ("served uncounted" if self.spend.fail_open else "refused (503)"),
        )
        self._warned: set[tuple[str | None, str | None]] = set()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = make_ledger(self.config, timeout_s=self.guard.timeout_s)
        return self._ledger

    async def aclose(self) -> None:
        """Finish pending settlements (a few seconds at most: an open lease is reclaimed later
        anyway), then close the storage we built (an injected one is the caller's)."""
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=_CLOSE_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        ledger = self._ledger
        if ledger is not None and self._own_ledger:
            self._ledger = None
            await ledger.aclose()

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ctx = ensure_context(scope, self.gateway_id)
        key = ctx.key
        if (not self.budgets and (key is None or key.budget is None)) or (
            kind == "http" and ctx.method in SAFE_METHODS
        ):
            await self.app(scope, receive, send)
            return
        try:
            if kind == "http" and ctx.body is None:
                receive = replay_receive(await read_body(ctx, receive, self.max_request_bytes), receive)
            admitted = await self._admit(ctx, _query(scope) if kind == "websocket" else None)
        except GatewayError as exc:
            ctx.fail(exc)
            await self._refuse(scope, receive, send, ctx, exc)
            return
        except ClientDisconnected:
            ctx.client_gone()
            return
        if admitted is None:  # no budget applies, or the storage is down and fail_open is on
            await self.app(scope, receive, send)
            return
        watch = _StreamWatch(send)
        session = None
        if kind == "websocket":  # a realtime session: its spend is checked as usage is reported
            session = _SessionSpend(self, ctx, admitted)
            ctx.extra[SESSION_SPEND] = session.check
        try:
            await self.app(scope, receive, watch.send)
        except BaseException:
            # Cancelled (a WebSocket client left) or failed mid-answer: settle what was used
            # without holding up the unwinding.
            self._later(self._settle(ctx, admitted, watch.events, session))
            raise
        await self._settle(ctx, admitted, watch.events, session)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext, exc: GatewayError) -> None:
        if scope["type"] == "http":
            await send_error(send, exc, ctx.response_headers())
            return
        if (await receive())["type"] == "websocket.connect":
            await deny_websocket(scope, send, exc, ctx.response_headers())

    # -- admission ------------------------------------------------------------------------------

    def _facts(self, ctx: RequestContext, query: dict[str, str] | None) -> Facts:
        return Facts(
            token=ctx.token_name,
            provider=ctx.provider or provider_of(ctx.path),
            model=request_model(ctx, self.providers, query),
            # ctx.options raises InvalidRequest (400) on a malformed cf-aig-metadata header.
            metadata=ctx.options.metadata if self.needs_metadata else None,
        )

    async def _admit(self, ctx: RequestContext, query: dict[str, str] | None) -> _Admitted | None:
        """The reservation made for ``ctx``; ``None`` when nothing applies. Raises the refusal."""
        now = self.clock()
        facts = self._facts(ctx, query)
        found = charges(self.budgets, ctx.key, facts, now)
        if not found:
            return None
        price = self.prices.price_for(facts.model, facts.provider)
        worst = worst_case(ctx.body or b"", ctx.json(), price, custom_cost(ctx), self.spend.max_output_tokens)
        amount = worst.usd
        if amount is None:
            if self.spend.unknown_price == "refuse":
                raise KeyNotAllowed(
                    f"Model '{(facts.model or '?')[:128]}' has no price, and spend budgets refuse unpriced models "
                    '(spend.unknown_price = "refuse")'
                )
            self._warn_unpriced(facts.provider, facts.model)
            amount = 0.0
        admitted = _Admitted(uuid7(), found, nanos_up(amount), amount)
        counters = [c.counter for c in found]
        attempted = self.guard.available()  # an open circuit fails at once, without trying
        try:
            refused = await self.guard.call(
                self.ledger.reserve,
                admitted.lease,
                counters,
                admitted.amount,
                now=now,
                ttl=self.spend.reservation_ttl_s,
            )
        except StorageDown:
            if attempted:
                # The reserve may have run before the call failed (a timeout): release it, which
                # is a no-op if it did not.
                self._later(self._retry(admitted, 0))
            if self.spend.fail_open:
                return None
            raise StoreUnavailable("Budget storage unavailable") from None
        if refused >= 0:
            charge = found[refused]
            ctx.rate_limited_by = f"budget:{charge.budget.label}"
            raise _exhausted(charge, now)
        return admitted

    def _warn_unpriced(self, provider: str | None, model: str | None) -> None:
        if (provider, model) in self._warned or len(self._warned) >= _MAX_WARNED:
            return
        self._warned.add((provider, model))
        logger.warning(
            "spend budgets: no price for model %r (provider %r): its requests are admitted and charged $0; "
            'add [prices."%s"] to the config, or set spend.unknown_price = "refuse"',
            model,
            provider,
            model or "MODEL",
        )

    # -- settlement -----------------------------------------------------------------------------

    async def _settle(
        self, ctx: RequestContext, admitted: _Admitted, events: int, session: _SessionSpend | None = None
    ) -> None:
        try:
            cost = real_cost(ctx, self.prices, reserved=admitted.usd, events=events)
        except Exception:  # pricing must never leave a reservation open
            logger.exception("spend budgets: could not price a finished request; charging its reservation")
            cost = admitted.usd
        await self._settle_to(admitted, nanos(cost))
        if session is not None:  # the session's extra reservations: released, the real cost is charged above
            for extra in session.extras:
                await self._settle_to(extra, 0)

    async def _settle_to(self, admitted: _Admitted, actual: int) -> None:
        """Settle now; if the storage is down, keep trying in the background (``_SETTLE_RETRIES``)."""
        counters = [c.counter for c in admitted.charges]
        try:
            await self.guard.call(self.ledger.settle, admitted.lease, counters, admitted.amount, actual)
        except StorageDown:
            self._later(self._retry(admitted, actual))
        except Exception:
            logger.exception("spend budgets: settling a request failed; it is reclaimed at its deadline")

    async def _retry(self, admitted: _Admitted, actual: int) -> None:
        counters = [c.counter for c in admitted.charges]
        for delay in _SETTLE_RETRIES:
            await asyncio.sleep(delay)
            try:
                await self.guard.call(self.ledger.settle, admitted.lease, counters, admitted.amount, actual)
                return
            except StorageDown:
                continue
        logger.warning("spend budgets: a reservation stays open until its deadline, then is charged in full")

    def _later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


SESSION_SPEND = "aigw.budgets.session_spend"
"""``ctx.extra`` key: ``await check(usage_so_far)`` -> the `BudgetExhausted` that ends a realtime
session, or ``None``. Set by the budget layer for WebSocket sessions it admitted."""


class _SessionSpend:
    """A realtime session's spend, checked each time the provider reports usage.

    At the upgrade the session reserved one answer's worst case. When what it has used passes
    what it holds, it reserves the difference (atomically, like any request); a refusal means a
    budget is exhausted and the relay closes the session. All is settled to the real cost at the end.
    """

    __slots__ = ("layer", "ctx", "admitted", "held", "extras")

    def __init__(self, layer: BudgetMiddleware, ctx: RequestContext, admitted: _Admitted) -> None:
        self.layer = layer
        self.ctx = ctx
        self.admitted = admitted
        self.held = admitted.amount  # nano-dollars reserved for this session so far
        self.extras: list[_Admitted] = []

    async def check(self, usage: Usage) -> GatewayError | None:
        layer, ctx = self.layer, self.ctx
        cost, _ = compute_cost(usage, price_of(ctx, layer.prices), custom=custom_cost(ctx))
        used = nanos(cost or 0.0)
        if used <= self.held:
            return None
        extra = _Admitted(uuid7(), self.admitted.charges, used - self.held, (used - self.held) / 1e9)
        now = layer.clock()
        try:
            refused = await layer.guard.call(
                layer.ledger.reserve,
                extra.lease,
                [c.counter for c in extra.charges],
                extra.amount,
                now=now,
                ttl=layer.spend.reservation_ttl_s,
            )
        except StorageDown:
            return None if layer.spend.fail_open else StoreUnavailable("Budget storage unavailable")
        if refused >= 0:
            charge = extra.charges[refused]
            ctx.rate_limited_by = f"budget:{charge.budget.label}"
            return _exhausted(charge, now)
        self.extras.append(extra)
        self.held = used
        return None


class _Admitted:
    """A reservation held for one request."""

    __slots__ = ("lease", "charges", "amount", "usd")

    def __init__(self, lease: str, found: list[Charge], amount: int, cost: float) -> None:
        self.lease = lease
        self.charges = found
        self.amount = amount  # nano-dollars reserved on every counter
        self.usd = cost


class _StreamWatch:
    """Counts the events of a streamed answer as they go to the client (nothing else is touched)."""

    __slots__ = ("_send", "_mark", "events")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._mark: bytes | None = None
        self.events = 0

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            for name, value in message.get("headers") or ():
                if name == b"content-type":
                    value = value.lower()
                    if value.startswith(b"text/event-stream"):
                        self._mark = b"data:"
                    elif value.startswith(b"application/x-ndjson"):
                        self._mark = b"\n"
                    break
        elif kind == "http.response.body" and self._mark is not None:
            body = message.get("body", b"")
            if body:
                self.events += body.count(self._mark)
        await self._send(message)


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}


def _exhausted(charge: Charge, now: float) -> BudgetExhausted:
    budget = charge.budget
    seconds = retry_after(charge.window, now)
    span = "in total" if budget.period == "total" else f"per {budget.period}"
    what = f"of key '{budget.label[4:]}'" if budget.key_id is not None else f"'{budget.label}'"
    reset = "; it does not reset" if seconds is None else f"; resets in {seconds} s"
    headers = [] if seconds is None else [(b"retry-after", str(seconds).encode())]
    return BudgetExhausted(f"Spend budget {what} exhausted (${budget.usd:g} {span}){reset}", headers=headers)
