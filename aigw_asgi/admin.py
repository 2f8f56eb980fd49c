"""Admin API (SPEC §9): ``/admin/*``, outside the request pipeline.

    GET    /admin/health                    gateway id, log writer and store state
    GET    /admin/logs                      filtered, ordered, paged rows (no bodies)
    DELETE /admin/logs                      rows matching the filters (no filter: needs all=true)
    GET    /admin/logs/{id}                 one row
    PATCH  /admin/logs/{id}                 {"feedback": -1|0|1|null, "score": 0-100|null, "metadata": {...}}
    DELETE /admin/logs/{id}                 one row
    GET    /admin/logs/{id}/request         the stored request body
    GET    /admin/logs/{id}/response        the stored response body
    GET    /admin/analytics                 totals and groups (time, provider, model, metadata.KEY)
    GET    /admin/prices                    the effective price table
    DELETE /admin/cache                     purge all, ?key=K or ?provider=P

Answers use Cloudflare's v4 envelope (``{"success":true,"result":…,"result_info":…}``), errors
the gateway's error envelope. The admin token is checked by ``AdminGuard`` (auth.py), which wraps
this app in the gateway. Reads first flush the log writer, so a row is visible as soon as the
response that carries its ``cf-aig-log-id`` has been sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._asgi import send_json
from .context import route_path
from .errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge, StoreUnavailable, send_error
from .options import parse_metadata
from .telemetry.query import LogQuery, parse_query
from .types import Receive, Scope, Send

if TYPE_CHECKING:
    from .gateway import Gateway
    from .telemetry.middleware import TelemetryMiddleware

logger = logging.getLogger("aigw_asgi.admin")

_MAX_ADMIN_BODY = 65_536
_FLUSH_WAIT_S = 2.0


class MethodNotAllowed(GatewayError):
    status, code, default_message = 405, 2004, "Method not allowed"


def envelope(result: object, result_info: object | None = None) -> bytes:
    body: dict[str, object] = {"success": True, "result": result, "errors": [], "messages": []}
    if result_info is not None:
        body["result_info"] = result_info
    return json.dumps(body, separators=(",", ":")).encode()


class AdminApp:
    """The admin API of one gateway (``gateway.telemetry`` for logs, ``gateway.cache`` for purge)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @property
    def telemetry(self) -> TelemetryMiddleware:
        return self.gateway.telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            status, body, info = await self._route(scope, receive)
        except GatewayError as exc:
            await send_error(send, exc)
            return
        except Exception:
            logger.exception("admin API: backing store failure")
            await send_error(send, StoreUnavailable("A backing store (logs or cache) is unavailable"))
            return
        if isinstance(body, bytes):
            await send_json(send, status, body)
        else:
            await send_json(send, status, envelope(body, info))

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, Any, Any]:
        method: str = scope["method"]
        parts = route_path(scope).rstrip("/").split("/")[2:]  # after "", "admin"
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        match parts:
            case ["health"]:
                _allow(method, "GET")
                return await self._health()
            case ["logs"]:
                _allow(method, "GET", "DELETE")
                return await (self._list(params) if method == "GET" else self._delete_many(params))
            case ["logs", log_id]:
                _allow(method, "GET", "PATCH", "DELETE")
                if method == "GET":
                    return 200, (await self._row(log_id)).to_dict(), None
                if method == "PATCH":
                    return await self._patch(log_id, await _read_json(receive))
                return await self._delete_one(log_id)
            case ["logs", log_id, ("request" | "response") as which]:
                _allow(method, "GET")
                row = await self._row(log_id, bodies=True)
                text = row.request_body if which == "request" else row.response_body
                if text is None:
                    raise NotFound(f"No {which} body stored for this log")
                return 200, _maybe_json(text), None
            case ["analytics"]:
                _allow(method, "GET")
                q = parse_query(params)
                await self._flush()
                return 200, await self.telemetry.store.analytics(q), None
            case ["prices"]:
                _allow(method, "GET")
                return 200, self.telemetry.prices.to_dict(), None
            case ["cache"]:
                _allow(method, "DELETE")
                return await self._purge(params)
        raise NotFound()

    # -- handlers -------------------------------------------------------------------------------

    async def _health(self) -> tuple[int, Any, Any]:
        await self._flush()
        logs: dict[str, Any] = self.telemetry.stats()
        status = "ok"
        try:
            logs["rows"] = await asyncio.wait_for(self.telemetry.store.count(), 2.0)
        except Exception as exc:  # a broken store degrades logging, not the gateway
            status = "degraded"
            logs["error"] = f"log store unavailable ({type(exc).__name__})"
        return 200, {"status": status, "gateway": self.gateway.id, "logs": logs}, None

    async def _list(self, params: dict[str, list[str]]) -> tuple[int, Any, Any]:
        q = parse_query(params)
        _only_filters(q, allow_delete=False)
        await self._flush()
        rows, total = await self.telemetry.store.query(q)
        info = {"page": q.page, "per_page": q.per_page, "count": len(rows), "total_count": total}
        return 200, [r.to_dict() for r in rows], info

    async def _delete_many(self, params: dict[str, list[str]]) -> tuple[int, Any, Any]:
        q = parse_query(params)
        _only_filters(q, allow_delete=True)
        if not q.has_filters() and not q.all:
            raise InvalidRequest("Refusing to delete every log without all=true")
        await self._flush()
        return 200, {"deleted": await self.telemetry.store.delete(q)}, None

    async def _delete_one(self, log_id: str) -> tuple[int, Any, Any]:
        await self._row(log_id)
        deleted = await self.telemetry.store.delete(_by_id(log_id))
        return 200, {"deleted": deleted}, None

    async def _patch(self, log_id: str, body: Any) -> tuple[int, Any, Any]:
        changes = validate_patch(body)
        await self._flush()
        row = await self.telemetry.store.patch(log_id, changes)
        if row is None:
            raise NotFound("Log not found")
        return 200, row.to_dict(), None

    async def _purge(self, params: dict[str, list[str]]) -> tuple[int, Any, Any]:
        unknown = set(params) - {"key", "provider"}
        if unknown:
            raise InvalidRequest(f"Unknown query parameter {sorted(unknown)[0][:64]}")
        key = params["key"][-1] if "key" in params else None
        provider = params["provider"][-1] if "provider" in params else None
        purged = await self.gateway.cache.purge(key=key, provider=provider)
        return 200, {"purged": purged}, None

    # -- helpers --------------------------------------------------------------------------------

    async def _row(self, log_id: str, *, bodies: bool = False) -> Any:
        await self._flush()
        row = await self.telemetry.store.get(log_id, bodies=bodies)
        if row is None:
            raise NotFound("Log not found")
        return row

    async def _flush(self) -> None:
        try:
            await asyncio.wait_for(self.telemetry.flush(), _FLUSH_WAIT_S)
        except TimeoutError:
            pass  # a slow store: answer with what is written


def _by_id(log_id: str) -> LogQuery:
    q = LogQuery()
    q.text["id"] = log_id
    return q


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise MethodNotAllowed(f"Method not allowed; use {', '.join(allowed)}")


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


async def _read_json(receive: Receive) -> Any:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("Client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_ADMIN_BODY:
            raise PayloadTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
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
