"""The built-in upstream transport: HTTP/1.1 on asyncio's protocol API, parsed by httptools.

Why a client of our own: measured in-process on the shared bench (benchmarks/README.md, fifth
pass), aiohttp's client spent ~110 µs of Python per request (a request object, a URL object,
multidicts, a timer re-armed on every read, the response's stream reader) where relaying the
bytes needs ~25: it was most of the "bare aiohttp pass-through" floor, and the largest single
cost of every request through the gateway. A provider call always has one shape (one request
whose body is already in memory, one response relayed as it arrives), so the client needs little,
one concern a module (each module's docstring lists what its part does):

pool.py        Http1Transport: keep-alive connections per origin under one bound, idle ones
               swept, a stale pooled one retried once, new ones opened (happy eyeballs, TLS)
connection.py  _Connection: one connection, the request written (`_head`), the answer parsed by
               httptools as it arrives, the idle timer
response.py    Http1Response: the answer as the router reads it, back-pressure (`HIGH_WATER`)

Imports go one way (pool -> connection -> response). Where one calls back up (a connection into
its pool, a response into its connection) it names what it needs as a `Protocol`, so the type
checker still sees the coupling without an import cycle (tests/test_layout.py counts those).

No proxies from the environment, no cookies, no redirects, no decompression: the same contract
as the other transports (aigw_asgi.transport).
"""

from __future__ import annotations

from .pool import Http1Transport
from .response import HIGH_WATER, Http1Response

__all__ = ["HIGH_WATER", "Http1Response", "Http1Transport"]
