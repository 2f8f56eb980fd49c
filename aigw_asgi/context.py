"""The per-request context: the one object every layer reads and fills.

A request entering the gateway gets a `RequestContext` at ``scope["state"]["aigw"]``. Layers never
smuggle anything else between them: auth writes ``token_name``, the cache writes ``cache_status``,
the router writes ``provider``, ``model``, ``usage`` and the timings, telemetry reads it all at the
end and writes the log row. Because each middleware may also run alone around any ASGI app,
`ensure_context` creates the object on first touch, whoever touches it first.

Retries and universal steps: ``log_id`` always names the attempt that is running (or answered).
When the router retries, it moves a snapshot of the failed attempt to ``attempts`` and takes a
fresh log id, so telemetry can write one row per attempt and the ``cf-aig-log-id`` header names
the row of the answer. A universal request runs each step as a child context (``children``),
each with its own attempts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from . import _json
from .errors import GatewayError
from .headers import header
from .ids import uuid7
from .options import RequestOptions, parse_options
from .types import Headers, Scope

if TYPE_CHECKING:
    from .keys.model import GatewayKey


class ErrorType(StrEnum):
    """Why a request or attempt failed, when no exception class or HTTP status says it better.

    ``error_type`` is low-cardinality (an OTel ``error.type`` and a log field): one of these, a
    `GatewayError` class name (``"UpstreamTimeout"``), or an upstream HTTP status (``"429"``).
    """

    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"
    CLIENT_DISCONNECT = "client_disconnect"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    CONNECT_ERROR = "connect_error"
    STREAM_ERROR = "stream_error"


CLIENT_DISCONNECTED = "client disconnected"
"""The ``error`` of a request whose client left before its answer was complete."""


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them; ``None`` means unknown, never a guess."""

    tokens_in: int | None = None
    tokens_out: int | None = None
    cached_tokens_in: int | None = None
    reasoning_tokens_out: int | None = None

    def known(self) -> bool:
        return self.tokens_in is not None or self.tokens_out is not None

    def merge(self, other: Usage) -> None:
        """Fill in what ``other`` knows (streams report input and output in different events)."""
        if other.tokens_in is not None:
            self.tokens_in = other.tokens_in
        if other.tokens_out is not None:
            self.tokens_out = other.tokens_out
        if other.cached_tokens_in is not None:
            self.cached_tokens_in = other.cached_tokens_in
        if other.reasoning_tokens_out is not None:
            self.reasoning_tokens_out = other.reasoning_tokens_out


@dataclass(slots=True)
class Attempt:
    """A finished upstream attempt that did not answer the client (it was retried or fell back)."""

    log_id: str
    step: int
    attempt: int
    provider: str | None
    model: str | None
    status_code: int | None
    started: float
    ended: float
    first_byte: float | None
    error: str | None
    error_type: str | None
    usage: Usage
    response_body: bytes | None = None


