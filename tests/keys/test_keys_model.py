"""Keys as values: secrets, digests, statuses, globs, and the API input rules (keys/model.py)."""

from __future__ import annotations

import re

import pytest

from aigw_asgi.errors import InvalidRequest
from aigw_asgi.keys.model import (
    KEY_PREFIX,
    KeyBudget,
    KeyRateLimit,
    digest_of,
    make_key,
    parse_changes,
    parse_time,
    rotated,
)

NOW = 1_750_000_000.0


def key(**changes):
    made, _ = make_key("gw", "id-1", {"name": "team-a", **changes}, NOW)
    return made


def test_a_new_key_is_high_entropy_and_only_its_digest_is_kept() -> None:
    made, secret = make_key("gw", "id-1", {"name": "team-a"}, NOW)
    assert secret.startswith(KEY_PREFIX) and len(secret) == len(KEY_PREFIX) + 43  # 32 bytes, base64url
    assert re.fullmatch(r"aigw_[A-Za-z0-9_-]{43}", secret)
    assert made.digest == digest_of(secret) and secret not in repr(made)
    assert made.prefix == secret[:12]
    assert "digest" not in made.to_dict(NOW) and secret not in str(made.to_dict(NOW))
    other, second = make_key("gw", "id-2", {"name": "team-b"}, NOW)
    assert second != secret and other.digest != made.digest


def test_rotation_keeps_identity_and_policy_but_not_the_secret() -> None:
    made = key(allowed_models=("gpt-4o*",), budget=KeyBudget(5.0, "month"))
    new, secret = rotated(made, NOW + 10)
    assert (new.id, new.name, new.allowed_models, new.budget) == (made.id, made.name, made.allowed_models, made.budget)
    assert new.digest == digest_of(secret) != made.digest
    assert new.updated_at == NOW + 10


def test_status_follows_expiry_and_revocation() -> None:
    assert key().status(NOW) == "active"
    assert key(expires_at=NOW + 1).status(NOW) == "active"
    assert key(expires_at=NOW + 1).status(NOW + 1) == "expired"
    assert key(expires_at=NOW + 1, revoked_at=NOW).status(NOW + 5) == "revoked"


@pytest.mark.parametrize(
    ("globs", "provider", "model", "allowed"),
    [
        (None, "openai", "anything", True),
        (("gpt-4o*",), "openai", "gpt-4o-mini", True),
        (("gpt-4o*",), "openai", "gpt-4.1", False),
        (("openai/gpt-4o*",), "openai", "gpt-4o", True),
        (("openai/gpt-4o*",), "groq", "gpt-4o", False),
        (("claude-*", "gpt-4o-mini"), "anthropic", "claude-3-5-haiku", True),
        (("GPT-4O",), "openai", "gpt-4o", False),  # case matters: model names are case-sensitive
        (("@cf/meta/*",), "workers-ai", "@cf/meta/llama-3-8b", True),
    ],
)
def test_model_globs(globs, provider: str, model: str, allowed: bool) -> None:
    assert key(allowed_models=globs).allows_model(provider, model) is allowed


def test_providers_list() -> None:
    limited = key(allowed_providers=("openai",))
    assert limited.allows_provider("openai") and not limited.allows_provider("anthropic")
    assert not limited.allows_provider(None)
    assert key().allows_provider("anything")


def test_round_trip_through_a_row() -> None:
    made = key(
        expires_at=NOW + 60,
        allowed_providers=("openai",),
        allowed_models=("gpt-*",),
        rate_limit=KeyRateLimit(10, 60, "tokens"),
        budget=KeyBudget(2.5, "day"),
        metadata={"team": "a", "tier": 2},
    )
    from aigw_asgi.keys.model import GatewayKey

    assert GatewayKey.from_row(made.to_row()) == made


def test_parse_changes_accepts_the_api_shapes() -> None:
    changes = parse_changes(
        {
            "name": "team.a-1",
            "expires_at": "2030-01-31",
            "allowed_models": ["gpt-4o*"],
            "rate_limit": {"limit": 5, "period": 60},
            "budget": {"usd": 10},
            "metadata": {"team": "a"},
        },
        creating=True,
    )
    assert changes["expires_at"] == parse_time("2030-01-31T00:00:00Z")
    assert changes["rate_limit"] == KeyRateLimit(5, 60, "requests")
    assert changes["budget"] == KeyBudget(10.0, "month")
    assert parse_changes({"budget": None, "allowed_models": None}, creating=False) == {
        "budget": None,
        "allowed_models": None,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name: required"),
        ({"name": ""}, "name: expected"),
        ({"name": "has space"}, "name: expected"),
        ({"name": "x" * 65}, "name: expected"),
        ({"name": "a", "colour": "red"}, "Unknown field 'colour'"),
        ({"name": "a", "expires_at": "tomorrow"}, "expires_at: expected an ISO 8601"),
        ({"name": "a", "expires_at": True}, "expires_at: expected"),
        ({"name": "a", "allowed_models": "gpt-4o"}, "allowed_models: expected a list"),
        ({"name": "a", "allowed_models": [""]}, "allowed_models: expected non-empty"),
        ({"name": "a", "rate_limit": {"limit": 0, "period": 60}}, "rate_limit.limit"),
        ({"name": "a", "rate_limit": {"limit": 5, "period": 60, "unit": "bytes"}}, "rate_limit.unit"),
        ({"name": "a", "budget": {"usd": -1}}, "budget.usd"),
        ({"name": "a", "budget": {"usd": float("nan")}}, "budget.usd"),
        ({"name": "a", "budget": {"usd": 1e9}}, "budget.usd"),
        ({"name": "a", "budget": {"usd": 1, "period": "year"}}, "budget.period"),
        ({"name": "a", "metadata": {"k": [1]}}, "metadata"),
        ([], "Expected a JSON object"),
    ],
)
def test_parse_changes_refuses_bad_input_naming_the_field(body, message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        parse_changes(body, creating=True)


def test_a_patch_needs_something_to_change() -> None:
    with pytest.raises(InvalidRequest, match="at least one"):
        parse_changes({}, creating=False)
