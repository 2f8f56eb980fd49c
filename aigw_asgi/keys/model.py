"""Gateway keys as values: what a key is, how it is made, and what it allows (pure, no I/O).

A key is a secret handed to a client once (``aigw_`` + 32 random bytes, URL-safe base64) and
stored only as its SHA-256 digest, with the first characters kept as a ``prefix`` so operators
can tell keys apart in listings. Everything else on the row is policy: an expiry, the providers
and models it may use (globs), a rate limit, a spend budget, free-form metadata.

Validation of API input lives here too (`KeySpec.from_json`), so the admin API and the CLI refuse
the same things with the same messages.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

from ..errors import InvalidRequest

Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "total")
Unit = Literal["requests", "tokens"]

KEY_PREFIX = "aigw_"
PREFIX_CHARS = 12  # "aigw_" and 7 random characters: enough to tell keys apart, far too few to guess
MAX_NAME = 64
MAX_LIST = 100  # allowed providers / models per key
MAX_METADATA = 16


def new_secret() -> str:
    """A fresh key: ``aigw_`` + 32 random bytes (256 bits) as URL-safe base64, 48 characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest_of(secret: str | bytes) -> str:
    """The hex SHA-256 that is stored instead of the key (the same hash config tokens use)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class KeyRateLimit:
    """``limit`` requests (or tokens) per clock-aligned ``period`` seconds, counted by `limits`."""

    limit: int
    period: int
    unit: Unit = "requests"

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "period": self.period, "unit": self.unit}


@dataclass(frozen=True, slots=True)
class KeyBudget:
    """At most ``usd`` dollars per clock-aligned UTC ``period`` (or in ``total``)."""

    usd: float
    period: Period = "month"

    def to_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "period": self.period}


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """One stored key. ``digest`` is the SHA-256 of the secret; the secret itself is never stored."""

    id: str
    gateway: str
    name: str
    digest: str = field(repr=False)
    prefix: str
    created_at: float
    updated_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    allowed_providers: tuple[str, ...] | None = None
    allowed_models: tuple[str, ...] | None = None
    rate_limit: KeyRateLimit | None = None
    budget: KeyBudget | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def status(self, now: float) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def allows_provider(self, provider: str | None) -> bool:
        if self.allowed_providers is None:
            return True
        return provider is not None and provider in self.allowed_providers

    def allows_model(self, provider: str | None, model: str) -> bool:
        """A glob matches the model (``gpt-4o*``) or ``provider/model`` (``openai/gpt-4o*``)."""
        if self.allowed_models is None:
            return True
        qualified = f"{provider}/{model}" if provider else model
        return any(fnmatchcase(model, glob) or fnmatchcase(qualified, glob) for glob in self.allowed_models)

    def policy(self) -> dict[str, Any]:
        """The policy fields as JSON-ready data (what stores keep in one column)."""
        return {
            "allowed_providers": list(self.allowed_providers) if self.allowed_providers is not None else None,
            "allowed_models": list(self.allowed_models) if self.allowed_models is not None else None,
            "rate_limit": self.rate_limit.to_dict() if self.rate_limit else None,
            "budget": self.budget.to_dict() if self.budget else None,
            "metadata": self.metadata,
        }

    def to_dict(self, now: float) -> dict[str, Any]:
        """The API view: everything but the digest."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "status": self.status(now),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            **self.policy(),
        }

    def to_row(self) -> dict[str, Any]:
        """Everything a store keeps, as JSON-ready data (Redis rows; SQL stores use columns)."""
        return {
            "id": self.id,
            "gateway": self.gateway,
            "name": self.name,
            "digest": self.digest,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "policy": self.policy(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> GatewayKey:
        policy = row.get("policy") or {}
        return cls(
            id=row["id"],
            gateway=row["gateway"],
            name=row["name"],
            digest=row["digest"],
            prefix=row["prefix"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            expires_at=_float(row.get("expires_at")),
            revoked_at=_float(row.get("revoked_at")),
            **policy_fields(policy),
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def policy_fields(policy: dict[str, Any]) -> dict[str, Any]:
    """Stored policy JSON -> `GatewayKey` keyword arguments (already validated when stored)."""
    providers = policy.get("allowed_providers")
    models = policy.get("allowed_models")
    rate = policy.get("rate_limit")
    budget = policy.get("budget")
    return {
        "allowed_providers": tuple(providers) if providers is not None else None,
        "allowed_models": tuple(models) if models is not None else None,
        "rate_limit": KeyRateLimit(rate["limit"], rate["period"], rate.get("unit", "requests")) if rate else None,
        "budget": KeyBudget(float(budget["usd"]), budget.get("period", "month")) if budget else None,
        "metadata": dict(policy.get("metadata") or {}),
    }


# -- API input ------------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}$")
_FIELDS = ("name", "expires_at", "allowed_providers", "allowed_models", "rate_limit", "budget", "metadata")


class NameTaken(InvalidRequest):
    """Another key that is not revoked already has this name (stores raise it)."""


def _bad(field_name: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{field_name}: {why}")


def parse_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _bad(
            "name", "expected 1 to 64 characters: letters, digits and . _ : @ + - (starting with a letter or digit)"
        )
    return value


def parse_time(value: Any, field_name: str = "expires_at") -> float | None:
    """ISO 8601 (``2026-01-31``, ``2026-01-31T12:00:00Z``; no zone means UTC), epoch seconds, or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _bad(field_name, "expected an ISO 8601 time, epoch seconds or null")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise _bad(field_name, "expected positive epoch seconds")
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(field_name, "expected an ISO 8601 time such as 2026-01-31T00:00:00Z") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise _bad(field_name, "expected an ISO 8601 time, epoch seconds or null")


def _names(value: Any, field_name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise _bad(field_name, f"expected a list of at most {MAX_LIST} strings, or null")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item or len(item) > 200 or not item.isprintable():
            raise _bad(field_name, "expected non-empty printable strings of at most 200 characters")
        out.append(item)
    return tuple(out)


def parse_rate_limit(value: Any) -> KeyRateLimit | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"limit", "period", "unit"}:
        raise _bad("rate_limit", 'expected {"limit": N, "period": SECONDS, "unit": "requests"|"tokens"} or null')
    limit, period, unit = value.get("limit"), value.get("period"), value.get("unit", "requests")
    for name, number in (("limit", limit), ("period", period)):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= 10**9:
            raise _bad(f"rate_limit.{name}", "expected a positive integer")
    if unit not in ("requests", "tokens"):
        raise _bad("rate_limit.unit", "expected 'requests' or 'tokens'")
    assert isinstance(limit, int) and isinstance(period, int)
    return KeyRateLimit(limit, period, unit)


def parse_budget(value: Any) -> KeyBudget | None:
    from ..config import MAX_BUDGET_USD

    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"usd", "period"}:
        raise _bad("budget", 'expected {"usd": DOLLARS, "period": "day"|"week"|"month"|"total"} or null')
    usd, period = value.get("usd"), value.get("period", "month")
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd):
        raise _bad("budget.usd", "expected a number of dollars")
    if not 0 < usd <= MAX_BUDGET_USD:
        raise _bad("budget.usd", f"expected more than 0 and at most {MAX_BUDGET_USD:g}")
    if period not in PERIODS:
        raise _bad("budget.period", "expected 'day', 'week', 'month' or 'total'")
    return KeyBudget(float(usd), period)


def parse_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA:
        raise _bad("metadata", f"expected an object of at most {MAX_METADATA} entries, or null")
    for k, v in value.items():
        if len(k) > 64 or not (isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v))):
            raise _bad("metadata", "expected keys of at most 64 characters and string, number or boolean values")
        if isinstance(v, str) and len(v) > 1000:
            raise _bad("metadata", "values are limited to 1000 characters")
    return dict(value)


def parse_changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """Validated `GatewayKey` fields from an admin/CLI JSON object; ``name`` is required to create."""
    if not isinstance(body, dict):
        raise InvalidRequest("Expected a JSON object")
    for name in body:
        if name not in _FIELDS:
            raise InvalidRequest(f"Unknown field {str(name)[:64]!r}: expected {', '.join(_FIELDS)}")
    if creating and "name" not in body:
        raise _bad("name", "required")
    if not creating and not body:
        raise InvalidRequest(f"Expected at least one of {', '.join(_FIELDS)}")
    parsers: dict[str, Callable[[Any], Any]] = {
        "name": parse_name,
        "expires_at": parse_time,
        "allowed_providers": lambda v: _names(v, "allowed_providers"),
        "allowed_models": lambda v: _names(v, "allowed_models"),
        "rate_limit": parse_rate_limit,
        "budget": parse_budget,
        "metadata": parse_metadata,
    }
    return {name: parsers[name](value) for name, value in body.items()}


def make_key(gateway: str, key_id: str, changes: dict[str, Any], now: float) -> tuple[GatewayKey, str]:
    """A new key from validated ``changes`` and its secret (to show once)."""
    secret = new_secret()
    key = GatewayKey(
        id=key_id,
        gateway=gateway,
        name=changes["name"],
        digest=digest_of(secret),
        prefix=secret[:PREFIX_CHARS],
        created_at=now,
        updated_at=now,
    )
    return replace(key, **{k: v for k, v in changes.items() if k != "name"}), secret


def rotated(key: GatewayKey, now: float) -> tuple[GatewayKey, str]:
    """``key`` with a new secret (same id, name, policy and budget), and that secret."""
    secret = new_secret()
    return replace(key, digest=digest_of(secret), prefix=secret[:PREFIX_CHARS], updated_at=now), secret
