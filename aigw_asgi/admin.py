"""Admin API (SPEC §9): ``/admin/*``, outside the request pipeline, on Starlette's routing.

    GET    /admin/health                    gateway id, log writer and store state
    GET    /admin/logs                      filtered, ordered, paged rows (no bodies)
    DELETE /admin/logs                      rows matching the filters (no filter: needs all=true)
    GET    /admin/logs/{id}                 one row (?bodies=true: with the stored bodies as text)
    PATCH  /admin/logs/{id}                 {"feedback": -1|0|1|null, "score": 0-100|null, "metadata": {...}}
    DELETE /admin/logs/{id}                 one row
    GET    /admin/logs/{id}/request         the stored request body
    GET    /admin/logs/{id}/response        the stored response body
    GET    /admin/analytics                 totals and groups (time, provider, model, metadata.KEY)
    GET    /admin/prices                    the effective price table
    GET    /admin/cache                     the cache storage: kind, entries and bytes where it can tell
    DELETE /admin/cache                     purge all, ?key=K or ?provider=P
    GET    /admin/config                    the effective config, every secret masked; providers
    GET    /admin/                          the dashboard (dashboard/), assets under /admin/assets/
    …      /admin/keys, /admin/budgets      sections that live with what they administer (keys/, budgets/)

Answers use Cloudflare's v4 envelope (``{"success":true,"result":…,"result_info":…}``), errors
the gateway's error envelope — Starlette's own 404/405/413 answers included, through the
exception handlers below. The admin token is checked by ``AdminGuard`` (auth.py), which wraps
this app in the gateway. Reads first flush the log writer, so a row is visible as soon as the
response that carries its ``cf-aig-log-id`` has been sent.

The admin app gets what it uses, never the gateway: the log store and the writer that feeds
it, the cache storage, the price table and the config (typed by their protocols), so the
gateway builds it last and nothing imports back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, Router

from . import dashboard
from .cache.storage import CacheStorage
from .config import Config
from .context import route_path
from .errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge, StoreUnavailable
from .options import parse_metadata
from .settings import masked_config, providers_view
from .telemetry.cost import PriceTable
from .telemetry.query import LogQuery, parse_query
from .telemetry.records import LogRecord
from .telemetry.stores import LogStore
from .types import Receive, Scope, Send

logger = logging.getLogger("aigw_asgi.admin")

_MAX_ADMIN_BODY = 65_536
_FLUSH_WAIT_S = 2.0
PREFIX = "/admin"


class MethodNotAllowed(GatewayError):
    status, code, default_message = 405, 2004, "Method not allowed"


class LogWriter(Protocol):
    """What the admin API needs from the log writer: wait for queued rows, report its counters."""

    async def flush(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class Section(Protocol):
    """A part of the admin API that lives with what it administers (`KeyAdmin`, `BudgetAdmin`)."""

    def routes(self) -> list[BaseRoute]: ...


class Envelope(JSONResponse):
    """Cloudflare's v4 success envelope, encoded as the admin API always has (ASCII-safe JSON)."""

    def __init__(self, result: object, result_info: object | None = None, status_code: int = 200) -> None:
        body: dict[str, object] = {"success": True, "result": result, "errors": [], "messages": []}
        if result_info is not None:
            body["result_info"] = result_info
        super().__init__(body, status_code)

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def error_response(exc: GatewayError) -> Response:
    """The gateway's error envelope (SPEC §4) as a Starlette response."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in exc.headers}
    return Response(exc.envelope(), exc.status, headers, media_type="application/json")


class AdminApp:
    """The admin API of one gateway: ``AdminApp(config, store=…, writer=…, cache=…, prices=…, sections=…)``."""

    def __init__(
        self,
        config: Config,
        *,
        store: LogStore,
        writer: LogWriter,
        cache: CacheStorage,
        prices: PriceTable,
        sections: Sequence[Section] = (),
    ) -> None:
        self.config = config
        self.sections = sections
        self.gateway_id = config.gateway.id
        self.store = store
        self.writer = writer
        self.cache = cache
        self.prices = prices
        self.router = Router(self.routes(), redirect_slashes=False, default=self._not_found)
        self.app = ExceptionMiddleware(
            self.router,
            handlers={GatewayError: self._gateway_error, HTTPException: self._http_error, Exception: self._failure},
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/logs", self.list_logs, methods=["GET"]),
            Route("/logs", self.delete_logs, methods=["DELETE"]),
            Route("/logs/{log_id}", self.get_log, methods=["GET"]),
            Route("/logs/{log_id}", self.patch_log, methods=["PATCH"]),
            Route("/logs/{log_id}", self.delete_log, methods=["DELETE"]),
            Route("/logs/{log_id}/request", partial(self.log_body, "request"), methods=["GET"]),
            Route("/logs/{log_id}/response", partial(self.log_body, "response"), methods=["GET"]),
            Route("/analytics", self.analytics, methods=["GET"]),
            Route("/prices", self.list_prices, methods=["GET"]),
            Route("/cache", self.cache_stats, methods=["GET"]),
            Route("/cache", self.purge_cache, methods=["DELETE"]),
            Route("/config", self.effective_config, methods=["GET"]),
            *(route for section in self.sections for route in section.routes()),
            *dashboard.routes(admin_token=bool(self.config.gateway.admin_token)),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        # Route below /admin, trailing slashes ignored (``/admin/logs/`` is ``/admin/logs``).
        # ``app`` in the scope makes Starlette raise its 404/405 instead of answering in plain
        # text, so the handlers below can answer them in the gateway's envelope.
        sub = route_path(scope)[len(PREFIX) :]
        prefix = scope.get("root_path", "") + PREFIX
        if not sub and scope["method"] in ("GET", "HEAD"):
            # The dashboard's relative URLs resolve against "/admin/", never "/admin".
            await RedirectResponse(prefix + "/")(scope, receive, send)
            return
        sub = sub.rstrip("/") or "/"
        child = dict(scope, app=self, root_path=prefix, path=prefix + sub)
        await self.app(child, receive, send)

    # -- handlers -------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        await self._flush()
        logs: dict[str, Any] = self.writer.stats()
        status = "ok"
        try:
            logs["rows"] = await asyncio.wait_for(self.store.count(), 2.0)
        except Exception as exc:  # a broken store degrades logging, not the gateway
            status = "degraded"
            logs["error"] = f"log store unavailable ({type(exc).__name__})"
        return Envelope({"status": status, "gateway": self.gateway_id, "logs": logs})

    async def list_logs(self, request: Request) -> Response:
        q = parse_query(_params(request))
        _only_filters(q, allow_delete=False)
        await self._flush()
        rows, total = await self.store.query(q)
        info = {"page": q.page, "per_page": q.per_page, "count": len(rows), "total_count": total}
        return Envelope([r.to_dict() for r in rows], info)

    async def delete_logs(self, request: Request) -> Response:
        q = parse_query(_params(request))
        _only_filters(q, allow_delete=True)
        if not q.has_filters() and not q.all:
            raise InvalidRequest("Refusing to delete every log without all=true")
        await self._flush()
        return Envelope({"deleted": await self.store.delete(q)})

    async def get_log(self, request: Request) -> Response:
        bodies = request.query_params.get("bodies", "").lower() in ("true", "1")  # the dashboard's detail pane
        row = await self._row(request.path_params["log_id"], bodies=bodies)
        return Envelope(row.to_dict(bodies=bodies))

    async def patch_log(self, request: Request) -> Response:
        changes = validate_patch(await read_json(request))
        await self._flush()
        row = await self.store.patch(request.path_params["log_id"], changes)
        if row is None:
            raise NotFound("Log not found")
        return Envelope(row.to_dict())

    async def delete_log(self, request: Request) -> Response:
        log_id = request.path_params["log_id"]
        await self._row(log_id)
        return Envelope({"deleted": await self.store.delete(_by_id(log_id))})

    async def log_body(self, which: str, request: Request) -> Response:
        row = await self._row(request.path_params["log_id"], bodies=True)
        text = row.request_body if which == "request" else row.response_body
        if text is None:
            raise NotFound(f"No {which} body stored for this log")
        return Envelope(_maybe_json(text))

    async def analytics(self, request: Request) -> Response:
        q = parse_query(_params(request))
        await self._flush()
        return Envelope(await self.store.analytics(q))

    async def list_prices(self, request: Request) -> Response:
        return Envelope(self.prices.to_dict())

    async def cache_stats(self, request: Request) -> Response:
        stats = getattr(self.cache, "stats", None)  # optional in the CacheStorage protocol
        counts = await stats() if stats is not None else {"entries": None, "bytes": None}
        return Envelope({"storage": type(self.cache).__name__, **counts})

    async def effective_config(self, request: Request) -> Response:
        return Envelope({"config": masked_config(self.config), "providers": providers_view(self.config)})

    async def purge_cache(self, request: Request) -> Response:
        params = _params(request)
        unknown = set(params) - {"key", "provider"}
        if unknown:
            raise InvalidRequest(f"Unknown query parameter {sorted(unknown)[0][:64]}")
        if "key" in params:
            purged = int(await self.cache.delete(params["key"][-1]))
        else:
            purged = await self.cache.purge(params["provider"][-1] if "provider" in params else None)
        return Envelope({"purged": purged})

    # -- errors ---------------------------------------------------------------------------------

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotFound()

    async def _gateway_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(exc)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (a route with another method, an unreadable static file)."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = self._allowed_methods(request.scope)
            error: GatewayError = MethodNotAllowed(
                f"Method not allowed; use {', '.join(allowed)}",
                headers=[(b"allow", ", ".join(allowed).encode())],
            )
        elif exc.status_code == 413:
            error = PayloadTooLarge()
        elif exc.status_code == 404:
            error = NotFound()
        else:
            error = InvalidRequest(exc.detail)
        return error_response(error)

    async def _failure(self, request: Request, exc: Exception) -> Response:
        logger.error("admin API: backing store failure", exc_info=exc)
        return error_response(StoreUnavailable("A backing store (logs, cache, keys or budgets) is unavailable"))

    def _allowed_methods(self, scope: Scope) -> list[str]:
        """Every method some route accepts at this path (the ``Allow`` header of a 405)."""
        path = route_path(scope)
        methods: set[str] = set()
        for route in self.router.routes:
            if isinstance(route, Route) and route.methods and route.path_regex.match(path):
                methods |= route.methods - {"HEAD"}
        return sorted(methods) or ["GET"]  # the dashboard's static files

    # -- helpers --------------------------------------------------------------------------------

    async def _row(self, log_id: str, *, bodies: bool = False) -> LogRecord:
        await self._flush()
        row = await self.store.get(log_id, bodies=bodies)
        if row is None:
            raise NotFound("Log not found")
        return row

    async def _flush(self) -> None:
        try:
            await asyncio.wait_for(self.writer.flush(), _FLUSH_WAIT_S)
        except TimeoutError:
            pass  # a slow store: answer with what is written


def _params(request: Request) -> dict[str, list[str]]:
    """Query parameters as ``name -> values`` (blank values kept), what `parse_query` reads."""
    qp = request.query_params
    return {name: qp.getlist(name) for name in qp.keys()}


def _by_id(log_id: str) -> LogQuery:
    q = LogQuery()
    q.text["id"] = log_id
    return q


def _only_filters(q: LogQuery, *, allow_delete: bool) -> None:
    if q.group_by:
        raise InvalidRequest("Unknown query parameter group_by (use /admin/analytics)")
    if not allow_delete and (q.limit is not None or q.all):
        raise InvalidRequest("limit and all apply to DELETE only")


def validate_patch(body: Any) -> dict[str, Any]:
    """The fields a PATCH may change, checked like Cloudflare's: feedback -1|0|1, score 0-100."""
    if not isinstance(body, dict) or not body:
        raise InvalidRequest("Expected a JSON object with feedback, score and/or metadata")
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "feedback":
            if value is not None and (isinstance(value, bool) or value not in (-1, 0, 1)):
                raise InvalidRequest("feedback: expected -1, 0, 1 or null")
            changes["feedback"] = value
        elif key == "score":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            ):
                raise InvalidRequest("score: expected a number from 0 to 100 or null")
            if value is not None and not 0 <= value <= 100:
                raise InvalidRequest("score: expected a number from 0 to 100 or null")
            changes["score"] = value
        elif key == "metadata":
            if value is None:
                changes["metadata"] = None
                continue
            try:
                changes["metadata"] = parse_metadata(json.dumps(value), "metadata") or None
            except GatewayError as exc:
                raise InvalidRequest(exc.message.replace("Invalid header metadata", "metadata")) from None
        else:
            raise InvalidRequest(f"Unknown field {key[:64]!r}: expected feedback, score or metadata")
    return changes


async def read_json(request: Request) -> Any:
    """The JSON body, capped at 64 KiB while it arrives (an admin body is a few fields)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > _MAX_ADMIN_BODY:
                raise PayloadTooLarge()
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("Client disconnected") from None
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("Expected a JSON body") from None


def _maybe_json(text: str) -> Any:
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text
