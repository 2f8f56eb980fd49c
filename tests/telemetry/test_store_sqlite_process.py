"""The SQLite writer process (``logs.writer = "process"``): rows redacted in the child, a dead
child replaced without losing a batch, the child gone after close, and ``aigw serve`` choosing it.

The store contract itself (filters, paging, max_logs, analytics…) runs in test_store.py with the
``sqlite-process`` parameter.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from aigw_asgi.config import ConfigError, LogsConfig, config_from_dict
from aigw_asgi.context import RequestContext
from aigw_asgi.redact import Redactor
from aigw_asgi.telemetry import writer as writer_module
from aigw_asgi.telemetry.cost import PriceTable
from aigw_asgi.telemetry.records import RecordSettings, records_from_context
from aigw_asgi.telemetry.stores import make_store
from aigw_asgi.telemetry.stores.sqlite import SQLiteLogStore
from aigw_asgi.telemetry.stores.sqlite_process import ProcessSQLiteLogStore
from aigw_asgi.telemetry.writer import LogWriter
from tests.fakes.upstream import RunningFake

GATEWAY_SECRET = "gw-token-abcdef-123456"


def secret_context(i: int = 0) -> RequestContext:
    ctx = RequestContext(
        gateway_id="g",
        method="POST",
        path="/openai/chat/completions",
        headers=[(b"authorization", b"Bearer sk-client-own-key-%d" % i)],
    )
    ctx.provider, ctx.model, ctx.status_code = "openai", "gpt-4o-mini", 401
    ctx.body = b'{"api_key": "sk-in-body-999", "messages": [], "note": "Bearer abc.def.ghi"}'
    ctx.response_body = b'{"error": "invalid key sk-client-own-key-%d and %s"}' % (i, GATEWAY_SECRET.encode())
    ctx.error = f"upstream said sk-client-own-key-{i}"
    ctx.ended = ctx.started + 0.01
    return ctx


def settings(redactor: Redactor) -> RecordSettings:
    return RecordSettings(collect_payload=True, max_body_bytes=4096, prices=PriceTable(), redactor=redactor)


async def test_the_child_redacts_what_the_thread_would(tmp_path: Path) -> None:
    redactor = Redactor([GATEWAY_SECRET])
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"), secrets=redactor.secrets)
    writer = LogWriter(store, settings(redactor))
    try:
        ctx = secret_context()
        expected = records_from_context(secret_context(), settings(redactor))[0]
        writer.submit(ctx)
        await asyncio.wait_for(writer.flush(), 20)
        row = await store.get(ctx.log_id, bodies=True)
        assert row is not None
        stored = " ".join(str(v) for v in (row.request_body, row.response_body, row.error))
        for secret in ("sk-client-own-key-0", "sk-in-body-999", GATEWAY_SECRET, "abc.def.ghi"):
            assert secret not in stored
        assert (row.request_body, row.response_body, row.error) == (
            expected.request_body,
            expected.response_body,
            expected.error,
        )
        assert "[REDACTED]" in (row.response_body or "")
        assert writer.written == 1 and writer.failed == 0
    finally:
        await writer.aclose()


async def test_a_child_that_died_is_replaced_and_no_row_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.01, 0.02, 0.04))
    redactor = Redactor([GATEWAY_SECRET])
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"), secrets=redactor.secrets)
    writer = LogWriter(store, settings(redactor))
    try:
        writer.submit(secret_context(1))
        await asyncio.wait_for(writer.flush(), 20)
        first = store._child
        assert first is not None and first.poll() is None
        first.kill()  # the OOM killer, an operator's kill -9
        first.wait(10)
        for i in range(2, 5):
            writer.submit(secret_context(i))
        await asyncio.wait_for(writer.flush(), 20)
        assert await store.count() == 4
        assert writer.written == 4 and writer.failed == 0
        assert store._child is not None and store._child is not first and store._child.poll() is None
    finally:
        await writer.aclose()


async def test_a_stuck_child_is_killed_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigw_asgi.telemetry.stores import sqlite_process

    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.01, 0.02, 0.04))
    monkeypatch.setattr(sqlite_process, "ANSWER_TIMEOUT_S", 0.5)
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"))
    writer = LogWriter(store, settings(Redactor()))
    try:
        writer.submit(secret_context(1))
        await asyncio.wait_for(writer.flush(), 20)
        stuck = store._child
        assert stuck is not None
        os.kill(stuck.pid, signal.SIGSTOP)  # alive, answering nothing
        writer.submit(secret_context(2))
        await asyncio.wait_for(writer.flush(), 20)
        assert stuck.wait(10) == -signal.SIGKILL
        assert await store.count() == 2 and writer.failed == 0
    finally:
        await writer.aclose()


async def test_the_child_finds_this_aigw_asgi_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that imported aigw_asgi from a source tree it put on sys.path itself, run from
    elsewhere: the child gets that tree on its PYTHONPATH. Here the child's interpreter runs with
    ``-S`` (no site-packages, so no installed aigw_asgi): only that path lets it start."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.01,))
    bare = tmp_path / "python-without-site"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bare))
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"))
    writer = LogWriter(store, settings(Redactor()))
    try:
        writer.submit(secret_context())
        await asyncio.wait_for(writer.flush(), 20)
        assert (writer.written, writer.failed) == (1, 0)
    finally:
        await writer.aclose()


async def test_a_worker_with_a_thousand_connections_still_writes(tmp_path: Path) -> None:
    """The pipes to the child then get descriptors past 1024, where select.select fails: 1,000
    slow streams once left every batch failing with ValueError (benchmarks/slow_streams.py)."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip("the descriptor limit is too low here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"))
    writer = LogWriter(store, settings(Redactor()))
    try:
        writer.submit(secret_context())
        await asyncio.wait_for(writer.flush(), 20)
        assert store._child is not None and store._child.stdout is not None
        assert store._child.stdout.fileno() > 1024
        assert (writer.written, writer.failed) == (1, 0)
    finally:
        await writer.aclose()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_close_writes_what_is_queued_and_stops_the_child(tmp_path: Path) -> None:
    path = str(tmp_path / "logs.db")
    store = ProcessSQLiteLogStore(path)
    writer = LogWriter(store, settings(Redactor()), flush_interval_ms=60_000)
    writer.submit(secret_context())
    await asyncio.wait_for(writer.flush(), 20)
    child = store._child
    assert child is not None
    for i in range(5):
        writer.submit(secret_context(i))  # queued; the batch waits for its interval
    await asyncio.wait_for(writer.aclose(), 20)
    assert child.poll() is not None  # the child has exited
    reader = SQLiteLogStore(path)
    try:
        assert await reader.count() == 6
    finally:
        await reader.aclose()


