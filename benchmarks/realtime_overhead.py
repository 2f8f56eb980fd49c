"""Realtime relay overhead: frames/s and session setup through the gateway vs direct to the fake.

Two processes under uvicorn (1 worker, uvloop, websockets-sansio): the fake provider realtime
server (tests/fakes/realtime.py, through the fake upstream app) and ``aigw serve`` pointed at it
(memory logs, OTel API without an SDK). The client runs in this process (websockets asyncio):

* **echo round trip** -- one ``fake.echo`` text frame at a time, p50/p99 of the round trip: the
  latency the gateway adds to a frame (it crosses the gateway twice, once each way);
* **text and binary throughput** -- N frames sent back to back while the echoes are read
  concurrently (small JSON events; 16 KiB binary frames, like audio chunks): frames/s, and the
  gateway's CPU time per frame from /proc;
* **sessions** -- open, wait for ``session.created``, close, one after another: p50 per session.

    python benchmarks/realtime_overhead.py [FRAMES]

Numbers drift on a shared machine: compare direct and gateway **within one run** only.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, wait_for_port  # noqa: E402

OPENAI = "/v1/realtime?model=gpt-realtime"
HEADERS = {"authorization": "Bearer sk-bench"}


def start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, timeout=30)
    return proc


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def echo_rtt(url: str, n: int) -> list[float]:
    async with connect(url, additional_headers=HEADERS, max_size=None) as ws:
        await ws.recv()  # session.created
        frame = json.dumps({"type": "fake.echo", "pad": "x" * 150})
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await ws.send(frame)
            await ws.recv()
            times.append(time.perf_counter() - t0)
        return times


async def throughput(url: str, n: int, frame: str | bytes) -> float:
    async with connect(url, additional_headers=HEADERS, max_size=None, compression=None) as ws:
        await ws.recv()

        async def sender() -> None:
            for _ in range(n):
                await ws.send(frame)

        t0 = time.perf_counter()
        task = asyncio.create_task(sender())
        for _ in range(n):
            await ws.recv()
        await task
        return n / (time.perf_counter() - t0)


async def sessions(url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with connect(url, additional_headers=HEADERS) as ws:
            await ws.recv()
        times.append(time.perf_counter() - t0)
    return times


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if q < 100 else max(values) * 1000


async def measure(url: str, pid: int, frames: int) -> dict[str, Any]:
    await echo_rtt(url, 200)  # warm-up
    rtt = await echo_rtt(url, frames)
    text = json.dumps({"type": "fake.echo", "pad": "x" * 150})
    binary = os.urandom(16384)
    cpu0 = cpu_seconds(pid)
    text_fps = await throughput(url, frames, text)
    cpu1 = cpu_seconds(pid)
    bin_fps = await throughput(url, frames, binary)
    cpu2 = cpu_seconds(pid)
    setup = await sessions(url, 200)
    return {
        "rtt_p50": ms(rtt, 50),
        "rtt_p99": ms(rtt, 99),
        "text_fps": text_fps,
        "text_cpu_us": (cpu1 - cpu0) / (2 * frames) * 1e6,  # each frame crosses twice
        "bin_fps": bin_fps,
        "bin_cpu_us": (cpu2 - cpu1) / (2 * frames) * 1e6,
        "session_p50": ms(setup, 50),
        "session_p99": ms(setup, 99),
    }


def main() -> None:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    fake_port, gw_port = free_port(), free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--loop", "uvloop", "--ws", "websockets-sansio"]
    uvicorn += ["--log-level", "warning", "--no-access-log"]
    fake = start([*uvicorn, "--factory", "tests.fakes.upstream:make_app", "--port", str(fake_port)], fake_port)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "aigw.toml")
        config.write_text(
            f'[logs]\nstore = "memory://"\n[providers.openai]\nbase_url = "http://127.0.0.1:{fake_port}/v1"\n'
        )
        gateway = start(
            [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(gw_port)], gw_port
        )
        try:
            direct = asyncio.run(measure(f"ws://127.0.0.1:{fake_port}{OPENAI}", fake.pid, frames))
            through = asyncio.run(measure(f"ws://127.0.0.1:{gw_port}/openai{OPENAI}", gateway.pid, frames))
        finally:
            for proc in (gateway, fake):
                proc.terminate()
                proc.wait(10)
    rows = [
        ("echo round trip p50 / p99 (ms)", "rtt_p50", "rtt_p99", "{:.3f}"),
        ("text frames/s (170 B, echoed)", "text_fps", None, "{:.0f}"),
        ("binary frames/s (16 KiB, echoed)", "bin_fps", None, "{:.0f}"),
        ("session open + first event + close, p50 / p99 (ms)", "session_p50", "session_p99", "{:.2f}"),
        ("server CPU per frame per hop, text (µs)", "text_cpu_us", None, "{:.1f}"),
        ("server CPU per frame per hop, binary (µs)", "bin_cpu_us", None, "{:.1f}"),
    ]
    print(f"_Measured {time.strftime('%Y-%m-%d')}, {frames} frames per case:_\n")
    print("| what | direct to the fake | through the gateway |")
    print("| --- | --- | --- |")
    for label, key, key2, fmt in rows:
        cells = []
        for result in (direct, through):
            cell = fmt.format(result[key])
            if key2:
                cell += " / " + fmt.format(result[key2])
            cells.append(cell)
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    print("\nCPU 'direct' is the fake's own; 'through the gateway' is the gateway process alone.")


if __name__ == "__main__":
    main()
