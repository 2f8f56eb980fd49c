"""Universal requests as data: parse a ``POST /`` body into steps, expand them into a plan (pure).

A step is one object of the client's array (SPEC §5); parsing validates every field and names the
bad one (``steps[1].config.maxAttempts``). A step's ``config`` and ``headers`` become
``cf-aig-*`` / plain headers of its internal request, layered over the client's own, so the
precedence "step > request headers > gateway ``[retries]``" falls out of the ordinary header
parsing. `expand` turns ``dynamic/NAME`` steps into the targets of ``[routes.NAME]`` in the order
the route's selector chooses (routing/balance.py): that *is* the load-balancing decision.
No I/O here: `StepRunner` (runner.py) runs what `expand` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .bounds import BACKOFFS, MAX_ATTEMPTS, REQUEST_TIMEOUT_MS, RETRY_DELAY_MS, Range
from .errors import InvalidProvider, InvalidRequest
from .headers import set_headers
from .options import parse_options
from .routing.balance import Route
from .types import Headers

MAX_STEPS = 16  # user steps per request; more is an amplification risk, not a use case
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_STEP_KEYS = frozenset({"provider", "endpoint", "headers", "query", "config", "method", "authorization"})
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # fullmatch only: "$" also matches before a final newline
# Headers a step may not set and the client's headers may not pass on: the internal request's
# framing is the gateway's own.
FRAMING = frozenset({b"content-length", b"content-type", b"transfer-encoding", b"expect", b"host", b"connection"})
_CONFIG_HEADERS: dict[str, tuple[bytes, Range]] = {
    "requestTimeout": (b"cf-aig-request-timeout", REQUEST_TIMEOUT_MS),
    "maxAttempts": (b"cf-aig-max-attempts", MAX_ATTEMPTS),
    "retryDelay": (b"cf-aig-retry-delay", RETRY_DELAY_MS),
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


def bad_request(where: str, why: str) -> InvalidRequest:
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
        raise bad_request(where, "expected a non-empty string")
    path = value.split("?", 1)[0]
    lowered = value.lower()
    if value.startswith("/") or "://" in value or "\\" in value or "//" in path:
        raise bad_request(where, "must be a relative path like 'chat/completions'")
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered or "#" in value:
        raise bad_request(where, "encoded slashes and fragments are not allowed")
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        raise bad_request(where, "dot segments are not allowed")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value) or not value.isascii():
        raise bad_request(where, "must be a URL path (percent-encode spaces and non-ASCII)")
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
        raise bad_request(where, "expected a string, number, boolean or object")
    if any(c in text for c in "\r\n\x00"):
        raise bad_request(where, "line breaks are not allowed")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise bad_request(where, "must be latin-1 text") from None


def _step_headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise bad_request(where, "expected an object of header names to values")
    out: Headers = []
    for name, value in raw.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise bad_request(f"{where}", f"invalid header name {str(name)[:64]!r}")
        key = name.lower().encode()
        if key in FRAMING:
            continue  # the gateway frames the internal request itself
        out.append((key, _header_value(value, f"{where}.{name}")))
    return out


def _config_headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise bad_request(where, "expected an object")
    out: Headers = []
    for key, value in raw.items():
        if key in _CONFIG_HEADERS:
            header, bounds = _CONFIG_HEADERS[key]
            if value not in bounds:
                raise bad_request(f"{where}.{key}", f"expected an integer from {bounds.describe()}")
            out.append((header, str(value).encode()))
        elif key == "backoff":
            if value not in BACKOFFS:
                raise bad_request(f"{where}.backoff", "expected constant, linear or exponential")
            out.append((b"cf-aig-backoff", value.encode()))
        else:
            raise bad_request(
                _field(where, key), "unknown key (known: requestTimeout, maxAttempts, retryDelay, backoff)"
            )
    return out


def parse_step(raw: Any, index: int, providers: Container[str], routes: Mapping[str, Route]) -> Step:
    """Validate one step object; every error names the field (``steps[1].config.maxAttempts``)."""
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise bad_request(where, "expected an object")
    for key in raw:
        if key not in _STEP_KEYS:
            raise bad_request(_field(where, key), "unknown key")
    provider = raw.get("provider")
    if not isinstance(provider, str) or not provider:
        raise bad_request(f"{where}.provider", "expected a provider name")
    dynamic = provider.startswith("dynamic/")
    if dynamic:
        if provider[8:] not in routes:
            raise InvalidProvider(f"Invalid provider: {where}.provider: no route named {provider[8:64]!r}")
    elif provider not in providers and provider != "compat":  # "compat": the unified API (compat/)
        raise InvalidProvider(f"Invalid provider: {where}.provider {provider[:64]!r}")
    endpoint = raw.get("endpoint")
    if endpoint is not None or not dynamic:
        endpoint = _check_endpoint(endpoint, f"{where}.endpoint")
    method = raw.get("method", "POST")
    if not isinstance(method, str) or method not in _METHODS:  # a list or object is unhashable
        raise bad_request(f"{where}.method", f"expected one of {', '.join(sorted(_METHODS))}")
    headers = _step_headers(raw.get("headers"), f"{where}.headers")
    authorization = raw.get("authorization")  # legacy field: the provider's Authorization value
    if authorization is not None:
        headers = set_headers(headers, [(b"authorization", _header_value(authorization, f"{where}.authorization"))])
    headers = set_headers(headers, _config_headers(raw.get("config"), f"{where}.config"))
    try:
        parse_options(headers)  # a bad cf-aig-* value in a step is the client's error, named now
    except InvalidRequest as exc:
        raise bad_request(f"{where}.headers", exc.message) from None
    has_query = "query" in raw
    if not has_query and method in ("POST", "PUT", "PATCH"):
        raise bad_request(f"{where}.query", "required (the JSON body sent to the provider)")
    return Step(index, provider, endpoint, headers, raw.get("query"), has_query, method)


def parse_steps(payload: Any, providers: Container[str], routes: Mapping[str, Route]) -> list[Step]:
    """The body of ``POST /``: a JSON array of steps, or one step object."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise bad_request("body", "expected a JSON array of steps or one step object")
    if not payload:
        raise bad_request("body", "expected at least one step")
    if len(payload) > MAX_STEPS:
        raise bad_request("body", f"at most {MAX_STEPS} steps")
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
            raise bad_request(f"steps[{step.index}].query", "must be an object for a dynamic route (its model is set)")
        for index, target in route.plan():
            endpoint = target.endpoint or step.endpoint
            if endpoint is None:
                raise bad_request(f"steps[{step.index}].endpoint", f"required: route target {target.label} names none")
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
