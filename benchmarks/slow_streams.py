#!/usr/bin/env python3
"""Many concurrent slow streams: the gateway's RSS while they are all open (issue 17, item 4).

    python benchmarks/slow_streams.py [STREAMS] [CHUNKS]     # default 1000 streams of 10 chunks
    TARGET=bare-aiohttp DELAY=0.05 python benchmarks/slow_streams.py 500 40

The steerable fake provider (tests/fakes/upstream.py, in a thread of this process) answers each
streamed chat completion with one chunk every ``DELAY`` seconds (default 1,
``x-fake-chunk-delay``), so every chunk reaches the gateway in a read of its own, as a model's
tokens do (``run.py``'s nginx sends a whole stream at once). ``TARGET`` is a variant of
``benchmarks/apps.py`` (default ``full``) or ``bare-aiohttp`` (the shared harness's bare proxy, the
floor), under uvicorn with 1 worker as ``run.py`` starts them. All streams are opened at once;
the server's RSS is read from /proc every second until every stream has ended, and its CPU
(with its children: the log writer) is reported per stream. Two runs with different CHUNKS give
the CPU per relayed chunk (the difference over the extra chunks). Loopback only, run by hand,
never in CI.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run import AUTH_TOKEN, RUN, SHARED, uvicorn_cmd, wait_port  # noqa: E402
from tests.fakes.upstream import FakeUpstream  # noqa: E402
from tests.servers import ServerThread  # noqa: E402

PORT = 9390


def rss_mib(pid: int) -> float:
    """RSS of the process and its descendants (the SQLite log writer child of each worker)."""
    return sum(_rss(p) for p in tree(pid))


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it, found through each process's parent id."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the process, and of its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        spent = (int(fields[11]) + int(fields[12])) / tick
        if p == pid:
            own += spent
        else:
            children += spent
    return own, children


def _rss(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def drive(streams: int, chunks: int, pid: int, url: str, delay: str) -> None:
    import aiohttp

    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {
        "cf-aig-authorization": f"Bearer {AUTH_TOKEN}",
        "authorization": "Bearer sk-fake",
        "x-fake-chunk-delay": delay,
        "x-fake-chunks": str(chunks),
    }
    done = 0
    failed = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal done, failed
        try:
            async with session.post(url, json=body, headers=headers) as resp:
                async for _ in resp.content.iter_any():
                    pass
                if resp.status != 200:
                    failed += 1
        except aiohttp.ClientError:
            failed += 1
        done += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        # One stream first: the server's lazily built parts (upstream pool, log writer) are not
        # what a stream costs.
        await one(session)
        done = 0
        before = rss_mib(pid)
        cpu_before = cpu_s(pid)
        tasks = [asyncio.create_task(one(session)) for _ in range(streams)]
        started = time.monotonic()
        peak = before
        while done < streams:
            await asyncio.sleep(1)
            now = rss_mib(pid)
            peak = max(peak, now)
            print(f"t={time.monotonic() - started:5.1f}s open={streams - done:5d} rss={now:6.1f} MiB", flush=True)
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.5)  # the last log rows are written a moment after the last stream
        cpu_after = cpu_s(pid)
        own, children = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
        print(f"\n{streams} streams x {chunks} chunks (one every {delay} s):", end=" ")
        print(f"RSS before {before:.1f} MiB, peak {peak:.1f} MiB,")
        # The writer child starts with the first log batch, after "before": count it apart.
        child = sum(_rss(p) for p in tree(pid)[1:])
        per_stream = (peak - child - before) * 1024 / streams
        print(f"after {rss_mib(pid):.1f} MiB (the log writer child {child:.1f} of it);")
        print(f"{per_stream:.1f} KiB per open stream in the worker; failed {failed}")
        print(
            f"CPU {own + children:.2f} s: {own / streams * 1e6:.0f} µs per stream in the server, "
            f"{children / streams * 1e6:.0f} in its children (the log writer)"
        )


def main() -> int:
    streams = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    chunks = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    RUN.mkdir(parents=True, exist_ok=True)
    target = os.environ.get("TARGET", "full")
    delay = os.environ.get("DELAY", "1")
    with ServerThread(FakeUpstream()) as fake:
        env = {
            **os.environ,
            "BENCH_VARIANT": target,
            "BENCH_TAG": "slow-streams",
            "BENCH_UPSTREAM": fake.url,
        }
        for db in RUN.glob("bench-slow-streams.db*"):
            db.unlink()
        log = open(RUN / "slow-streams.log", "wb")
        if target == "bare-aiohttp":
            env.update(BARE_CLIENT="aiohttp", UPSTREAM=fake.url)
            cmd = uvicorn_cmd("bare_proxy:app", PORT, app_dir=SHARED)
            url = f"http://127.0.0.1:{PORT}/v1/chat/completions"
        else:
            cmd = uvicorn_cmd("benchmarks.apps:make", PORT, factory=True)
            url = f"http://127.0.0.1:{PORT}/openai/v1/chat/completions"
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_port(PORT)
            asyncio.run(drive(streams, chunks, proc.pid, url, delay))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
