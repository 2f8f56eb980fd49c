"""ASGI apps under test, one per variant: ``uvicorn benchmarks.apps:make --factory`` with
``BENCH_VARIANT`` (and ``BENCH_REDIS`` for the Redis variants) in the environment.

Every variant routes ``/openai/...`` to the nginx fake upstream at ``BENCH_UPSTREAM``.
"""

from __future__ import annotations

import os
from typing import Any

from aigw_asgi import Gateway, ProviderRouter
from aigw_asgi.config import config_from_dict
from aigw_asgi.transport import HttpxTransport

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6399/0")
TOKEN = "bench-gateway-token-0123456789"

OFF: dict[str, Any] = {
    "providers": {"openai": {"base_url": f"{UPSTREAM}/v1"}},
    "logs": {"enabled": False, "store": "memory://"},
    "telemetry": {"otel": False},
}


def _config(**sections: Any) -> Any:
    data = {k: dict(v) for k, v in OFF.items()}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return config_from_dict(data)


def _httpx_aiohttp_transport() -> HttpxTransport:
    import httpx
    from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found]

    client = httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(600, connect=10))
    return HttpxTransport(client=client)


VARIANTS: dict[str, Any] = {
    # the router alone, no middleware at all, per upstream transport
    "router": lambda: ProviderRouter(_config()),
    "router-httpx": lambda: ProviderRouter(_config(upstream={"transport": "httpx"})),
    "router-httpx-aiohttp": lambda: ProviderRouter(_config(), transport=_httpx_aiohttp_transport()),
    # the whole Gateway with every layer switched off (pass-through cost of the pipeline)
    "gateway-off": lambda: Gateway(_config()),
    # one layer on at a time
    "auth": lambda: Gateway(_config(gateway={"authentication": True, "tokens": [{"name": "b", "token": TOKEN}]})),
    "ratelimit-memory": lambda: Gateway(_config(rate_limit={"limit": 1_000_000_000, "period": 60})),
    "ratelimit-redis": lambda: Gateway(_config(rate_limit={"limit": 1_000_000_000, "period": 60, "storage": REDIS})),
    "telemetry": lambda: Gateway(
        _config(logs={"enabled": True, "store": "sqlite:///benchmarks/run/bench.db"}, telemetry={"otel": True})
    ),
    "cache-hit": lambda: Gateway(_config(cache={"ttl": 3600})),
    "cache-hit-redis": lambda: Gateway(_config(cache={"ttl": 3600, "storage": REDIS})),
    # everything on: auth, cache (misses: wrk sends a different body? no — see README), limits, logs, otel
    "full": lambda: Gateway(
        _config(
            gateway={"authentication": True, "tokens": [{"name": "b", "token": TOKEN}]},
            rate_limit={"limit": 1_000_000_000, "period": 60},
            logs={"enabled": True, "store": "sqlite:///benchmarks/run/bench-full.db"},
            telemetry={"otel": True},
        )
    ),
}


def make() -> Any:
    return VARIANTS[os.environ["BENCH_VARIANT"]]()
