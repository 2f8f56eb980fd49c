"""Log rows (SPEC §9) built from finished request contexts.

The request path only queues the finished `RequestContext`; turning it into rows (decoding and
redacting bodies, pricing retried attempts, flattening metadata) happens here, on the log
writer's side, so none of it is paid for while a client waits.

One row per upstream attempt: a request that was retried gets a row for every failed attempt
(``ctx.attempts``) plus one for the attempt that answered, whose id is the ``cf-aig-log-id`` the
client saw. A universal request gets the rows of each step (``ctx.children``), not one of its own.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import GatewayError
from ..redact import request_secrets
from .cost import compute_cost

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..context import Attempt, RequestContext
    from ..redact import Redactor
    from .cost import PriceTable


LOG_METADATA = "aigw.log.metadata"
"""``ctx.extra`` key: entries a layer adds to the row's ``metadata`` (a realtime session's frame
and byte counts, docs/realtime.md), beside the client's ``cf-aig-metadata``."""


@dataclass(slots=True)
class LogRecord:
    """One stored log row. ``created_at`` is epoch seconds here and ISO 8601 in the API."""

    id: str
    created_at: float
    gateway: str
    provider: str | None = None
    model: str | None = None
    path: str = ""
    method: str = "POST"
    status_code: int | None = None
    success: bool = False
    cached: bool = False
    step: int = 0
    attempt: int = 1
    event_id: str = ""
    request_id: str = ""
    duration_ms: float | None = None
    ttft_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached_tokens_in: int | None = None
    cost: float | None = None
    custom_cost: bool = False
    metadata: dict[str, str | int | float | bool] | None = None
    token_name: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    error: str | None = None
    error_type: str | None = None
    stream: bool = False
    cache_status: str | None = None
    cache_key: str | None = None  # "{provider}:{sha256}", what DELETE /admin/cache?key= takes
    rate_limited_by: str | None = None
    feedback: int | None = None
    score: float | None = None
    request_body: str | None = None
    response_body: str | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.tokens_in is None and self.tokens_out is None:
            return None
        return (self.tokens_in or 0) + (self.tokens_out or 0)

    def to_dict(self, *, bodies: bool = False) -> dict[str, Any]:
        """The API shape: ISO timestamps, bodies only when asked."""
        out = asdict(self)
        out["created_at"] = iso(self.created_at)
        if not bodies:
            del out["request_body"], out["response_body"]
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> LogRecord:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in FIELD_NAMES})


FIELD_NAMES = frozenset(f.name for f in fields(LogRecord))
BODY_FIELDS = ("request_body", "response_body")

ColumnKind = Literal["text", "real", "int", "bool", "json"]
_KINDS: dict[object, ColumnKind] = {str: "text", float: "real", int: "int", bool: "bool", dict: "json"}


def _kind(annotation: object) -> ColumnKind:
    """``int | None`` -> "int", ``dict[str, ...] | None`` -> "json": what a store needs to pick a type."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return _KINDS[typing.get_origin(options[0]) or options[0]]


COLUMNS: tuple[tuple[str, ColumnKind], ...] = tuple(
    (name, _kind(hint)) for name, hint in typing.get_type_hints(LogRecord).items() if name not in BODY_FIELDS
)
"""The stored columns of a log row (bodies live apart), derived from `LogRecord`: each SQL store
maps the kinds to its own types, so a field added to the record is a column everywhere."""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def raw_body(body: bytes | None, cap: int) -> Any:
    """A body as a row takes it before decoding: the capped bytes (`unredacted_records`'s ``body``
    for a store that decodes on its own side, the SQLite writer process)."""
    return body[:cap] if body else None


def body_text(body: bytes | None, cap: int) -> str | None:
    """A stored body: UTF-8 text capped at ``cap`` bytes, or a placeholder for binary data."""
    if not body:
        return None
    body = body[:cap]
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(body) - 3:  # the cap cut a multi-byte character in half
            return body[: exc.start].decode("utf-8", "replace")
        return f"<{len(body)} bytes of binary data>"


@dataclass(slots=True)
class RecordSettings:
    """What the writer needs to turn contexts into rows (compiled once by the middleware)."""

    collect_payload: bool
    max_body_bytes: int
    prices: PriceTable
    redactor: Redactor | None = None


def records_from_context(ctx: RequestContext, settings: RecordSettings) -> list[LogRecord]:
    """The rows of one finished request, redacted: its attempts, or each universal step's attempts."""
    redactor = settings.redactor
    rows = unredacted_records(ctx, settings)
    if redactor is None:
        return [row for row, _ in rows]
    return [redact_record(row, redactor, extra) for row, extra in rows]


