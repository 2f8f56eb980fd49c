"""A variant's own Python per request, in-process: no uvicorn, no wrk, the nginx upstream only.

``python benchmarks/inprocess.py [VARIANT ...]`` (``STREAM=1`` for the 20-chunk stream,
``N`` requests per round, ``CONC`` in flight, ``PROFILE=1`` for a cProfile of the first variant,
``GCTIME=1`` for the time spent in garbage collection per generation, ``TIMED=module:Class.name,...``
for the thread CPU spent inside those functions per request, where they run: under load, with
the cache misses and system calls of the whole pipeline around them, a function can cost several
times what it costs in a loop of its own; each call adds ~0.35 µs of clock reads).
Each request is an ASGI call with a canned ``receive`` and a ``send`` that drops what it gets, so
the CPU per request is the gateway's work plus the aiohttp client's, without the server's. It is
the quick loop for a change (seconds, stable to a few µs); `run.py` stays the measure of record.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.apps import TOKEN, VARIANTS, serve_gc  # noqa: E402
from benchmarks.run import SHARED, UPSTREAM_PORT, Procs, start_upstream  # noqa: E402

STREAM = os.environ.get("STREAM") == "1"
N = int(os.environ.get("N", "3000"))
CONC = int(os.environ.get("CONC", "1"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:9300"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cf-aig-authorization", f"Bearer {TOKEN}".encode()),
            (b"user-agent", b"wrk"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 9300),
        "state": {},
    }


async def _one(app: Any, path: str, body: bytes) -> int:
    sent = {"status": 0}
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]

    await app(_scope(path, body), receive, send)
    return sent["status"]


async def _round(app: Any, path: str, body: bytes, n: int) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            status = await _one(app, path, body)
            if status != 200:
                raise SystemExit(f"status {status}")

    gc_time[0] = 0.0
    for timed in _timed.values():
        timed[:] = [0.0, 0]
    threads_before = _thread_cpu()
    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONC)))
    spent = (time.process_time() - start) / n * 1e6
    if os.environ.get("THREADS") == "1":
        after = _thread_cpu()
        shares = {name: (after[name] - threads_before.get(name, 0.0)) / n * 1e6 for name in after}
        print("  threads µs/request: " + ", ".join(f"{k} {v:.1f}" for k, v in shares.items() if v > 0.05))
    if os.environ.get("GCTIME") == "1":
        summary = {g: (len(v), round(sum(v) * 1e3, 1)) for g, v in gc_by_gen.items()}
        print(f"  gc {gc_time[0] / n * 1e6:.1f} µs/request; per generation (count, ms): {summary}")
        for v in gc_by_gen.values():
            v.clear()
    if _timed:
        print(
            "  in situ µs/request (calls): "
            + ", ".join(f"{k} {t / n * 1e6:.2f} ({c / n:g})" for k, (t, c) in _timed.items())
        )
    return spent


_timed: dict[str, list[Any]] = {}


def _time_functions(spec: str) -> None:
    """Wrap each ``module:Qualified.name`` in ``spec`` to add up the thread CPU time spent inside it."""
    import importlib

    for target in filter(None, spec.split(",")):
        module, _, qualname = target.partition(":")
        owner: Any = importlib.import_module(module)
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)
        if asyncio.iscoroutinefunction(original):
            raise SystemExit(f"TIMED: {target} is a coroutine function (its time would include the awaits)")
        totals = _timed[qualname] = [0.0, 0]

        def timed(*args: Any, _original: Any = original, _totals: list[Any] = totals, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                _totals[0] += time.thread_time() - start
                _totals[1] += 1

        setattr(owner, name, timed)
        if not path:  # a module function: the modules that imported it by name call their own reference
            for other in list(sys.modules.values()):
                if getattr(other, name, None) is original:
                    setattr(other, name, timed)


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread name (threads of one name summed), from /proc."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        name = thread.name.split("_")[0].rstrip("0123456789-")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


gc_time = [0.0]
_gc_started = [0.0]


gc_by_gen: dict[int, list[float]] = {0: [], 1: [], 2: []}


def _gc_clock(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        took = time.perf_counter() - _gc_started[0]
        gc_time[0] += took
        gc_by_gen[info["generation"]].append(took)


gc.callbacks.append(_gc_clock)


def _bare_aiohttp() -> Any:
    """The shared harness's bare pass-through (the floor) on aiohttp, as an app under the same path."""
    os.environ["BARE_CLIENT"] = "aiohttp"
    os.environ["UPSTREAM"] = f"http://127.0.0.1:{UPSTREAM_PORT}"
    sys.path.insert(0, str(SHARED))
    import bare_proxy  # type: ignore[import-not-found]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":  # the variants' path has the provider slug in front
            scope = {**scope, "path": scope["path"].removeprefix("/openai"), "raw_path": None}
        await bare_proxy.app(scope, receive, send)

    return app


async def _lifespan(app: Any) -> tuple[asyncio.Task[Any], asyncio.Queue[Any]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await outbox.get()
    return task, inbox


async def main(variants: list[str]) -> None:
    _time_functions(os.environ.get("TIMED", ""))
    body_file = "chat_body_stream.json" if STREAM else "chat_body.json"
    body = (SHARED / body_file).read_bytes().strip()
    path = "/openai/v1/stream/chat/completions" if STREAM else "/openai/v1/chat/completions"
    os.environ.setdefault("BENCH_UPSTREAM", f"http://127.0.0.1:{UPSTREAM_PORT}")
    apps = {}
    for name in variants:
        os.environ["BENCH_TAG"] = f"inproc-{name}"
        for db in (ROOT / "benchmarks" / "run").glob(f"bench-inproc-{name}.db*"):
            db.unlink()
        app = _bare_aiohttp() if name == "bare-aiohttp" else VARIANTS[name]()
        await _lifespan(app)
        await _round(app, path, body, 200)  # warm-up: connections, caches
        apps[name] = app
    if os.environ.get("PROFILE") == "1":
        name = variants[0]
        prof = cProfile.Profile()
        prof.enable()
        await _round(apps[name], path, body, N)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(os.environ.get("PROFILE_FILTER", ""), 45)
        return
    serve_gc()
    results: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(ROUNDS):
        order = variants if r % 2 == 0 else variants[::-1]
        for name in order:
            results[name].append(await _round(apps[name], path, body, N))
    for name, values in results.items():
        print(f"{name:20} best {min(values):7.1f} µs CPU/request   rounds {' '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    import uvloop

    procs = Procs()
    try:
        start_upstream(procs)
        uvloop.run(main(sys.argv[1:] or ["router", "full"]))
    finally:
        procs.stop_all()
