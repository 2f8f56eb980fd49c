"""Cost of a request: tokens × the price table, a client's custom cost, cache hits free (SPEC §9).

The price table is data (``prices.json``, list prices per 1M tokens with an ``as_of`` date) that the
config extends or overrides with ``[prices."model"]`` (USD per token, like Cloudflare's
``cf-aig-custom-cost``). Everything here is pure: `price_for` finds a model's price, `compute_cost`
turns usage into dollars. The rule that matters most: a model we do not know costs ``None``
(unknown), never a guess -- a made-up number in a spend report is worse than a gap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import PriceConfig
    from ..context import Usage
    from ..options import CustomCost

# Version suffixes providers append to a model family's name: "-2024-08-06", "-20241022",
# "-0613", "-latest", "-001", "-preview-05-20"... A name is priced by its family only when what
# follows the family's name is one of these, so "gpt-4o-mini" never falls back to "gpt-4o".
_VERSION_SUFFIX = re.compile(r"(-(\d{2,8}|latest|preview|exp|v\d+(\.\d+)*))+$")
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Price:
    """USD per token."""

    input: float
    output: float
    cached_input: float | None = None  # None: cached input tokens are billed as input


def _load_builtin() -> tuple[str, dict[str, dict[str, Price]]]:
    raw = json.loads(resources.files(__package__).joinpath("prices.json").read_text("utf-8"))
    table: dict[str, dict[str, Price]] = {}
    for provider, models in raw["providers"].items():
        table[provider] = {name: _price_per_million(p) for name, p in models.items()}
    return str(raw["as_of"]), table


def _price_per_million(p: dict[str, Any]) -> Price:
    cached = p.get("cached_input")
    return Price(
        input=p["input"] / 1e6,
        output=p["output"] / 1e6,
        cached_input=None if cached is None else cached / 1e6,
    )


class PriceTable:
    """Model -> `Price`, from the built-in table plus config overrides.

    Lookup order for (provider, model): config ``"provider/model"``, config ``"model"``, the
    provider's own built-in list, then any provider's list (custom providers, OpenRouter and
    Azure serve models under their original names). Each step also tries the model's family
    name without a version suffix. A miss is ``None``.
    """

    def __init__(self, overrides: dict[str, PriceConfig] | None = None, *, builtin: bool = True) -> None:
        self.as_of, self._providers = _load_builtin() if builtin else ("", {})
        self._overrides = {
            name: Price(input=p.input, output=p.output, cached_input=p.cached_input)
            for name, p in (overrides or {}).items()
        }
        self._any: dict[str, Price] = {}
        for models in self._providers.values():  # first-party lists come first in the file
            for name, price in models.items():
                self._any.setdefault(name, price)
        self._memo: dict[tuple[str | None, str], Price | None] = {}

    def price_for(self, model: str | None, provider: str | None = None) -> Price | None:
        if not model:
            return None
        key = (provider, model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        price = self._lookup(model, provider)
        if len(self._memo) >= _CACHE_LIMIT:  # model names come from clients: keep the memo bounded
            self._memo.clear()
        self._memo[key] = price
        return price

    def _lookup(self, model: str, provider: str | None) -> Price | None:
        names = _candidates(model)
        own = self._providers.get(provider or "", {})
        for table, qualify in ((self._overrides, True), (self._overrides, False), (own, False), (self._any, False)):
            for name in names:
                if qualify:
                    if not provider:
                        break
                    name = f"{provider}/{name}"
                price = table.get(name)
                if price is not None:
                    return price
        return None

    def to_dict(self) -> dict[str, Any]:
        """The effective table (per 1M tokens) for docs and the admin API."""

        def per_million(p: Price) -> dict[str, float | None]:
            return {
                "input": round(p.input * 1e6, 6),
                "output": round(p.output * 1e6, 6),
                "cached_input": None if p.cached_input is None else round(p.cached_input * 1e6, 6),
            }

        return {
            "as_of": self.as_of,
            "unit": "USD per 1M tokens",
            "providers": {
                prov: {m: per_million(p) for m, p in models.items()} for prov, models in self._providers.items()
            },
            "overrides": {m: per_million(p) for m, p in self._overrides.items()},
        }


def _candidates(model: str) -> list[str]:
    """The names to try: as given, without a ``provider/`` prefix, without a version suffix."""
    names = [model]
    if "/" in model and not model.startswith("@"):
        names.append(model.rsplit("/", 1)[1])  # "openai/gpt-4o" on OpenRouter or /compat
    if model.startswith("models/"):
        names.append(model[7:])  # Gemini answers "models/gemini-2.5-flash"
    for name in list(names):
        family = _VERSION_SUFFIX.sub("", name)
        if family and family != name:
            names += [family, f"{family}-latest"]  # "mistral-large-2411" -> "mistral-large-latest"
    return names


def compute_cost(
    usage: Usage,
    price: Price | None,
    *,
    custom: CustomCost | None = None,
    cache_hit: bool = False,
) -> tuple[float | None, bool]:
    """``(cost in USD or None, custom_cost)`` for one answer.

    - A cache hit costs 0, whatever the custom cost says (Cloudflare's rule).
    - ``custom.total_cost`` is the cost. Otherwise each custom rate replaces the table's; a rate
      that neither gives makes the cost unknown unless no token of that kind was used.
    - Cached input tokens (counted inside ``tokens_in``) are billed at the cached rate
      (``per_cache_read_token`` / ``cached_input``), else at the input rate.
    - Unknown usage means unknown cost: ``None``.
    """
    if cache_hit:
        return 0.0, False
    if custom is not None and custom.total_cost is not None:
        return custom.total_cost, True
    if usage.tokens_in is None and usage.tokens_out is None:
        return None, custom is not None
    tokens_in = usage.tokens_in or 0
    tokens_out = usage.tokens_out or 0
    cached = min(usage.cached_tokens_in or 0, tokens_in)
    rate_in = custom.per_token_in if custom is not None and custom.per_token_in is not None else None
    rate_out = custom.per_token_out if custom is not None and custom.per_token_out is not None else None
    rate_cached = custom.per_cache_read_token if custom is not None else None
    if price is not None:
        if rate_in is None:
            rate_in = price.input
        if rate_out is None:
            rate_out = price.output
        if rate_cached is None and (custom is None or custom.per_token_in is None):
            rate_cached = price.cached_input
    if rate_cached is None:
        rate_cached = rate_in
    if (tokens_in and rate_in is None) or (tokens_out and rate_out is None) or (cached and rate_cached is None):
        return None, custom is not None
    cost = (tokens_in - cached) * (rate_in or 0.0) + cached * (rate_cached or 0.0) + tokens_out * (rate_out or 0.0)
    return cost, custom is not None
