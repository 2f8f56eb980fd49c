"""GET /compat/models: configured providers' known models, then the routes."""

from __future__ import annotations

from aigw_asgi.compat import catalog
from aigw_asgi.config import config_from_dict
from aigw_asgi.providers.registry import ProviderRegistry
from aigw_asgi.routing.balance import compile_routes


def test_configured_providers_and_routes_are_listed() -> None:
    config = config_from_dict(
        {
            "providers": {"anthropic": {"api_key": "k"}, "replicate": {"api_key": "k"}},
            "prices": {"anthropic/claude-house": {"input": 1e-6, "output": 2e-6}},
            "routes": {"best": {"targets": [{"provider": "anthropic", "model": "claude-house"}]}},
        }
    )
    ids = catalog.model_ids(config, ProviderRegistry.from_config(config), compile_routes(config.routes))
    names = [i for i, _ in ids]
    assert "anthropic/claude-sonnet-4-5" in names and "anthropic/claude-house" in names
    assert not any(n.startswith(("openai/", "replicate/")) for n in names)  # not configured / not translatable
    assert ids[-1] == ("dynamic/best", "aigw")
    listing = catalog.anthropic_list(ids)
    assert listing["first_id"] == names[0] and listing["has_more"] is False


def test_with_no_provider_configured_every_reachable_provider_is_listed() -> None:
    config = config_from_dict({})
    names = [i for i, _ in catalog.model_ids(config, ProviderRegistry.from_config(config), {})]
    assert "openai/gpt-5" in names and "google-ai-studio/gemini-2.5-flash" in names
    assert "cohere/command-r" in names and not any(n.startswith("replicate/") for n in names)
