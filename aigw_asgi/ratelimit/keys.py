"""Pure rate-limit logic: rules compiled once, counter keys, client IPs, response headers.

Nothing here does I/O or knows about ASGI, so every decision is unit-tested on plain values.
The counting itself (windows, atomic increments, expiry) belongs to the `limits` library; this
module only decides *which* counter a request touches and what the client is told.

Key shape (``limits`` adds its namespace in front and ``/{limit}/{period}/second`` behind)::

    {gateway id}/{rule name}[/{scope value}...][/{window index}]

Scope values are escaped so that ``/`` cannot make two different value tuples collide and ``{``
/ ``}`` cannot change a Redis Cluster hash tag. Every counter is one key (the sliding window's two
keys share a hash tag, set by `limits`), so no storage call ever spans two Cluster slots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from limits import RateLimitItem, RateLimitItemPerSecond

from ..config import RateLimitConfig
from ..errors import ConfigError

Unit = Literal["requests", "tokens"]
Technique = Literal["fixed", "sliding"]

NAMESPACE = "rl"
"""``limits`` namespace of every rate item; Redis keys read ``{key_prefix}:rl/...``."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: its `limits` item and the request facts that name its counter."""

    name: str
    limit: int
    period: int
    technique: Technique
    unit: Unit
    scope: tuple[str, ...]  # "token" | "ip" | "provider" | "model" | "metadata.K" ("gateway" dropped)
    item: RateLimitItem
    prefix: str  # "{gateway id}/{escaped name}": the key of a gateway-wide rule

    @property
    def needs_model(self) -> bool:
        return "model" in self.scope

    @property
    def needs_metadata(self) -> bool:
        return any(part.startswith("metadata.") for part in self.scope)


def compile_rules(config: RateLimitConfig, gateway_id: str) -> tuple[Rule, ...]:
    """The gateway-wide rule (when ``limit > 0``) followed by ``rules``, in config order.

    Default names: ``gateway`` for the gateway-wide rule, ``rules[i]`` (the config key) for an
    unnamed extra rule. Names appear in logs and 429 messages and name the counters, so they
    must be unique.
    """
    specs: list[tuple[str, int, int, Technique, tuple[str, ...], Unit]] = []
    if config.limit > 0:
        specs.append(("gateway", config.limit, config.period, config.technique, (), "requests"))
    for i, rule in enumerate(config.rules):
        scope = tuple(part for part in rule.scope if part != "gateway")
        specs.append((rule.name or f"rules[{i}]", rule.limit, rule.period, rule.technique, scope, rule.unit))
    names = [spec[0] for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"rate_limit.rules: rule name {name!r} is used twice (names must be unique)")
    return tuple(
        Rule(
            name=name,
            limit=limit,
            period=period,
            technique=technique,
            unit=unit,
            scope=scope,
            item=RateLimitItemPerSecond(limit, period, namespace=NAMESPACE),
            prefix=f"{escape(gateway_id)}/{escape(name)}",
        )
        for name, limit, period, technique, scope, unit in specs
    )


@lru_cache(maxsize=4096)
def key_rule(gateway_id: str, limit: int, period: int, unit: Unit) -> Rule:
    """The rate limit of a runtime gateway key (keys/): a fixed-window rule scoped by ``token``.

    The key's name is its ``token`` value, so its counter is ``{gateway}/@key/{key name}``; the
    ``@`` keeps it apart from config rules (``rules[i]`` or a name the operator chose). One rule
    per distinct (limit, period, unit), shared by every key that has it.
    """
    return Rule(
        name="key",
        limit=limit,
        period=period,
        technique="fixed",
        unit=unit,
        scope=("token",),
        item=RateLimitItemPerSecond(limit, period, namespace=NAMESPACE),
        prefix=f"{escape(gateway_id)}/@key",
    )


@dataclass(slots=True)
class Facts:
    """What scopes are resolved from, for one request. ``None`` means unknown."""

    token: str | None = None
    ip: str | None = None
    provider: str | None = None
    model: str | None = None
    metadata: Mapping[str, str | int | float | bool] | None = None


def escape(value: str) -> str:
    """``value`` with ``%``, ``/``, ``{`` and ``}`` percent-encoded (a no-op for usual values)."""
    if "/" in value or "%" in value or "{" in value or "}" in value:
        return value.replace("%", "%25").replace("/", "%2F").replace("{", "%7B").replace("}", "%7D")
    return value


