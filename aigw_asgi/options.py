"""Parse the ``cf-aig-*`` request headers once, strictly (SPEC §3).

An invalid value is a 400 (code 2004) naming the header, never a silent default: a client that
asked for a cache TTL of "5 minutes" should learn that it was not understood.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .bounds import BACKOFFS, CACHE_TTL_S, MAX_ATTEMPTS, MAX_METADATA_ENTRIES, REQUEST_TIMEOUT_MS, RETRY_DELAY_MS, Range
from .errors import InvalidRequest


@dataclass(slots=True)
class CustomCost:
    per_token_in: float | None = None
    per_token_out: float | None = None
    per_cache_read_token: float | None = None
    total_cost: float | None = None


@dataclass(slots=True)
class RequestOptions:
    cache_ttl: int | None = None
    skip_cache: bool = False
    cache_key: str | None = None
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)
    collect_log: bool | None = None
    collect_log_payload: bool | None = None
    custom_cost: CustomCost | None = None
    request_timeout_ms: int | None = None
    max_attempts: int | None = None
    retry_delay_ms: int | None = None
    backoff: str | None = None
    byok_alias: str | None = None
    otel_trace_id: str | None = None
    otel_parent_span_id: str | None = None


def _bad(name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid header {name}: {why}")


def _int(name: str, raw: str, bounds: Range) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _bad(name, f"expected an integer from {bounds.describe()}") from None
    if value not in bounds:
        raise _bad(name, f"expected an integer from {bounds.describe()}")
    return value


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise _bad(name, "expected true or false")


def _hex(name: str, raw: str, length: int) -> str:
    value = raw.strip().lower()
    if len(value) != length or any(c not in "0123456789abcdef" for c in value) or value == "0" * length:
        raise _bad(name, f"expected {length} hex characters")
    return value


def parse_metadata(raw: str, name: str = "cf-aig-metadata") -> dict[str, str | int | float | bool]:
    """Cloudflare's rules: a flat JSON object of at most 5 string/number/bool entries.

    Cloudflare silently drops extras and nested values; we answer 400 instead, because a
    dashboard filter that never matches is worse than an error the developer sees at once.
    Keys starting with ``cf.`` are reserved and dropped, as Cloudflare does.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        raise _bad(name, "not valid JSON") from None
    if not isinstance(value, dict):
        raise _bad(name, "expected a JSON object")
    out: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if key.startswith("cf."):
            continue
        if not isinstance(item, str | int | float | bool) or (isinstance(item, float) and not math.isfinite(item)):
            raise _bad(name, f"entry {key!r} must be a string, number or boolean")
        out[key] = item
    if len(out) > MAX_METADATA_ENTRIES:
        raise _bad(name, f"at most {MAX_METADATA_ENTRIES} entries")
    return out


def parse_custom_cost(raw: str, name: str = "cf-aig-custom-cost") -> CustomCost:
    try:
        value = json.loads(raw)
    except ValueError:
        raise _bad(name, "not valid JSON") from None
    if not isinstance(value, dict) or not value:
        raise _bad(name, "expected a JSON object")
    cost = CustomCost()
    for key, item in value.items():
        if key not in CustomCost.__slots__:  # type: ignore[attr-defined]
            raise _bad(name, f"unknown field {key!r}")
        if isinstance(item, bool) or not isinstance(item, int | float) or item < 0 or not math.isfinite(item):
            raise _bad(name, f"{key} must be a non-negative number")
        setattr(cost, key, float(item))
    return cost


# The headers `parse_options` reads; any other is none of its business (one set lookup a header).
_OPTION_HEADERS = frozenset(
    {
        b"cf-aig-cache-ttl",
        b"cf-cache-ttl",
        b"cf-aig-skip-cache",
        b"cf-skip-cache",
        b"cf-aig-cache-key",
        b"cf-aig-metadata",
        b"cf-aig-collect-log",
        b"cf-aig-collect-log-payload",
        b"cf-aig-custom-cost",
        b"cf-aig-request-timeout",
        b"cf-aig-max-attempts",
        b"cf-aig-retry-delay",
        b"cf-aig-backoff",
        b"cf-aig-byok-alias",
        b"cf-aig-otel-trace-id",
        b"cf-aig-otel-parent-span-id",
    }
)


def parse_options(headers: list[tuple[bytes, bytes]]) -> RequestOptions:
    """Read every ``cf-aig-*`` header (and the legacy ``cf-cache-ttl``/``cf-skip-cache``)."""
    opts = RequestOptions()
    for raw_name, raw_value in headers:
        if raw_name not in _OPTION_HEADERS:  # cf-aig-authorization, cf-aig-event-id, the rest
            continue
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        match name:
            case "cf-aig-cache-ttl" | "cf-cache-ttl":
                opts.cache_ttl = _int(name, value, CACHE_TTL_S)
            case "cf-aig-skip-cache" | "cf-skip-cache":
                opts.skip_cache = _bool(name, value)
            case "cf-aig-cache-key":
                key = value.strip()
                if not key or len(key) > 1024:
                    raise _bad(name, "expected 1 to 1024 characters")
                opts.cache_key = key
            case "cf-aig-metadata":
                opts.metadata = parse_metadata(value, name)
            case "cf-aig-collect-log":
                opts.collect_log = _bool(name, value)
            case "cf-aig-collect-log-payload":
                opts.collect_log_payload = _bool(name, value)
            case "cf-aig-custom-cost":
                opts.custom_cost = parse_custom_cost(value, name)
            case "cf-aig-request-timeout":
                opts.request_timeout_ms = _int(name, value, REQUEST_TIMEOUT_MS)
            case "cf-aig-max-attempts":
                opts.max_attempts = _int(name, value, MAX_ATTEMPTS)
            case "cf-aig-retry-delay":
                opts.retry_delay_ms = _int(name, value, RETRY_DELAY_MS)
            case "cf-aig-backoff":
                backoff = value.strip().lower()
                if backoff not in BACKOFFS:
                    raise _bad(name, "expected constant, linear or exponential")
                opts.backoff = backoff
            case "cf-aig-byok-alias":
                alias = value.strip()
                if not alias or len(alias) > 128:
                    raise _bad(name, "expected 1 to 128 characters")
                opts.byok_alias = alias
            case "cf-aig-otel-trace-id":
                opts.otel_trace_id = _hex(name, value, 32)
            case "cf-aig-otel-parent-span-id":
                opts.otel_parent_span_id = _hex(name, value, 16)
    return opts
