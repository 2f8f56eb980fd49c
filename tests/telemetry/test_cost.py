"""Price lookups and cost rules (pure)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from aigw_asgi.config import PriceConfig
from aigw_asgi.context import Usage
from aigw_asgi.options import CustomCost
from aigw_asgi.telemetry.cost import Price, PriceTable, compute_cost


def test_the_builtin_table_is_dated_and_covers_the_main_providers() -> None:
    raw = json.loads(resources.files("aigw_asgi.telemetry").joinpath("prices.json").read_text())
    assert raw["as_of"] >= "2025-01-01"
    for provider in ("openai", "anthropic", "google-ai-studio", "groq", "mistral", "deepseek", "workers-ai"):
        assert raw["providers"][provider], provider
    for models in raw["providers"].values():
        for name, price in models.items():
            assert price["input"] >= 0 and price["output"] >= 0, name


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4-0613", "gpt-4"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("mistral-large-2411", "mistral-large-latest"),
        ("openai/gpt-4o", "gpt-4o"),
    ],
)
def test_versioned_names_are_priced_by_their_family(model: str, family: str) -> None:
    table = PriceTable()
    assert table.price_for(model) is not None
    assert table.price_for(model) == table.price_for(family)


def test_a_family_never_prices_a_different_model() -> None:
    table = PriceTable()
    assert table.price_for("gpt-4o-mini") != table.price_for("gpt-4o")
    assert table.price_for("claude-fake-1") is None
    assert table.price_for("gpt-4o-turbo-ultra") is None
    assert table.price_for(None) is None


def test_the_provider_list_wins_for_a_shared_name() -> None:
    table = PriceTable()
    assert table.price_for("@cf/meta/llama-3.1-8b-instruct", "workers-ai") == Price(0.282 / 1e6, 0.827 / 1e6)
    assert table.price_for("llama-3.3-70b-versatile", "groq") == Price(0.59 / 1e6, 0.79 / 1e6)


def test_config_overrides_and_extends_the_table() -> None:
    table = PriceTable(
        {
            "gpt-4o": PriceConfig(input=1e-6, output=2e-6),
            "my-model": PriceConfig(input=3e-6, output=4e-6, cached_input=1e-6),
            "groq/my-model": PriceConfig(input=5e-6, output=6e-6),
        }
    )
    assert table.price_for("gpt-4o-2024-08-06", "openai") == Price(1e-6, 2e-6)
    assert table.price_for("my-model", "openai") == Price(3e-6, 4e-6, 1e-6)
    assert table.price_for("my-model", "groq") == Price(5e-6, 6e-6)
    assert table.to_dict()["overrides"]["my-model"] == {"input": 3.0, "output": 4.0, "cached_input": 1.0}


PRICE = Price(input=2e-6, output=8e-6, cached_input=0.5e-6)


def test_cost_is_tokens_times_prices_with_cached_input_at_its_own_rate() -> None:
    cost, custom = compute_cost(Usage(tokens_in=1000, tokens_out=100, cached_tokens_in=400), PRICE)
    assert cost == pytest.approx(600 * 2e-6 + 400 * 0.5e-6 + 100 * 8e-6) and custom is False
    cost, _ = compute_cost(Usage(tokens_in=1000, tokens_out=100, cached_tokens_in=400), Price(2e-6, 8e-6))
    assert cost == pytest.approx(1000 * 2e-6 + 100 * 8e-6)  # no cached rate: billed as input


def test_unknown_model_or_unknown_usage_costs_none() -> None:
    assert compute_cost(Usage(tokens_in=10, tokens_out=5), None) == (None, False)
    assert compute_cost(Usage(), PRICE) == (None, False)


def test_embeddings_have_no_output_tokens() -> None:
    cost, _ = compute_cost(Usage(tokens_in=10), Price(0.02e-6, 0.0))
    assert cost == pytest.approx(10 * 0.02e-6)


def test_cache_hits_cost_zero_even_with_a_custom_cost() -> None:
    custom = CustomCost(per_token_in=1.0, per_token_out=1.0)
    assert compute_cost(Usage(tokens_in=10, tokens_out=5), PRICE, custom=custom, cache_hit=True) == (0.0, False)


def test_custom_cost_overrides_the_table() -> None:
    usage = Usage(tokens_in=10, tokens_out=5, cached_tokens_in=4)
    cost, custom = compute_cost(usage, None, custom=CustomCost(per_token_in=0.001, per_token_out=0.002))
    assert cost == pytest.approx(10 * 0.001 + 5 * 0.002) and custom is True
    # A cache-read rate applies to the cached part only.
    cost, _ = compute_cost(
        usage, None, custom=CustomCost(per_token_in=0.001, per_token_out=0.002, per_cache_read_token=0.0001)
    )
    assert cost == pytest.approx(6 * 0.001 + 4 * 0.0001 + 5 * 0.002)
    assert compute_cost(usage, None, custom=CustomCost(total_cost=0.5)) == (0.5, True)
    # Half a custom cost on an unknown model: the other half is unknown, so the cost is too.
    assert compute_cost(usage, None, custom=CustomCost(per_token_in=0.001)) == (None, True)
    cost, _ = compute_cost(usage, PRICE, custom=CustomCost(per_token_in=0.001))
    assert cost == pytest.approx(10 * 0.001 + 5 * 8e-6)  # the table fills the missing output rate