async def test_a_refused_row_is_counted_in_the_worker(tmp_path: Path) -> None:
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"), max_logs=2, strategy="STOP_INSERTING")
    writer = LogWriter(store, settings(Redactor()))
    try:
        for i in range(3):
            writer.submit(secret_context(i))
        await asyncio.wait_for(writer.flush(), 20)
        assert (writer.written, store.refused, writer.stats()["refused"]) == (2, 1, 1)
    finally:
        await writer.aclose()


def test_the_child_ignores_ctrl_c_and_ends_with_its_worker(tmp_path: Path) -> None:
    """A Ctrl-C reaches the whole process group: the child must outlive it to write the last batch
    (its worker flushes on shutdown), and it must still exit when the worker is gone."""
    child = subprocess.Popen(
        [sys.executable, "-m", "aigw_asgi.telemetry.stores.sqlite_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)  # past its imports, where the handler is installed
        os.kill(child.pid, signal.SIGINT)
        time.sleep(0.3)
        assert child.poll() is None
        assert child.stdin is not None
        child.stdin.close()  # the worker went away without a word
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_writer_setting() -> None:
    assert LogsConfig().writer == "auto"
    store = make_store(LogsConfig(store="sqlite:///x.db", writer="process"))
    assert isinstance(store, ProcessSQLiteLogStore)
    for writer in ("auto", "thread"):
        store = make_store(LogsConfig(store="sqlite:///x.db", writer=writer))  # type: ignore[arg-type]
        assert type(store) is SQLiteLogStore
    for url in ("memory://", "sqlite:///:memory:", "redis://127.0.0.1:6379/0"):
        with pytest.raises(ConfigError, match="logs.writer"):
            config_from_dict({"logs": {"store": url, "writer": "process"}})
    with pytest.raises(ConfigError, match="logs.writer"):
        config_from_dict({"logs": {"writer": "subprocess"}})


def test_aigw_serve_writes_sqlite_rows_from_a_child_process(
    aigw_serve, fake_upstream: RunningFake, tmp_path: Path
) -> None:
    db = tmp_path / "serve.db"
    port = aigw_serve(
        f'[gateway]\nauthentication = true\nadmin_token = "admin-token-0123456789"\n'
        f'[[gateway.tokens]]\nname = "app"\ntoken = "{GATEWAY_SECRET}"\n'
        f'[logs]\nstore = "sqlite:///{db}"\n'
        f'[providers.openai]\nbase_url = "{fake_upstream.url}/v1"\napi_key = "sk-configured-provider-key"\n'
    )
    base = f"http://127.0.0.1:{port}"
    resp = httpx.post(
        f"{base}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"my token is {GATEWAY_SECRET}"}]},
        headers={"cf-aig-authorization": f"Bearer {GATEWAY_SECRET}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    log_id = resp.headers["cf-aig-log-id"]
    admin = {"authorization": "Bearer admin-token-0123456789"}
    row = httpx.get(f"{base}/admin/logs/{log_id}", headers=admin, timeout=20).json()["result"]
    assert row["id"] == log_id and row["status_code"] == 200
    body = httpx.get(f"{base}/admin/logs/{log_id}/request", headers=admin, timeout=10).text
    assert GATEWAY_SECRET not in body and "[REDACTED]" in body
    # The worker's child process is the one that writes: the one writer holding this file open.
    assert _writers_of(db) == 1


async def test_bodies_cross_as_bytes_and_read_back_as_the_thread_would_store_them(tmp_path: Path) -> None:
    """The bodies travel beside the pickle, undecoded; the child decodes them. Every shape a body
    takes (binary, cut inside a multi-byte character at the cap, empty, non-ASCII), in a batch
    larger than the pipe and with more bodies than one ``writev`` takes, reads back as the
    thread's path stores it; rows built elsewhere (text bodies) pass unchanged."""
    cap = 9000
    redactor = Redactor([GATEWAY_SECRET])
    shapes = [
        b"\x00\xff\xfe binary",
        ("é" * 5000).encode(),  # 10,000 bytes: the cap cuts a character in half
        b"",
        "naïve ünïcødé ✓ ".encode() * 300,
        b"x" * 8000,
    ]
    contexts = []
    for i in range(600):  # 1,200 bodies, ~5 MB: several writes, several writev calls
        ctx = secret_context(i)
        ctx.body = shapes[i % len(shapes)]
        ctx.response_body = shapes[(i + 1) % len(shapes)] if i % 7 else None
        contexts.append(ctx)
    settings_ = RecordSettings(collect_payload=True, max_body_bytes=cap, prices=PriceTable(), redactor=redactor)
    expected = {ctx.log_id: records_from_context(ctx, settings_)[0] for ctx in contexts}
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"), secrets=redactor.secrets)
    writer = LogWriter(store, settings_, batch_size=600)
    try:
        for ctx in contexts:
            writer.submit(ctx)
        await asyncio.wait_for(writer.flush(), 60)
        assert writer.written == 600 and writer.failed == 0
        for log_id, want in expected.items():
            row = await store.get(log_id, bodies=True)
            assert row is not None and (row.request_body, row.response_body) == (want.request_body, want.response_body)
        assert expected[contexts[0].log_id].request_body == "<10 bytes of binary data>"
        imported = records_from_context(secret_context(9999), settings_)[0]
        imported.request_body, imported.response_body = "", "text as built elsewhere ✓"
        assert await store.write([imported]) == 1
        row = await store.get(imported.id, bodies=True)
        assert row is not None and (row.request_body, row.response_body) == ("", imported.response_body)
    finally:
        await writer.aclose()


async def test_the_pipe_to_the_child_holds_a_batch_of_stream_rows(tmp_path: Path) -> None:
    """1 MiB where Linux allows it: a batch crosses in a couple of writes, not ~20."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_GETPIPE_SZ") or _pipe_max_size() < 1 << 20:
        pytest.skip("no pipe resizing here")
    store = ProcessSQLiteLogStore(str(tmp_path / "logs.db"))
    try:
        assert await store.write([]) == 0
        await store._run(store._started)
        assert store._child is not None and store._child.stdin is not None
        assert fcntl.fcntl(store._child.stdin.fileno(), fcntl.F_GETPIPE_SZ) == 1 << 20
    finally:
        await store.aclose()


def _pipe_max_size() -> int:
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except OSError:
        return 0


def test_two_workers_each_with_a_writer_share_one_file(aigw_serve, fake_upstream: RunningFake, tmp_path: Path) -> None:
    """``aigw serve`` with 2 workers: two writer children insert into one SQLite file; every
    answered request has its row, whichever worker answered it and whichever reads it back."""
    db = tmp_path / "two.db"
    port = aigw_serve(
        "[server]\nworkers = 2\n"
        f'[logs]\nstore = "sqlite:///{db}"\nflush_interval_ms = 50\n'
        f'[providers.openai]\nbase_url = "{fake_upstream.url}/v1"\napi_key = "sk-configured-provider-key"\n'
    )
    base = f"http://127.0.0.1:{port}"
    ids: set[str] = set()

    def one(_: int) -> str:
        with httpx.Client(timeout=10) as client:  # a new connection: either worker may accept it
            resp = client.post(
                f"{base}/openai/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert resp.status_code == 200, resp.text
        return resp.headers["cf-aig-log-id"]

    # Until both workers have answered (each then starts its writer), 10 connections at a time.
    with ThreadPoolExecutor(10) as pool:
        for _ in range(20):
            ids.update(pool.map(one, range(10)))
            time.sleep(0.2)  # a batch is due 50 ms after its first row
            if _writers_of(db) >= 2:
                break
    assert _writers_of(db) == 2
    deadline = time.monotonic() + 20
    found: set[str] = set()
    while time.monotonic() < deadline and found != ids:
        rows = httpx.get(f"{base}/admin/logs", params={"per_page": 100}, timeout=10).json()["result"]
        found = {row["id"] for row in rows} & ids
        time.sleep(0.1)
    assert found == ids


def _writers_of(db: Path) -> int:
    """Writer children that have ``db`` open (each opens it with its first batch)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"aigw_asgi.telemetry.stores.sqlite_process" not in (entry / "cmdline").read_bytes():
                continue
            targets = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue  # ended meanwhile
        count += str(db) in targets
    return count
