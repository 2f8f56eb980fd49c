"""UniversalMiddleware: ``POST /`` — a JSON array of steps tried in order (SPEC §5).

Each step runs as an internal HTTP request through the inner stack (cache → rate limit →
router), exactly as if the client had sent it to ``/{provider}/{endpoint}``: same provider data,
BYOK keys, usage extraction, caching and rate limits, each with its own child `RequestContext`
(``parent`` set, ``step`` = its index) so telemetry writes one row per attempt of each step.

A step's ``config`` and ``headers`` become ``cf-aig-*`` / plain headers on that internal request,
layered over the client's own headers, so the precedence "step > request headers > gateway
``[retries]``" falls out of the ordinary header parsing. Retries happen inside each step (the
router); a step that still fails — transport error, timeout, any non-2xx — hands over to the
next. Only the response *start* of a step is held back to decide: a 2xx (or the last step's
answer, whatever it is) is forwarded and its body streamed as it comes, so fallback can never
happen after the first byte reached the client.

Steps whose provider is ``dynamic/NAME`` expand into the targets of ``[routes.NAME]`` in the
order the route's selector chooses (routing/balance.py); ``POST /dynamic/NAME/{endpoint}`` is the
same thing for provider-native clients (an SDK with ``base_url=".../dynamic/NAME"``).

`StepRunner` does the work and knows nothing about where steps come from, so the WebSocket API
(``GET /`` upgraded, websocket.py) runs its ``universal.create`` messages through the very same path.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from ._asgi import ClientDisconnected, read_body, replay_receive, set_headers
from .config import Config
from .context import RequestContext, ensure_context
from .errors import ConfigError, GatewayError, InvalidProvider, InvalidRequest, UpstreamError, send_error
from .options import BACKOFFS, parse_options
from .providers.registry import ProviderRegistry
from .routing.balance import Route, compile_routes, is_target_failure
from .types import ASGIApp, Headers, Receive, Scope, Send
from .websocket import WebSocketAPI

MAX_STEPS = 16  # user steps per request; more is an amplification risk, not a use case
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_STEP_KEYS = frozenset({"provider", "endpoint", "headers", "query", "config", "method", "authorization"})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # fullmatch only: "$" also matches before a final newline
# Headers a step may not set and the client's headers may not pass on: the internal request's
# framing is the gateway's own.
_FRAMING = frozenset({b"content-length", b"content-type", b"transfer-encoding", b"expect", b"host", b"connection"})
_CONFIG_HEADERS: dict[str, tuple[bytes, int, int]] = {
    "requestTimeout": (b"cf-aig-request-timeout", 1, 3_600_000),
    "maxAttempts": (b"cf-aig-max-attempts", 1, 5),
    "retryDelay": (b"cf-aig-retry-delay", 0, 5000),
}


@dataclass(slots=True)
class Step:
    """One validated user step (``dynamic/NAME`` not yet expanded)."""

    index: int  # position in the client's array, for error messages
    provider: str
    endpoint: str | None  # "chat/completions?x=1" as given (validated), None only for dynamic routes
    headers: Headers  # lowercase names; the step's headers, then its config as cf-aig-* headers
    query: Any = None
    has_query: bool = False
    method: str = "POST"


@dataclass(slots=True)
class PlannedStep:
    """One internal request to make: a concrete provider, endpoint and body."""

    provider: str
    path: str  # endpoint path, no query string, as a URL path (percent-encoding kept)
    query_string: bytes
    headers: Headers
    body: bytes
    method: str = "POST"
    model: str | None = None  # set for dynamic-route targets
    route: Route | None = None
    target: int | None = None  # index in route.targets
    source: int = 0  # the user step it came from


@dataclass(slots=True)
class _Outcome:
    committed: bool = False  # the response start went to the client
    status: int | None = None


# -- parsing (pure) ---------------------------------------------------------------------------------


def _bad(where: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid universal request: {where}: {why}")


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _field(where: str, key: str) -> str:
    """``steps[0].extra``; a key that is not a plain name is quoted (``steps[0][""]``, capped), so
    the path stays readable and an empty, huge or ``": "``-laden key cannot garble the message."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}"
    return f"{where}[{json.dumps(key[:64])}]"


def _check_endpoint(value: Any, where: str) -> str:
    """A relative URL path (plus optional query string) below the provider: never an escape."""
    if not isinstance(value, str) or not value:
        raise _bad(where, "expected a non-empty string")
    path = value.split("?", 1)[0]
    lowered = value.lower()
    if value.startswith("/") or "://" in value or "\\" in value or "//" in path:
        raise _bad(where, "must be a relative path like 'chat/completions'")
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered or "#" in value:
        raise _bad(where, "encoded slashes and fragments are not allowed")
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        raise _bad(where, "dot segments are not allowed")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value) or not value.isascii():
        raise _bad(where, "must be a URL path (percent-encode spaces and non-ASCII)")
    return value


