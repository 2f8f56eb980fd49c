"""Pure rate-limit decisions: rule compilation, counter keys, windows, client IPs, headers."""

from __future__ import annotations

import pytest

from aigw_asgi.config import RateLimitConfig, RateLimitRule
from aigw_asgi.errors import ConfigError
from aigw_asgi.ratelimit.keys import (
    Facts,
    FixedCounter,
    client_ip,
    compile_rules,
    counter_key,
    escape,
    fixed_reset_in,
    limit_headers,
    provider_from_path,
    window_key,
)


def rules(**config: object) -> dict[str, object]:
    return {rule.name: rule for rule in compile_rules(RateLimitConfig(**config), "gw")}  # type: ignore[arg-type]


def test_gateway_rule_only_when_limit_set_and_default_names() -> None:
    assert rules() == {}
    compiled = compile_rules(
        RateLimitConfig(limit=10, period=60, rules=[RateLimitRule(5, 1), RateLimitRule(7, 2, name="per-token")]),
        "gw",
    )
    assert [r.name for r in compiled] == ["gateway", "rules[0]", "per-token"]
    assert [(r.limit, r.period) for r in compiled] == [(10, 60), (5, 1), (7, 2)]
    assert compiled[0].item.get_expiry() == 60 and compiled[0].item.amount == 10


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="'gateway' is used twice"):
        compile_rules(RateLimitConfig(limit=1, rules=[RateLimitRule(1, 1, name="gateway")]), "gw")


def test_gateway_scope_key_is_the_rule_prefix() -> None:
    rule = rules(limit=3)["gateway"]
    assert counter_key(rule, Facts()) == "gw/gateway"
    both = rules(rules=[RateLimitRule(1, 1, name="x", scope=["gateway", "token"])])["x"]
    assert both.scope == ("token",)
    assert counter_key(both, Facts(token="app")) == "gw/x/app"


def test_scoped_keys_differ_per_value_and_skip_unknown_values() -> None:
    rule = rules(rules=[RateLimitRule(1, 1, name="r", scope=["token", "metadata.user"])])["r"]
    a = counter_key(rule, Facts(token="app", metadata={"user": "alice"}))
    b = counter_key(rule, Facts(token="app", metadata={"user": "bob"}))
    assert a == "gw/r/app/alice" and b == "gw/r/app/bob"
    assert counter_key(rule, Facts(token="app", metadata={"other": 1})) is None
    assert counter_key(rule, Facts(token=None, metadata={"user": "alice"})) is None
    # Numbers and booleans are scope values too; True is not the number 1.
    assert counter_key(rule, Facts(token="t", metadata={"user": True})) == "gw/r/t/true"
    assert counter_key(rule, Facts(token="t", metadata={"user": 1})) == "gw/r/t/1"


def test_every_scope_part() -> None:
    rule = rules(rules=[RateLimitRule(1, 1, name="r", scope=["ip", "provider", "model"])])["r"]
    facts = Facts(ip="10.0.0.1", provider="openai", model="gpt-4o")
    assert counter_key(rule, facts) == "gw/r/10.0.0.1/openai/gpt-4o"
    assert rule.needs_model and not rule.needs_metadata


def test_values_cannot_collide_or_change_cluster_hash_tags() -> None:
    rule = rules(rules=[RateLimitRule(1, 1, name="r", scope=["metadata.a", "metadata.b"])])["r"]
    one = counter_key(rule, Facts(metadata={"a": "x/y", "b": "z"}))
    two = counter_key(rule, Facts(metadata={"a": "x", "b": "y/z"}))
    assert one != two
    braces = counter_key(rule, Facts(metadata={"a": "{tag}", "b": "%2F"}))
    assert braces is not None and "{" not in braces and "}" not in braces
    assert escape("%2F") != escape("/")
    assert escape("plain-value.1") == "plain-value.1"


def test_fixed_windows_are_clock_aligned() -> None:
    rule = rules(limit=5, period=60)["gateway"]
    assert window_key(rule, "k", 120.0) == window_key(rule, "k", 179.9) == "k/2"
    assert window_key(rule, "k", 180.0) == "k/3"
    assert fixed_reset_in(rule, 170.0) == pytest.approx(10.0)
    sliding = rules(limit=5, period=60, technique="sliding")["gateway"]
    assert window_key(sliding, "k", 170.0) == "k"  # limits slides it


def test_fixed_counter_is_the_key_limits_builds_kept_per_counter_and_window() -> None:
    rule = rules(limit=5, period=60)["gateway"]
    counter = FixedCounter(rule)
    first = counter("k", 120.0)
    assert first == rule.item.key_for(window_key(rule, "k", 120.0)) == "rl/k/2/5/60/second"
    assert counter("k", 179.9) is first  # the same counter in the same window: the key kept
    assert counter("k", 180.0) == rule.item.key_for("k/3")  # the next window
    assert counter("other", 180.0) == rule.item.key_for("other/3")  # another counter
    assert counter("k", 180.0) == rule.item.key_for("k/3")


def test_provider_from_path() -> None:
    assert provider_from_path("/openai/chat/completions") == "openai"
    assert provider_from_path("/anthropic") == "anthropic"
    assert provider_from_path("/") is None


def test_client_ip_trusts_only_the_last_proxy_entry() -> None:
    assert client_ip("10.0.0.9", None) == "10.0.0.9"
    assert client_ip("10.0.0.9", b"1.2.3.4") == "1.2.3.4"
    assert client_ip("10.0.0.9", b"6.6.6.6, 1.2.3.4") == "1.2.3.4"  # the first entry is client-made
    assert client_ip("10.0.0.9", b" ") == "10.0.0.9"


def test_limit_headers() -> None:
    rule = rules(limit=5, period=60)["gateway"]
    headers = dict(limit_headers(rule, 0, 12.2))
    assert headers == {
        b"retry-after": b"13",
        b"ratelimit-limit": b"5",
        b"ratelimit-remaining": b"0",
        b"ratelimit-reset": b"13",
    }
    assert dict(limit_headers(rule, -3, 0.0))[b"retry-after"] == b"1"  # never "retry now"
    assert dict(limit_headers(rule, -3, 0.0))[b"ratelimit-remaining"] == b"0"
