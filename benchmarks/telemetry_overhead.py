"""CPU cost per request of the telemetry layer (logs to SQLite + the OTel API), measured in-process.

Why in-process: wrk over HTTP (``benchmarks/run.py gateway-off telemetry``) gives the end-to-end
picture, but the layer's cost is a fraction of a millisecond of CPU that the HTTP server's own
cost and machine noise blur. Here a `Gateway` answers N chat completions from a canned
in-memory upstream (the real benchmark body and answer), driven straight through the ASGI app;
then ``await gateway.telemetry.flush()`` waits for every row to be in the SQLite file. The
number is ``time.process_time()`` per request: CPU of every thread of the process, the log
writer's included, so moving work to a background thread does not hide it.

    python benchmarks/telemetry_overhead.py [N] [--busy] [--profile]

Variants are those of ``benchmarks/apps.py``: ``gateway-off`` (every layer off) and
``telemetry`` (SQLite logs with bodies + OTel API without SDK). "added" is their difference.
By default the loop pauses for a flush every ``logs.batch_size`` requests (a server that keeps up);
``--busy`` never pauses, at ~10x the rate a real server reaches, so its ``dropped`` count mostly
tells how loaded the machine is (use ``benchmarks/run.py telemetry`` for the real picture).

Results (N=20000, best of 3, 2-core machine shared with other jobs, Python 3.11, SQLite 3.40):

    before (115ef5f): gateway-off 36.4 µs/req, telemetry 159.1 µs/req -> added 122.7 µs/req
    after:            gateway-off 32.7 µs/req, telemetry  67.2 µs/req -> added  34.6 µs/req

Where the 123 µs went: redaction (a regex compiled per request for the client's credentials, five
regexes over every body) ~80 -> ~7; OTel with no SDK ~12 -> ~1; row building ~6 -> ~5 (imports
off the hot path, one ``attrgetter`` per SQL row); SQLite ~15 per row, now with a few multi-row
INSERTs per batch instead of ``executemany`` (two GIL handoffs per row, which under load starved
the writer: with wrk at c=64 the old queue overflowed and dropped rows).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aigw_asgi import Gateway
from aigw_asgi.config import config_from_dict

BENCH = Path("/work/shared/bench")
BODY = (BENCH / "chat_body.json").read_bytes().strip()
ANSWER = (BENCH / "upstream/payloads/chat.json").read_bytes()
TOKEN = "bench-gateway-token-0123456789"
BATCH = 200  # logs.batch_size


class _Response:
    status = 200

    def __init__(self) -> None:
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(ANSWER)).encode()),
            (b"cache-control", b"no-cache"),
            (b"server", b"nginx"),
            (b"date", b"Wed, 01 Jan 2025 00:00:00 GMT"),
        ]

    async def stream(self) -> Any:
        yield ANSWER

    async def aclose(self) -> None:
        return None


class CannedTransport:
    """An upstream `Transport` that answers every request with the benchmark's chat completion."""

    async def request(self, method: str, url: str, headers: Any, body: Any, *, first_byte_timeout: Any = None) -> Any:
        return _Response()

    async def aclose(self) -> None:
        return None


def make_gateway(variant: str, db: str) -> Gateway:
    data: dict[str, Any] = {
        "providers": {"openai": {"base_url": "http://127.0.0.1:9100/v1"}},
        "logs": {"enabled": False, "store": "memory://"},
        "telemetry": {"otel": False},
    }
    if variant == "telemetry":
        data["logs"] = {"enabled": True, "store": f"sqlite:///{db}"}
        data["telemetry"] = {"otel": True}
    return Gateway(config_from_dict(data), transport=CannedTransport())


HEADERS = [
    (b"host", b"127.0.0.1:9301"),
    (b"user-agent", b"wrk"),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"cf-aig-authorization", f"Bearer {TOKEN}".encode()),
]


async def _one(app: Any) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/openai/v1/chat/completions",
        "raw_path": b"/openai/v1/chat/completions",
        "root_path": "",
        "query_string": b"",
        "headers": list(HEADERS),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 9301),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    assert status == 200, status


async def run(variant: str, n: int, steady: bool = True) -> tuple[float, dict[str, Any]]:
    """CPU µs per request (all threads), rows flushed to the store before the clock stops, and the
    writer's stats. ``steady=False``: no pause per batch, the loop stays busy (``dropped`` shows
    whether the writer keeps up while it competes with the event loop for the GIL)."""
    with tempfile.TemporaryDirectory() as tmp:
        gateway = make_gateway(variant, os.path.join(tmp, "bench.db"))
        try:
            for _ in range(500):  # warm up: connections, the writer, memoised prices
                await _one(gateway)
                await asyncio.sleep(0)
            await gateway.telemetry.flush()
            gc.collect()
            start = time.process_time()
            for i in range(n):
                await _one(gateway)
                await asyncio.sleep(0)  # a server yields between requests: let the writer run
                if steady and i % BATCH == BATCH - 1:
                    # Steady state: the writer keeps up (a queue thousands deep would cost GC and
                    # cache misses that a server keeping up never pays). One batch per BATCH rows.
                    await gateway.telemetry.flush()
            await gateway.telemetry.flush()
            used = time.process_time() - start
            stats = gateway.telemetry.stats()
            if variant == "telemetry" and steady:
                assert stats["written"] == n + 500, stats
        finally:
            await gateway.aclose()
    return used / n * 1e6, stats


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 20000
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        # The event loop's side only (cProfile sees one thread); `py-spy record -t` sees both.
        cProfile.runctx("asyncio.run(run('telemetry', n))", globals(), {"n": n}, "/tmp/telemetry.prof")
        pstats.Stats("/tmp/telemetry.prof").sort_stats("tottime").print_stats(30)
        return
    steady = "--busy" not in sys.argv
    results: dict[str, float] = {}
    for variant in ("gateway-off", "telemetry"):
        runs = [asyncio.run(run(variant, n, steady)) for _ in range(3)]
        results[variant] = min(cpu for cpu, _ in runs)
        dropped = [stats["dropped"] for _, stats in runs] if variant == "telemetry" else ""
        print(f"{variant:12} {results[variant]:7.1f} µs/req", f"dropped per run: {dropped}" if dropped else "")
    print(f"{'added':12} {results['telemetry'] - results['gateway-off']:7.1f} µs/req")


if __name__ == "__main__":
    main()