@dataclass(slots=True)
class RequestContext:
    """Everything the layers know about one request (see the module docstring)."""

    gateway_id: str
    method: str
    path: str  # the route path inside the gateway, e.g. "/openai/chat/completions"
    headers: Headers  # the client's request headers (not copied)
    client_ip: str | None = None
    user_agent: str | None = None

    log_id: str = field(default_factory=uuid7)
    request_id: str = ""
    event_id: str = ""

    # Filled by the layers.
    token_name: str | None = None  # auth: the name of the gateway token that matched
    gateway_token: str | None = field(default=None, repr=False)  # auth: never logged or forwarded
    key: GatewayKey | None = field(default=None, repr=False)  # auth: the runtime key that matched (keys/)
    provider: str | None = None
    endpoint: str | None = None  # the upstream path after the provider slug
    model: str | None = None  # the requested model
    response_model: str | None = None  # the model the provider says answered
    upstream_host: str | None = None  # router: the provider host, set once an upstream call is made
    upstream_port: int | None = None
    step: int = 0
    attempt: int = 1
    cache_status: str = "MISS"  # HIT | MISS | BYPASS (BYPASS is logged, the header says MISS)
    cache_key: str | None = None
    stream: bool = False  # the answer is a stream (SSE or NDJSON)
    stream_complete: bool = False  # the stream's terminal event was seen (cacheable, not cut)
    status_code: int | None = None
    sent_status: int | None = None  # the status line the client was sent (telemetry: `sent`)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    custom_cost: bool = False
    rate_limited_by: str | None = None
    cache_vary: dict[str, Any] | None = field(default=None, repr=False)  # /compat: the client's own body, also keyed
    error: str | None = None  # a human message, secrets redacted
    error_code: int | None = None  # gateway error code (2003, 2005…) when the gateway made the answer
    error_type: str | None = None  # low-cardinality: "429", "timeout", exception class…

    # Timings: perf_counter() seconds, plus wall-clock start for the log's created_at.
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    ended: float | None = None

    # Bodies. ``body`` is read at most once per request by whichever layer needs it first;
    # later layers (and the inner app, through a replaying ``receive``) reuse it.
    body: bytes | None = field(default=None, repr=False)
    response_body: bytes | None = field(default=None, repr=False)  # captured for logs (capped)
    _json: Any = field(default=None, repr=False)
    _json_parsed: bool = field(default=False, repr=False)
    _options: RequestOptions | None = field(default=None, repr=False)
    _options_error: GatewayError | None = field(default=None, repr=False)

    attempts: list[Attempt] = field(default_factory=list)
    children: list[RequestContext] = field(default_factory=list)
    parent: RequestContext | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)  # for layers outside this package

    def __post_init__(self) -> None:
        if not self.request_id:
            self.request_id = self.log_id

    # -- request data, parsed at most once ------------------------------------------------------

    def header(self, name: bytes) -> bytes | None:
        """The first value of a request header (``name`` lowercase)."""
        return header(self.headers, name)

    @property
    def options(self) -> RequestOptions:
        """The parsed ``cf-aig-*`` request headers.

        Parsed on first use and cached; an invalid header raises the same `GatewayError` (400,
        code 2004) to every layer that asks, so whichever layer needs an option first answers it.
        """
        if self._options is None:
            if self._options_error is not None:
                raise self._options_error
            try:
                self._options = parse_options(self.headers)
            except GatewayError as exc:
                self._options_error = exc
                raise
        return self._options

    def set_body(self, body: bytes) -> None:
        """Replace the body to forward (e.g. after a rewrite) and forget the parsed JSON."""
        self.body = body
        self._json = None
        self._json_parsed = False

    def json(self) -> Any:
        """The request body parsed as JSON, or ``None`` when it is not JSON. Parsed once."""
        if not self._json_parsed:
            self._json_parsed = True
            if self.body:
                try:
                    self._json = _json.loads(self.body)
                except _json.JSONDecodeError:
                    self._json = None
        return self._json

    @property
    def metadata(self) -> dict[str, str | int | float | bool]:
        try:
            return self.options.metadata
        except GatewayError:
            return {}

    # -- outcomes: the one way layers record how a request ended ------------------------------
    #
    # The first cause wins: a later symptom (the client leaving after the stream broke) never
    # replaces the ``error_type`` of what went wrong first.

    def answered(self, status: int) -> None:
        """An answer with ``status`` starts (upstream or cached); a 4xx/5xx is its own error type."""
        self.status_code = status
        if status >= 400:
            self.error_type = self.error_type or str(status)

    def sent(self, status: int) -> None:
        """The response started towards the client with ``status``: from here on a failure can
        only cut the answer, never replace it (the Gateway reads this instead of wrapping ``send``)."""
        self.sent_status = status

    def fail(self, exc: GatewayError, kind: str | None = None) -> None:
        """The gateway answers (or would have answered) with ``exc``: its status, message and code.

        ``kind`` is the ``error_type`` when the class name says too little (``RATE_LIMITED``).
        """
        self.status_code, self.error, self.error_code = exc.status, exc.message, exc.code
        self.error_type = self.error_type or kind or type(exc).__name__

    def broke(self, message: str, kind: str) -> None:
        """Something failed after the answer had started (a stream cut mid-way): status unchanged."""
        self.error = self.error or message
        self.error_type = self.error_type or kind

    def client_gone(self) -> None:
        """The client left before the answer was complete: 499 if nothing had been answered yet.

        Not an error after a stream's terminal event (``stream_complete``): that client has the
        whole answer -- the openai SDK hangs up at ``[DONE]`` -- whichever layer notices it leave.
        """
        if self.stream_complete:
            return
        if self.status_code is None:
            self.status_code = 499
        self.broke(CLIENT_DISCONNECTED, ErrorType.CLIENT_DISCONNECT)

    def crashed(self, exc: BaseException) -> None:
        """The inner app raised before answering; the host (or the outermost layer) answers it."""
        if isinstance(exc, GatewayError):
            self.fail(exc)
        elif isinstance(exc, asyncio.CancelledError):
            if self.status_code is None:
                self.status_code = 499
            self.broke("cancelled", ErrorType.CANCELLED)
        elif isinstance(exc, Exception):
            self.status_code = 500
            # The class name only: an exception's text may carry anything, secrets included.
            self.error, self.error_type = f"internal error ({type(exc).__name__})", type(exc).__name__

    def adopt(self, child: RequestContext) -> None:
        """Take the outcome of the child (a universal step) that answered for this request."""
        self.step, self.log_id = child.step, child.log_id
        self.provider, self.model, self.endpoint = child.provider, child.model, child.endpoint
        self.status_code, self.cache_status, self.stream = child.status_code, child.cache_status, child.stream
        self.error, self.error_code, self.error_type = child.error, child.error_code, child.error_type
        self.first_byte, self.ended = child.first_byte, time.perf_counter()

    @property
    def answer(self) -> RequestContext:
        """The context whose answer the client got: the last step tried, or this one."""
        return self.children[-1] if self.children else self

    # -- retries --------------------------------------------------------------------------------

    def next_attempt(self, *, status_code: int | None, error: str | None, error_type: str | None) -> None:
        """Record the running attempt as failed and start a new one with a fresh log id."""
        self.attempts.append(
            Attempt(
                log_id=self.log_id,
                step=self.step,
                attempt=self.attempt,
                provider=self.provider,
                model=self.model,
                status_code=status_code,
                started=self.started,
                ended=time.perf_counter(),
                first_byte=self.first_byte,
                error=error,
                error_type=error_type,
                usage=self.usage,
                response_body=self.response_body,
            )
        )
        self.log_id = uuid7()
        self.attempt += 1
        self.started = time.perf_counter()
        self.first_byte = None
        self.usage = Usage()
        self.response_body = None
        self.error = self.error_type = None
        self.error_code = None

    # -- response headers -----------------------------------------------------------------------

    def response_headers(self) -> Headers:
        """The ``cf-aig-*`` headers every gateway-handled response carries (SPEC §3)."""
        log_id = self.log_id.encode()
        # Unless a client chose them, the request and event ids are the log id itself: encoded once.
        headers = [
            (b"cf-aig-log-id", log_id),
            (b"cf-aig-request-id", log_id if self.request_id is self.log_id else self.request_id.encode()),
            (b"cf-aig-event-id", log_id if self.event_id is self.log_id else self.event_id.encode("latin-1")),
            (b"cf-aig-step", str(self.step).encode()),
            (b"cf-aig-cache-status", b"HIT" if self.cache_status == "HIT" else b"MISS"),
        ]
        if self.provider:
            headers.append((b"cf-aig-provider", self.provider.encode()))
        if self.model:
            headers.append((b"cf-aig-model", self.model.encode("latin-1", "replace")))
        return headers


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def route_path(scope: Scope) -> str:
    """The path below the app's mount point, as Starlette computes it for mounted apps."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def ensure_context(scope: Scope, gateway_id: str = "default") -> RequestContext:
    """The request's context, created on first touch (any layer may be the outermost one)."""
    state = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    ctx: RequestContext | None = state.get("aigw")
    if ctx is None:
        headers: Headers = scope.get("headers", [])
        ctx = RequestContext(
            gateway_id=gateway_id,
            method=scope.get("method", "GET"),
            path=route_path(scope),
            headers=headers,
            client_ip=_client_ip(scope),
        )
        for key, value in headers:
            if key == b"user-agent":
                ctx.user_agent = value.decode("latin-1")
            elif key == b"cf-aig-event-id":
                ctx.event_id = value.decode("latin-1")
        if not ctx.event_id:
            ctx.event_id = ctx.log_id
        state["aigw"] = ctx
    return ctx


def get_context(scope: Scope) -> RequestContext | None:
    """The request's context if a gateway layer has created one."""
    state = scope.get("state")
    return state.get("aigw") if state else None
