"""Log stores at scale: admin queries on 1,000,000 rows, and write throughput (issue 16).

For each store (SQLite file, PostgreSQL, Redis), the script fills it with ROWS rows spread over
DAYS days (through the store's own batched ``write``: that is the store's write throughput,
rows/s), starts ``aigw serve`` on it, and times through the admin API (best and worst of 5):

    logs p1 provider     GET /admin/logs?provider=openai                    (first page)
    logs p50 provider    GET /admin/logs?provider=openai&page=50
    logs p1              GET /admin/logs                                    (no filter)
    analytics day        GET /admin/analytics?start=…&end=…+1d&group_by=time,provider&interval=hour
    analytics all        GET /admin/analytics?group_by=provider             (every row: the worst case)

and reports the gateway's RSS before the queries and its peak RSS (VmHWM) after them. Then it
serves chat completions (a loopback fake upstream, 16 concurrent clients, SECONDS seconds) and
reports the rows/s the gateway's log writer wrote meanwhile, and any rows dropped.

    python benchmarks/log_stores.py [sqlite] [postgres] [redis]      # default: all three
    ROWS=200000 DAYS=7 SECONDS=10 python benchmarks/log_stores.py sqlite
    AIGW_SRC=/path/to/old/checkout python benchmarks/log_stores.py sqlite   # serve older code

Needs redis-server and PostgreSQL's initdb/pg_ctl (apt-get install redis-server postgresql);
PostgreSQL runs with its default durability (fsync on). Nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SRC = os.environ.get("AIGW_SRC", str(ROOT))  # the aigw_asgi that fills and serves
sys.path.insert(0, SRC)

from aigw_asgi.config import LogsConfig  # noqa: E402
from aigw_asgi.ids import uuid7  # noqa: E402
from aigw_asgi.telemetry.records import LogRecord  # noqa: E402

try:
    from aigw_asgi.telemetry.stores import make_store
except ImportError:  # an AIGW_SRC from before the stores package (one store.py)
    from aigw_asgi.telemetry.store import make_store  # type: ignore[no-redef]

sys.path.insert(0, str(ROOT))  # the test servers of this checkout, whatever AIGW_SRC is
from tests.fakes.upstream import FakeUpstream  # noqa: E402
from tests.servers import PostgresServer, RedisServer, ServerThread, free_port, wait_for_port  # noqa: E402

ROWS = int(os.environ.get("ROWS", "1000000"))
DAYS = int(os.environ.get("DAYS", "7"))
SECONDS = float(os.environ.get("SECONDS", "10"))
T0 = 1_750_000_000.0
PROVIDERS = ["openai", "anthropic", "google-ai-studio", "groq", "workers-ai"]


def rows(n: int, first: int = 0) -> list[LogRecord]:
    """Rows ``first`` to ``first + n`` of ROWS spread evenly over DAYS days."""
    rng = random.Random(first)
    span = DAYS * 86400
    out = []
    for i in range(first, first + n):
        provider = rng.choice(PROVIDERS)
        success = rng.random() > 0.02
        out.append(
            LogRecord(
                id=uuid7(),
                created_at=T0 + i * span / ROWS,
                gateway="default",
                provider=provider,
                model=f"{provider}-model-{rng.randint(0, 3)}",
                path="/openai/chat/completions",
                status_code=200 if success else 429,
                success=success,
                cached=rng.random() < 0.2,
                duration_ms=rng.expovariate(1 / 300),
                tokens_in=rng.randint(10, 2000),
                tokens_out=rng.randint(10, 500),
                cost=rng.random() / 100,
                metadata={"user": f"u{rng.randint(0, 50)}"},
                token_name=f"tok{rng.randint(0, 5)}",
            )
        )
    return out


async def fill(url: str) -> float:
    """Write ROWS rows in batches of 1000 through the store; returns rows/s."""
    store = make_store(LogsConfig(store=url, max_logs=10 * ROWS))
    written = 0
    elapsed = 0.0
    try:
        for start in range(0, ROWS, 50_000):
            chunk = rows(min(50_000, ROWS - start), first=start)
            began = time.perf_counter()
            for i in range(0, len(chunk), 1000):
                written += await store.write(chunk[i : i + 1000])
            elapsed += time.perf_counter() - began
            print(f"  {written} rows", end="\r", file=sys.stderr)
    finally:
        await store.aclose()
    return written / elapsed


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serve(url: str, fake_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "aigw.toml"
    config.write_text(
        f'[logs]\nstore = "{url}"\nmax_logs = {10 * ROWS}\ncollect_payload = false\n'
        f'[providers.openai]\nbase_url = "{fake_url}/v1"\n'
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigw_asgi", "serve", "--config", str(config), "--port", str(port)],
        cwd=SRC,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=60)
    return proc, f"http://127.0.0.1:{port}"


def timed(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, float]:
    """Best and worst of 5 calls (of 2 when a call takes over 5 s: the point is made)."""
    times: list[float] = []
    while len(times) < (5 if not times or max(times) < 5000 else 2):
        began = time.perf_counter()
        answer = client.get(path, params=params)
        times.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    return min(times), max(times)


async def load(base: str) -> int:
    """SECONDS of chat completions from 16 concurrent clients; returns requests answered."""
    done = 0
    stop = time.monotonic() + SECONDS
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < stop:
            answer = await client.post(f"{base}/openai/chat/completions", json=body)
            done += answer.status_code == 200

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(16)))
    return done


def measure(name: str, url: str, fake_url: str, workdir: Path, after_fill: Any = None) -> dict[str, Any]:
    print(f"{name}: filling {ROWS} rows over {DAYS} days …", file=sys.stderr)
    result: dict[str, Any] = {"store": name, "fill rows/s": round(asyncio.run(fill(url)))}
    if after_fill is not None:
        after_fill()
    proc, base = serve(url, fake_url, workdir)
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            client.get("/admin/health").raise_for_status()  # open the store (migrations, indexes)
            result["rss before MB"] = round(rss_kb(proc.pid) / 1024)
            day = T0 + (DAYS // 2) * 86400
            queries = {
                "logs p1 provider": ("/admin/logs", {"provider": "openai"}),
                "logs p50 provider": ("/admin/logs", {"provider": "openai", "page": 50}),
                "logs p1": ("/admin/logs", {}),
                "analytics day": (
                    "/admin/analytics",
                    {"start": day, "end": day + 86400, "group_by": "time,provider", "interval": "hour"},
                ),
                "analytics all": ("/admin/analytics", {"group_by": "provider"}),
            }
            for label, (path, params) in queries.items():
                best, worst = timed(client, path, params)
                result[f"{label} ms"] = f"{best:.0f} / {worst:.0f}"
            result["peak rss MB"] = round(rss_kb(proc.pid, "VmHWM") / 1024)
            before = client.get("/admin/health").json()["result"]["logs"]
            served = asyncio.run(load(base))
            time.sleep(1)  # the writer's last batch
            after = client.get("/admin/health").json()["result"]["logs"]
            result["served req/s"] = round(served / SECONDS)
            result["logged rows/s"] = round((after["written"] - before["written"]) / SECONDS)
            result["dropped"] = after["dropped"] + after["failed"]
    finally:
        proc.terminate()
        proc.wait(30)
    return result


def main() -> None:
    wanted = sys.argv[1:] or ["sqlite", "postgres", "redis"]
    fake = ServerThread(FakeUpstream()).start()
    results = []
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as tmp:
        workdir = Path(tmp)
        try:
            if "sqlite" in wanted:
                results.append(measure("sqlite", f"sqlite:///{workdir}/logs.db", fake.url, workdir))
            if "postgres" in wanted:
                settings = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
                with PostgresServer(settings=settings) as pg:
                    url = pg.create_database("bench")
                    # What autovacuum does within a minute of a bulk load (visibility map, statistics):
                    # without it, counts read the heap instead of the index alone.
                    vacuum = lambda: pg.sql("VACUUM ANALYZE aigw_logs", "bench")  # noqa: E731
                    results.append(measure("postgres", url, fake.url, workdir, vacuum))
            if "redis" in wanted:
                with RedisServer() as redis:
                    results.append(measure("redis", redis.url, fake.url, workdir))
        finally:
            fake.stop()
    keys = list(results[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for r in results:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
    print(f"\n{ROWS} rows over {DAYS} days ({ROWS // DAYS} a day); ms: best / worst of 5", file=sys.stderr)


if __name__ == "__main__":
    main()
