"""ASGI apps under test, one per variant: ``uvicorn benchmarks.apps:make --factory`` with
``BENCH_VARIANT`` (and ``BENCH_REDIS`` for the Redis variants) in the environment.

Every variant routes ``/openai/...`` to the nginx fake upstream at ``BENCH_UPSTREAM``.
"""

from __future__ import annotations

import os
from typing import Any

from aigw_asgi import Gateway, ProviderRouter
from aigw_asgi.cli import tune_gc
from aigw_asgi.config import ServerConfig, config_from_dict
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


def _otel_sdk(ratio: float | None = None, processor: str = "batch") -> None:
    """A real OTel SDK as the global tracer provider: BatchSpanProcessor into an in-memory exporter.

    The exporter counts and drops what it is given (a list that kept every span would grow by
    ~100k spans a run); the SDK's work -- span objects, attributes, the batch queue and its
    worker thread, the export call -- is all done.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        exported = 0

        def export(self, spans: Any) -> SpanExportResult:
            CountingExporter.exported += len(spans)
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # ratio: what OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG sets up
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)) if ratio is not None else None)
    if processor == "batch":
        provider.add_span_processor(BatchSpanProcessor(CountingExporter()))
    elif processor == "simple":
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider.add_span_processor(SimpleSpanProcessor(CountingExporter()))
    trace.set_tracer_provider(provider)


# What a cache hit adds to content-type and content-length (benchmarks/README.md, "cache hits").
HIT_HEADERS = [
    (b"last-modified", b"Mon, 07 Dec 2026 03:08:21 GMT"),
    (b"cache-control", b"no-cache"),
    (b"accept-ranges", b"bytes"),
    (b"age", b"0"),
    (b"cf-aig-log-id", b"01a24e82-07ec-7c70-ae26-e349d6bffb32"),
    (b"cf-aig-request-id", b"01a24e82-07ec-7c70-ae26-e349d6bffb32"),
    (b"cf-aig-event-id", b"01a24e82-07ec-7c70-ae26-e349d6bffb32"),
    (b"cf-aig-step", b"0"),
    (b"cf-aig-cache-status", b"HIT"),
    (b"cf-aig-provider", b"openai"),
    (b"cf-aig-model", b"gpt-4o-mini-2024-07-18"),
]


def _static(hit_headers: bool = False) -> Any:
    """The least any answer costs under uvicorn: read the body, send the upstream's own payload.

    No gateway and no upstream call: the ceiling for a cache hit (which does this plus a lookup),
    whatever the gateway does. ``hit_headers``: with the 13 headers a cache hit sends (the stored
    upstream headers, ``age`` and the ``cf-aig-*`` set) instead of 2, to tell uvicorn's
    per-header work apart from the gateway's own.
    """
    from benchmarks.run import SHARED  # the shared harness, found as run.py finds it

    payloads = SHARED / "upstream" / "payloads"
    chat = (payloads / "chat.json").read_bytes()
    stream = (payloads / "chat_stream.sse").read_bytes()
    answers = {
        False: (b"application/json", chat),
        True: (b"text/event-stream", stream),
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        kind, body = answers["/stream/" in scope["path"]]
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        if hit_headers:
            headers += HIT_HEADERS
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _bare_builtin() -> Any:
    """The shared harness's bare pass-through, on the gateway's built-in HTTP/1.1 client.

    The same work as ``bare_proxy.py`` (read the body, drop hop-by-hop headers, forward, relay
    each chunk) with `Http1Transport` in place of an aiohttp session: the floor of a Python
    pass-through on that client, beside the aiohttp floor the targets are set against.
    """
    import sys

    from aigw_asgi.http1 import Http1Transport
    from benchmarks.run import SHARED  # the shared harness, found as run.py finds it

    sys.path.insert(0, str(SHARED))
    import bare_proxy  # type: ignore[import-not-found]  # its own header lists and body reading

    drop_request, drop_response, read_body = bare_proxy._DROP_REQ, bare_proxy._DROP_RESP, bare_proxy._read_body
    transport = Http1Transport()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await transport.aclose()
                await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in drop_request]
        target = UPSTREAM + scope["path"].removeprefix("/openai")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        resp = await transport.request(scope["method"], target, headers, body)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": [(k, v) for k, v in resp.headers if k not in drop_response],
                }
            )
            async for chunk in resp.stream():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await resp.aclose()

    return app


def _full(writer: str = os.environ.get("BENCH_LOG_WRITER", "process"), **extra: Any) -> Any:
    return _config(
        gateway={"authentication": True, "tokens": [{"name": "b", "token": TOKEN}]},
        rate_limit={"limit": 1_000_000_000, "period": 60},
        # one file per target (run.py sets BENCH_TAG): two servers on one file wait on each other
        logs={
            "enabled": True,
            "store": f"sqlite:///benchmarks/run/bench-{os.environ.get('BENCH_TAG', 'full')}.db",
            # what `aigw serve` picks for "auto": rows redacted and written by a child process
            "writer": writer,
        },
        telemetry={"otel": True},
        **extra,
    )


def _full_without(logs: bool = True, payload: bool = True) -> Any:
    """`full` without log rows at all, or with rows but no bodies: what logging costs a request."""
    from dataclasses import replace

    config = _full()
    return Gateway(replace(config, logs=replace(config.logs, enabled=logs, collect_payload=payload)))


def _full_otel_sdk(ratio: float | None = None, processor: str = "batch") -> Any:
    _otel_sdk(ratio, processor)
    return Gateway(_full())


VARIANTS: dict[str, Any] = {
    # the harness's bare pass-through on the built-in client (a floor of our own)
    "bare-builtin": _bare_builtin,
    # the router alone, no middleware at all, per upstream transport
    "router": lambda: ProviderRouter(_config()),
    "router-aiohttp": lambda: ProviderRouter(_config(upstream={"transport": "aiohttp"})),
    "router-httpx": lambda: ProviderRouter(_config(upstream={"transport": "httpx"})),
    "router-httpx-aiohttp": lambda: ProviderRouter(_config(), transport=_httpx_aiohttp_transport()),
    # the whole Gateway with every layer switched off (pass-through cost of the pipeline)
    "gateway-off": lambda: Gateway(_config()),
    # one layer on at a time
    "auth": lambda: Gateway(_config(gateway={"authentication": True, "tokens": [{"name": "b", "token": TOKEN}]})),
    "ratelimit-memory": lambda: Gateway(_config(rate_limit={"limit": 1_000_000_000, "period": 60})),
    "ratelimit-redis": lambda: Gateway(_config(rate_limit={"limit": 1_000_000_000, "period": 60, "storage": REDIS})),
    "telemetry": lambda: Gateway(
        _config(
            logs={"enabled": True, "store": "sqlite:///benchmarks/run/bench.db", "writer": "process"},
            telemetry={"otel": True},
        )
    ),
    # no gateway, no upstream: a canned answer, the ceiling for cache hits under uvicorn
    "static": _static,
    "static-hit-headers": lambda: _static(hit_headers=True),
    "cache-hit": lambda: Gateway(_config(cache={"ttl": 3600})),
    # the cache-hit gateway's own CacheMiddleware called directly: what the layers above a hit cost
    "cache-only": lambda: Gateway(_config(cache={"ttl": 3600})).cache,
    "cache-hit-redis": lambda: Gateway(_config(cache={"ttl": 3600, "storage": REDIS})),
    # everything on: auth, rate limit, SQLite logs, OTel; the cache layer is in the pipeline but
    # caching is off (wrk repeats one body: with it on, every request would be a hit)
    "full": lambda: Gateway(_full()),
    # the same on the aiohttp transport (the default until the fifth pass)
    "full-aiohttp": lambda: Gateway(_full(upstream={"transport": "aiohttp"})),
    # the same with the log rows redacted and written on a thread of the worker (a mounted gateway)
    "full-thread": lambda: Gateway(_full(writer="thread")),
    # the same without log rows, or with rows but no bodies (what logging costs; benchmarks/README.md)
    "full-nologs": lambda: _full_without(logs=False),
    "full-nopayload": lambda: _full_without(payload=False),
    # the same with the OTel SDK installed (spans recorded and exported, not just API calls)
    "full-otel-sdk": _full_otel_sdk,
    # the same, sampling one trace in ten (the SDK's parentbased_traceidratio sampler at 0.1)
    "full-otel-sdk-sampled": lambda: _full_otel_sdk(0.1),
    # what the SDK's spans cost without the batch queue and its thread: no processor at all, or
    # the simple processor exporting each span inline (benchmarks/README.md, ninth pass)
    "full-otel-sdk-noproc": lambda: _full_otel_sdk(processor="none"),
    "full-otel-sdk-simple": lambda: _full_otel_sdk(processor="simple"),
}


def serve_gc() -> None:
    """What each `aigw serve` worker does (``server.gc_threshold``); BENCH_GC_THRESHOLD=0 keeps Python's."""
    tune_gc(int(os.environ.get("BENCH_GC_THRESHOLD", ServerConfig().gc_threshold)))


def make() -> Any:
    app = VARIANTS[os.environ["BENCH_VARIANT"]]()
    serve_gc()
    return app