def _text(value: str | int | float | bool) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def counter_key(rule: Rule, facts: Facts) -> str | None:
    """The counter this request touches for ``rule``, or ``None`` when the rule does not apply.

    A rule applies only when every part of its scope is known: a ``token`` rule skips
    unauthenticated requests, a ``metadata.K`` rule skips requests without ``K``, a ``model``
    rule skips requests that name no model.
    """
    if not rule.scope:
        return rule.prefix
    value = scope_value(rule.scope, facts)
    return None if value is None else f"{rule.prefix}/{value}"


def scope_value(scope: Sequence[str], facts: Facts, quote: Callable[[str], str] = escape) -> str | None:
    """The request's values for ``scope`` (``token``, ``ip``, ``provider``, ``model``,
    ``metadata.K``), quoted and joined with ``/``; ``None`` when one of them is unknown.

    Shared by rate-limit rules and spend budgets, whose scopes are the same words.
    """
    parts = []
    for part in scope:
        if part == "token":
            value = facts.token
        elif part == "ip":
            value = facts.ip
        elif part == "provider":
            value = facts.provider
        elif part == "model":
            value = facts.model
        else:  # "metadata.K" (validated by config)
            raw = facts.metadata.get(part[9:]) if facts.metadata else None
            value = None if raw is None else _text(raw)
        if value is None:
            return None
        parts.append(quote(value))
    return "/".join(parts)


def window_key(rule: Rule, key: str, now: float) -> str:
    """The key to hand `limits`.

    Fixed windows are clock-aligned (Cloudflare: a 60 s window runs 12:00:00–12:01:00), but a
    `limits` fixed window starts at its first hit. Naming the window by its clock index makes
    `limits` count each aligned window in its own key (which it then expires); sliding windows
    are `limits`' own business.
    """
    if rule.technique == "fixed":
        return f"{key}/{int(now // rule.period)}"
    return key


class FixedCounter:
    """The storage key of a fixed request rule's counter in the current window, as `limits` names it.

    `limits`' ``FixedWindowRateLimiter.hit(item, k)`` is ``storage.incr(item.key_for(k), period)
    <= limit``, and building ``key_for`` (five strings joined) was most of what the rate limiter
    spent per request. Consecutive requests nearly always count in the same counter and window
    (every request, for the gateway-wide rule), so the last key built is kept: one per rule.
    """

    __slots__ = ("rule", "_last")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._last: tuple[str, int, str] = ("", -1, "")  # (counter key, window index, storage key)

    def __call__(self, key: str, now: float) -> str:
        """``rule.item.key_for(window_key(rule, key, now))``, built once per counter and window."""
        rule = self.rule
        window = int(now // rule.period)
        last_key, last_window, storage_key = self._last
        if window != last_window or key != last_key:
            storage_key = rule.item.key_for(window_key(rule, key, now))
            self._last = (key, window, storage_key)  # one assignment: never a half-updated memo
        return storage_key


def fixed_reset_in(rule: Rule, now: float) -> float:
    """Seconds until the current clock-aligned window of a fixed rule ends."""
    return (int(now // rule.period) + 1) * rule.period - now


def provider_from_path(path: str) -> str | None:
    """``openai`` for ``/openai/chat/completions``; ``None`` for ``/`` (the universal endpoint)."""
    slug = path[1:].partition("/")[0] if path.startswith("/") else path.partition("/")[0]
    return slug or None


def client_ip(peer: str | None, forwarded: bytes | None) -> str | None:
    """The client address: the trusted proxy header's last entry when present, else the peer.

    Only the last entry of a list (``X-Forwarded-For: spoofed, real``) was written by the proxy
    we trust; anything before it came from the client and could be forged.
    """
    if forwarded:
        last = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer


def limit_headers(rule: Rule, remaining: int, reset_in: float) -> list[tuple[bytes, bytes]]:
    """``Retry-After`` and the ``RateLimit-*`` headers (IETF draft: delta seconds) for a 429."""
    seconds = str(max(1, math.ceil(reset_in))).encode()
    return [
        (b"retry-after", seconds),
        (b"ratelimit-limit", str(rule.limit).encode()),
        (b"ratelimit-remaining", str(max(0, remaining)).encode()),
        (b"ratelimit-reset", seconds),
    ]


def denial_message(rule: Rule) -> str:
    """The 429 message: names the rule, never a scope value (those may be user data)."""
    if rule.prefix.endswith("/@key"):
        return f"Rate limited by the gateway key's limit: {rule.limit} {rule.unit} per {rule.period} s"
    return f"Rate limited by rule '{rule.name}': {rule.limit} {rule.unit} per {rule.period} s"