def unredacted_records(
    ctx: RequestContext, settings: RecordSettings, body: Callable[[bytes | None, int], Any] = body_text
) -> list[tuple[LogRecord, tuple[str, ...]]]:
    """The rows of one finished request before redaction, each beside the credentials its request
    carried (what `redact_record` needs besides the gateway's own secrets).

    ``body`` turns a captured body into the row's (`body_text` by default; `raw_body` leaves the
    decoding to a store that does it elsewhere).

    Split from the redaction so a store can redact somewhere else: building is a few µs a row,
    redacting a 7 kB body is most of the rest (the SQLite writer process does it, see
    `stores.sqlite_process`).
    """
    if ctx.children:
        out: list[tuple[LogRecord, tuple[str, ...]]] = []
        for child in ctx.children:
            out.extend(unredacted_records(child, settings, body))
        return out
    options = _options(ctx)
    if options is not None and options.collect_log is False:
        return []
    payload = settings.collect_payload and (options is None or options.collect_log_payload is not False)
    # The credentials this request carried, redacted too: looked for as plain strings, nothing compiled.
    extra = tuple(request_secrets(ctx)) if settings.redactor is not None else ()
    cap = settings.max_body_bytes
    request_body = body(ctx.body, cap) if payload else None
    metadata = {**ctx.metadata, **ctx.extra.get(LOG_METADATA, {})} or None
    base_perf = ctx.attempts[0].started if ctx.attempts else ctx.started

    rows = []
    if ctx.attempts:
        # What every row of this request says alike, whichever attempt it describes.
        shared: dict[str, Any] = {
            "gateway": ctx.gateway_id,
            "path": ctx.path,
            "method": ctx.method,
            "event_id": ctx.event_id,
            "request_id": ctx.request_id,
            "metadata": metadata,
            "token_name": ctx.token_name,
            "client_ip": ctx.client_ip,
            "user_agent": ctx.user_agent,
            "cache_status": ctx.cache_status,
            "request_body": request_body,
        }
        rows = [(_attempt_row(ctx, a, settings, base_perf, shared, payload, body), extra) for a in ctx.attempts]
    status = ctx.status_code
    error = ctx.error
    if error is None and status is not None and status >= 400:
        error = f"HTTP {status}"
    usage = ctx.usage
    # Every request's row, so in LogRecord's field order: 35 keyword arguments cost the writer's
    # thread ~2 µs a row more than positional ones (benchmarks/README.md, seventh pass).
    row = LogRecord(
        ctx.log_id,  # id
        ctx.started_at + (ctx.started - base_perf),  # created_at
        ctx.gateway_id,  # gateway
        ctx.provider,
        ctx.response_model or ctx.model,  # model
        ctx.path,
        ctx.method,
        status,  # status_code
        status is not None and status < 400 and ctx.error is None,  # success
        ctx.cache_status == "HIT",  # cached
        ctx.step,
        ctx.attempt,
        ctx.event_id,
        ctx.request_id,
        _ms(ctx.ended, ctx.started),  # duration_ms
        _ms(ctx.first_byte, ctx.started),  # ttft_ms
        usage.tokens_in,
        usage.tokens_out,
        usage.cached_tokens_in,
        ctx.cost,
        ctx.custom_cost,
        metadata,
        ctx.token_name,
        ctx.client_ip,
        ctx.user_agent,
        error,
        ctx.error_type,
        ctx.stream,
        ctx.cache_status,
        ctx.cache_key,
        ctx.rate_limited_by,
        None,  # feedback
        None,  # score
        request_body,
        body(ctx.response_body, cap) if payload else None,  # response_body
    )
    rows.append((row, extra))
    return rows


def redact_record(record: LogRecord, redactor: Redactor, extra: Iterable[str] = ()) -> LogRecord:
    """``record`` with its free text (bodies, error) redacted, in place; returns it."""
    record.request_body = _redacted(record.request_body, redactor, extra)
    record.response_body = _redacted(record.response_body, redactor, extra)
    record.error = _redacted(record.error, redactor, extra)
    return record


def _attempt_row(
    ctx: RequestContext,
    a: Attempt,
    settings: RecordSettings,
    base_perf: float,
    shared: dict[str, Any],
    payload: bool,
    body: Callable[[bytes | None, int], Any],
) -> LogRecord:
    cost, custom = compute_cost(a.usage, settings.prices.price_for(a.model, a.provider), custom=_custom(ctx))
    return LogRecord(
        **shared,
        id=a.log_id,
        created_at=ctx.started_at + (a.started - base_perf),
        provider=a.provider,
        model=a.model,
        status_code=a.status_code,
        success=False,
        cached=False,
        step=a.step,
        attempt=a.attempt,
        duration_ms=_ms(a.ended, a.started),
        ttft_ms=_ms(a.first_byte, a.started),
        tokens_in=a.usage.tokens_in,
        tokens_out=a.usage.tokens_out,
        cached_tokens_in=a.usage.cached_tokens_in,
        cost=cost,
        custom_cost=custom,
        error=a.error,
        error_type=a.error_type,
        response_body=body(a.response_body, settings.max_body_bytes) if payload else None,
    )


def apply_cost(ctx: RequestContext, prices: PriceTable) -> None:
    """Set ``ctx.cost``/``ctx.custom_cost`` (and each universal step's) from usage and prices.

    Runs on the request path before the OTel recorder finishes, so spans carry the cost too:
    it is a memoised dict lookup and a few multiplications.
    """
    if ctx.children:
        costs = []
        for child in ctx.children:
            apply_cost(child, prices)
            costs.append(child.cost)
        known = [c for c in costs if c is not None]
        ctx.cost = math.fsum(known) if known else None
        ctx.custom_cost = any(child.custom_cost for child in ctx.children)
        return
    price = prices.price_for(ctx.response_model, ctx.provider) or prices.price_for(ctx.model, ctx.provider)
    ctx.cost, ctx.custom_cost = compute_cost(ctx.usage, price, custom=_custom(ctx), cache_hit=ctx.cache_status == "HIT")


def _options(ctx: RequestContext) -> Any:
    try:
        return ctx.options
    except GatewayError:
        return None  # an invalid header: the request got its 400; log it with the defaults


def _custom(ctx: RequestContext) -> Any:
    options = _options(ctx)
    return options.custom_cost if options is not None else None


def _ms(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return round(max(end - start, 0.0) * 1000, 3)


def _redacted(text: str | None, redactor: Redactor, extra: Iterable[str]) -> str | None:
    if text is None:
        return text
    return redactor(text, extra)