def _header_value(value: Any, where: str) -> bytes:
    # As Cloudflare's binding does: numbers and booleans stringified, objects JSON-encoded.
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = json.dumps(value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"))
    else:
        raise _bad(where, "expected a string, number, boolean or object")
    if any(c in text for c in "\r\n\x00"):
        raise _bad(where, "line breaks are not allowed")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise _bad(where, "must be latin-1 text") from None


def _step_headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object of header names to values")
    out: Headers = []
    for name, value in raw.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise _bad(f"{where}", f"invalid header name {str(name)[:64]!r}")
        key = name.lower().encode()
        if key in _FRAMING:
            continue  # the gateway frames the internal request itself
        out.append((key, _header_value(value, f"{where}.{name}")))
    return out


def _config_headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object")
    out: Headers = []
    for key, value in raw.items():
        if key in _CONFIG_HEADERS:
            header, lo, hi = _CONFIG_HEADERS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise _bad(f"{where}.{key}", f"expected an integer from {lo} to {hi}")
            out.append((header, str(value).encode()))
        elif key == "backoff":
            if value not in BACKOFFS:
                raise _bad(f"{where}.backoff", "expected constant, linear or exponential")
            out.append((b"cf-aig-backoff", value.encode()))
        else:
            raise _bad(_field(where, key), "unknown key (known: requestTimeout, maxAttempts, retryDelay, backoff)")
    return out


def parse_step(raw: Any, index: int, providers: Container[str], routes: Mapping[str, Route]) -> Step:
    """Validate one step object; every error names the field (``steps[1].config.maxAttempts``)."""
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object")
    for key in raw:
        if key not in _STEP_KEYS:
            raise _bad(_field(where, key), "unknown key")
    provider = raw.get("provider")
    if not isinstance(provider, str) or not provider:
        raise _bad(f"{where}.provider", "expected a provider name")
    dynamic = provider.startswith("dynamic/")
    if dynamic:
        if provider[8:] not in routes:
            raise InvalidProvider(f"Invalid provider: {where}.provider: no route named {provider[8:64]!r}")
    elif provider not in providers:
        raise InvalidProvider(f"Invalid provider: {where}.provider {provider[:64]!r}")
    endpoint = raw.get("endpoint")
    if endpoint is not None or not dynamic:
        endpoint = _check_endpoint(endpoint, f"{where}.endpoint")
    method = raw.get("method", "POST")
    if not isinstance(method, str) or method not in _METHODS:  # a list or object is unhashable
        raise _bad(f"{where}.method", f"expected one of {', '.join(sorted(_METHODS))}")
    headers = _step_headers(raw.get("headers"), f"{where}.headers")
    authorization = raw.get("authorization")  # legacy field: the provider's Authorization value
    if authorization is not None:
        headers = set_headers(headers, [(b"authorization", _header_value(authorization, f"{where}.authorization"))])
    headers = set_headers(headers, _config_headers(raw.get("config"), f"{where}.config"))
    try:
        parse_options(headers)  # a bad cf-aig-* value in a step is the client's error, named now
    except InvalidRequest as exc:
        raise _bad(f"{where}.headers", exc.message) from None
    has_query = "query" in raw
    if not has_query and method in ("POST", "PUT", "PATCH"):
        raise _bad(f"{where}.query", "required (the JSON body sent to the provider)")
    return Step(index, provider, endpoint, headers, raw.get("query"), has_query, method)


def parse_steps(payload: Any, providers: Container[str], routes: Mapping[str, Route]) -> list[Step]:
    """The body of ``POST /``: a JSON array of steps, or one step object."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise _bad("body", "expected a JSON array of steps or one step object")
    if not payload:
        raise _bad("body", "expected at least one step")
    if len(payload) > MAX_STEPS:
        raise _bad("body", f"at most {MAX_STEPS} steps")
    return [parse_step(raw, i, providers, routes) for i, raw in enumerate(payload)]


def _body(query: Any, has_query: bool) -> bytes:
    return json.dumps(query, separators=(",", ":")).encode() if has_query else b""


def _split(endpoint: str) -> tuple[str, bytes]:
    path, _, query = endpoint.partition("?")
    return path, query.encode()


def expand(steps: list[Step], routes: Mapping[str, Route]) -> list[PlannedStep]:
    """Concrete requests in the order to try them; a ``dynamic/NAME`` step becomes its targets,
    ordered by the route's selector (this *is* the load-balancing decision for the request)."""
    planned: list[PlannedStep] = []
    for step in steps:
        if not step.provider.startswith("dynamic/"):
            path, query = _split(step.endpoint or "")
            body = _body(step.query, step.has_query)
            planned.append(PlannedStep(step.provider, path, query, step.headers, body, step.method, source=step.index))
            continue
        route = routes[step.provider[8:]]
        if step.has_query and not isinstance(step.query, dict):
            raise _bad(f"steps[{step.index}].query", "must be an object for a dynamic route (its model is set)")
        for index, target in route.plan():
            endpoint = target.endpoint or step.endpoint
            if endpoint is None:
                raise _bad(f"steps[{step.index}].endpoint", f"required: route target {target.label} names none")
            path, query = _split(endpoint)
            body = json.dumps({**(step.query or {}), "model": target.model}, separators=(",", ":")).encode()
            headers = step.headers
            if target.alias is not None:
                headers = set_headers(headers, [(b"cf-aig-byok-alias", target.alias.encode())])
            planned.append(
                PlannedStep(
                    target.provider,
                    path,
                    query,
                    headers,
                    body,
                    step.method,
                    model=target.model,
                    route=route,
                    target=index,
                    source=step.index,
                )
            )
    return planned


# -- running ----------------------------------------------------------------------------------------


class StepRunner:
    """Runs planned steps as internal requests through ``app`` (the inner middleware stack)."""

    def __init__(self, app: ASGIApp, providers: ProviderRegistry, routes: Mapping[str, Route]) -> None:
        self.app = app
        self.providers = providers
        self.routes = routes

    def plan(self, payload: Any) -> list[PlannedStep]:
        """Validate a universal body (array or object) and expand it; raises `GatewayError`."""
        return expand(parse_steps(payload, self.providers, self.routes), self.routes)

    async def run_steps(
        self, parent: RequestContext, scope: Scope, plan: list[PlannedStep], receive: Receive, send: Send
    ) -> RequestContext:
        """Try ``plan`` in order and answer through ``send``; return the child that answered.

        ``scope`` is the parent's (its client, server and the client's headers are inherited);
        ``receive`` is only used to notice a client leaving. Exactly one response goes to
        ``send``: the first 2xx, else the last step's answer (an upstream error or a gateway
        error), with that step's ``cf-aig-*`` headers.
        """
        child = parent
        for i, step in enumerate(plan):
            last = i == len(plan) - 1
            child, child_scope = self._child(parent, scope, step, i)
            parent.children.append(child)
            outcome = await self._run_one(child, child_scope, step, last, receive, send)
            self._learn(step, child)
            if outcome.committed:
                break
        parent.adopt(child)
        return child

    def _child(
        self, parent: RequestContext, scope: Scope, step: PlannedStep, index: int
    ) -> tuple[RequestContext, Scope]:
        """The step's context and scope: the parent's, pointed at ``/{provider}/{endpoint}``."""
        headers = [h for h in parent.headers if h[0] not in _FRAMING]
        framing: Headers = [(b"content-length", str(len(step.body)).encode())]
        if step.body:
            framing.append((b"content-type", b"application/json"))
        headers = set_headers(set_headers(headers, step.headers), framing)
        event_id = next((v.decode("latin-1") for k, v in step.headers if k == b"cf-aig-event-id"), parent.event_id)
        root = scope.get("root_path", "")
        child = RequestContext(
            gateway_id=parent.gateway_id,
            method=step.method,
            path=f"/{step.provider}/{unquote(step.path)}",
            headers=headers,
            client_ip=parent.client_ip,
            user_agent=parent.user_agent,
            request_id=parent.request_id,
            event_id=event_id,
            token_name=parent.token_name,
            gateway_token=parent.gateway_token,
            model=step.model,
            step=index,
            parent=parent,
        )
        child.body = step.body  # already read: no layer below reads it from ``receive`` again
        child_scope = {
            **scope,
            "method": step.method,
            "path": f"{root}{child.path}",
            "raw_path": f"{quote(root)}/{step.provider}/{step.path}".encode(),
            "query_string": step.query_string,
            "headers": headers,
            "state": {**(scope.get("state") or {}), "aigw": child},
        }
        return child, child_scope

    async def _run_one(
        self, child: RequestContext, child_scope: Scope, step: PlannedStep, last: bool, receive: Receive, send: Send
    ) -> _Outcome:
        outcome = _Outcome()

        async def step_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                outcome.status = message["status"]
                if 200 <= message["status"] < 300 or last:
                    outcome.committed = True
                    await send(message)
            elif outcome.committed:
                await send(message)
            # else: the body of an answer we fall back from — dropped as it drains

        try:
            await self.app(child_scope, replay_receive(step.body, receive), step_send)
        except GatewayError as exc:
            if outcome.status is not None:
                raise  # the inner app had already answered: nothing sane left to say
            child.fail(exc)
            if last:
                await send_error(send, exc, child.response_headers())
                outcome.committed = True
        finally:
            if child.ended is None:
                child.ended = time.perf_counter()
        if outcome.status is None and not outcome.committed and last:
            missing = UpstreamError("The step produced no answer")
            child.fail(missing)
            await send_error(send, missing, child.response_headers())
            outcome.committed = True
        return outcome

    @staticmethod
    def _learn(step: PlannedStep, child: RequestContext) -> None:
        """Feed a dynamic route's selector with how its target did (cache hits teach nothing)."""
        if step.route is None or step.target is None or child.cache_status == "HIT":
            return
        status = child.status_code
        if status is not None and 200 <= status < 300:
            end = child.first_byte or child.ended or time.perf_counter()
            step.route.selector.record_success(step.target, max(0.0, end - child.started))
        elif is_target_failure(status, child.error_code):
            step.route.selector.record_failure(step.target)


class UniversalMiddleware:
    """``POST /`` (and ``/dynamic/NAME/...``) → steps through the inner app; all else passes."""

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        providers: ProviderRegistry | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self.app = app
        self.config = config or Config()
        self.gateway_id = self.config.gateway.id
        self.max_body = self.config.gateway.max_request_bytes
        self.providers = providers or ProviderRegistry.from_config(self.config)
        self.routes = routes if routes is not None else compile_routes(self.config.routes)
        for name, route in self.routes.items():
            for i, target in enumerate(route.targets):
                if target.provider not in self.providers:
                    raise ConfigError(f"routes.{name}.targets[{i}].provider: unknown provider {target.provider!r}")
        self.runner = StepRunner(app, self.providers, self.routes)
        # GET / upgraded: `Gateway` wires its telemetry and rate limiter into it.
        self.websocket = WebSocketAPI(self.runner, self.config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # websocket GET /: the WebSocket API runs its messages through self.runner. Other
            # websocket paths (realtime pass-through) and lifespan pass through.
            if scope["type"] == "websocket" and ensure_context(scope, self.gateway_id).path == "/":
                await self.websocket(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        ctx = ensure_context(scope, self.gateway_id)
        if ctx.path == "/" and ctx.method == "POST":
            await self._answer(ctx, scope, receive, send, None)
        elif ctx.path.startswith("/dynamic/"):
            await self._answer(ctx, scope, receive, send, ctx.path[9:])
        else:
            await self.app(scope, receive, send)

    async def _answer(
        self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send, dynamic: str | None
    ) -> None:
        try:
            ctx.options  # noqa: B018 - a bad cf-aig-* header on the request is a 400 before any step
            body = await read_body(ctx, receive, self.max_body)
            payload = ctx.json()
            if payload is None and body.strip() not in (b"null", b""):
                raise _bad("body", "not valid JSON")
            if dynamic is not None:
                payload = _native_step(ctx, scope, dynamic, payload)
            plan = self.runner.plan(payload)
        except GatewayError as exc:
            ctx.fail(exc)
            await send_error(send, exc, ctx.response_headers())
            return
        except ClientDisconnected:  # gone before its body was complete: nobody to answer, not our error
            ctx.client_gone()
            return
        await self.runner.run_steps(ctx, scope, plan, receive, send)


def _native_step(ctx: RequestContext, scope: Scope, path: str, payload: Any) -> dict[str, Any]:
    """``/dynamic/NAME/{endpoint}`` with a provider-native body → one universal step."""
    name, _, endpoint = path.partition("/")
    if not endpoint:
        raise _bad("path", "expected /dynamic/{route}/{endpoint}")
    raw = scope.get("raw_path")
    if raw:  # keep the client's percent-encoding for the endpoint
        raw_text = raw.decode("latin-1")
        marker = f"/dynamic/{name}/"
        endpoint = raw_text[raw_text.index(marker) + len(marker) :] if marker in raw_text else endpoint
    query_string: bytes = scope.get("query_string", b"")
    if query_string:
        endpoint = f"{endpoint}?{query_string.decode('latin-1')}"
    step: dict[str, Any] = {"provider": f"dynamic/{name}", "endpoint": endpoint, "method": ctx.method}
    if ctx.body:
        step["query"] = payload
    return step
