"""``GET /compat/models``: the model names ``/compat`` accepts, for SDK model pickers.

Which ones: for each provider configured in ``[providers]`` (every provider ``/compat`` can reach
when none is), the models the price table knows for it (built-in list plus ``[prices."p/m"]``
entries), named ``provider/model``; then each ``[routes.NAME]`` as ``dynamic/NAME``. A model the
table does not know still works — the list is a catalogue, not an allow-list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import Config
from ..providers.registry import ProviderRegistry
from ..routing.balance import Route
from ..telemetry.cost import PriceTable
from .targets import wire_of


def model_ids(config: Config, providers: ProviderRegistry, routes: Mapping[str, Route]) -> list[tuple[str, str]]:
    """``[(id, owner)]`` in a stable order."""
    table = PriceTable(config.prices).to_dict()
    known: dict[str, list[str]] = {name: list(models) for name, models in table["providers"].items()}
    for name in table["overrides"]:
        provider, sep, model = name.partition("/")
        if sep and model:
            known.setdefault(provider, []).append(model)
    names = list(config.providers) or providers.names()
    out: list[tuple[str, str]] = []
    for name in names:
        provider = providers.get(name)
        if provider is None or wire_of(provider) is None:
            continue
        out.extend((f"{name}/{model}", name) for model in sorted(set(known.get(name, ()))))
    out.extend((f"dynamic/{route}", "aigw") for route in sorted(routes))
    return out


def openai_list(ids: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": mid, "object": "model", "created": 0, "owned_by": owner} for mid, owner in ids],
    }


def anthropic_list(ids: list[tuple[str, str]]) -> dict[str, Any]:
    data = [{"type": "model", "id": mid, "display_name": mid, "created_at": "1970-01-01T00:00:00Z"} for mid, _ in ids]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
