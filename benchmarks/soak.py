#!/usr/bin/env python3
"""Soak: N requests at a fixed rate through the ``full`` variant, the gateway's RSS every 10k.

    python benchmarks/soak.py [REQUESTS] [RATE]      # default 100000 requests at 800/s

Issue 17, item 4: after warm-up the RSS must stay flat (< 5 % growth). The nginx fake upstream of
the shared harness answers (as in ``run.py``); the gateway is the ``full`` variant under uvicorn
(1 worker), logging every request to its own SQLite file through its writer child process (the
RSS printed is the worker's and the child's together). Requests are sent on a fixed schedule
(not as fast as possible) by an aiohttp client with up to 64 in flight. Loopback only, run by hand.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run import AUTH_TOKEN, RUN, SHARED, UPSTREAM_PORT, Procs, start_upstream, uvicorn_cmd  # noqa: E402
from benchmarks.slow_streams import rss_mib  # noqa: E402

PORT = 9391
EVERY = 10_000


async def drive(total: int, rate: float, pid: int) -> None:
    import aiohttp

    url = f"http://127.0.0.1:{PORT}/openai/v1/chat/completions"
    body = (SHARED / "chat_body.json").read_bytes()
    headers = {"cf-aig-authorization": f"Bearer {AUTH_TOKEN}", "content-type": "application/json"}
    inflight = asyncio.Semaphore(64)
    failed = 0
    done = 0
    samples: list[tuple[int, float]] = [(0, rss_mib(pid))]
    print(f"requests={0:7d} rss={samples[0][1]:6.1f} MiB", flush=True)

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal failed, done
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    failed += 1
        except aiohttp.ClientError:
            failed += 1
        finally:
            inflight.release()
            done += 1
            if done % EVERY == 0:
                samples.append((done, rss_mib(pid)))
                print(f"requests={done:7d} rss={samples[-1][1]:6.1f} MiB failed={failed}", flush=True)

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        tasks = set()
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await inflight.acquire()
            task = asyncio.create_task(one(session))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        took = time.monotonic() - start
    warm = samples[1][1] if len(samples) > 1 else samples[0][1]
    last = samples[-1][1]
    print(f"\n{total} requests in {took:.0f} s ({total / took:.0f}/s, target {rate:.0f}/s), failed {failed}")
    print(f"RSS after the first {EVERY}: {warm:.1f} MiB, at the end: {last:.1f} MiB ({(last - warm) / warm:+.1%})")


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 800
    RUN.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    try:
        start_upstream(procs)
        for db in RUN.glob("bench-soak.db*"):
            db.unlink()
        env = {
            "BENCH_VARIANT": "full",
            "BENCH_TAG": "soak",
            "BENCH_UPSTREAM": f"http://127.0.0.1:{UPSTREAM_PORT}",
        }
        procs.start("soak", uvicorn_cmd("benchmarks.apps:make", PORT, factory=True), PORT, {**os.environ, **env})
        asyncio.run(drive(total, rate, procs.procs[-1][1].pid))
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
